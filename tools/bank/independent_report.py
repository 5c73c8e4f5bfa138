"""The independent-baseline report (:mod:`tools.bank.independent`): which bank members the
independent models are compared with (and whose recipe they take), each configuration's
independently trained model next to the bank's collaborative member, as JSON rows and a Markdown
table, and ``--recompare`` (the collaborative side rewritten after the bank changed)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.manifest import ModelEntry, load_manifest
from tools.bank.members import member_id
from tools.bank.plain_arch import COLUMN2D, arch_of
from tools.cli import CommandError
from tools.provenance import git_commit

ID_PREFIXES = {"conv1d": "wr", COLUMN2D: "wc"}
"""The bank's id prefix for each architecture."""


def _pick(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "f1_weighted", "test_windows", "per_class_recall", "val_accuracy")
    return {k: metrics[k] for k in keys if k in metrics}


def compare(ind: ModelEntry, collab: ModelEntry | None) -> dict[str, Any]:
    """One result row: the independent model's figures next to the collaborative member's."""
    row: dict[str, Any] = {
        "config": f"w{ind.width:.2f}-r{ind.resolution:03d}",
        "width": ind.width,
        "resolution": ind.resolution,
        "channels": ind.provenance["channels"],
        "macs": ind.macs,
        "params": ind.params,
        "independent": {
            "id": ind.id,
            "file": ind.file,
            "sha256": ind.sha256,
            **_pick(ind.metrics),
            "ort_vs_torch_max_abs_diff": ind.metrics["ort_vs_torch_max_abs_diff"],
        },
    }
    row.update(collaborative_fields(row["independent"], collab))
    return row


def collaborative_fields(ind: dict[str, Any], collab: ModelEntry | None) -> dict[str, Any]:
    """The row's collaborative block and deltas against the independent figures ``ind``. A
    distilled member (:mod:`tools.bank.distill`) also gets the supernet slice's own figures."""
    if collab is None:
        return {"collaborative": None}
    c = collab.metrics
    block = {"id": collab.id, "sha256": collab.sha256, **_pick(c)}
    out: dict[str, Any] = {
        "collaborative": block,
        "delta_accuracy_pt": round(100 * (c["accuracy"] - ind["accuracy"]), 2),
        "delta_f1": round(c["f1_weighted"] - ind["f1_weighted"], 4),
        "same_test_windows": c["test_windows"] == ind["test_windows"],
    }
    if c.get("supernet_accuracy") is not None:
        block["distilled"] = True
        block["supernet_accuracy"] = c["supernet_accuracy"]
        block["supernet_f1_weighted"] = c.get("supernet_f1_weighted")
        out["delta_supernet_accuracy_pt"] = round(
            100 * (c["supernet_accuracy"] - ind["accuracy"]), 2
        )
    return out


def recompare(report_path: Path, bank_dir: Path) -> dict[str, Any]:
    """Rewrite a report's collaborative side against ``bank_dir``'s current members (after
    the bank changed, e.g. was distilled); the independent models and figures stay as trained."""
    try:
        report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
        rows = report["results"]
    except (OSError, ValueError, KeyError) as exc:
        msg = f"error: {report_path}: not an independent-baseline report ({exc})"
        raise SystemExit(msg) from None
    bank = load_manifest(bank_dir)
    prefix = ID_PREFIXES.get(report.get("arch", ""), "wr")
    for row in rows:
        for k in (
            "collaborative",
            "delta_accuracy_pt",
            "delta_f1",
            "same_test_windows",
            "delta_supernet_accuracy_pt",
        ):
            row.pop(k, None)
        collab = member_of(bank.models, row["width"], row["resolution"], prefix)
        row.update(collaborative_fields(row["independent"], collab))
    report["recompared"] = {
        "bank": str(bank_dir / "manifest.json"),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
    }
    try:
        report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:  # read-only, or disk full
        raise CommandError(f"{report_path}: cannot rewrite it ({exc.strerror or exc})") from None
    print(markdown_table(rows))
    print(f"rewrote {report_path} against {bank_dir / 'manifest.json'}")
    return report


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Independent vs collaborative, one line per configuration (delta = collab - independent;
    for a distilled bank also the supernet slice before distillation)."""
    lines = [
        "| configuration | channels | MACs | independent acc | independent F1 | collaborative "
        "acc | collaborative F1 | Δ acc (collab − indep) | Δ F1 | supernet slice acc | "
        "Δ acc (slice − indep) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        i, c = row["independent"], row["collaborative"]
        cells = [
            f"`{row['config']}`",
            "/".join(str(ch) for ch in row["channels"]),
            f"{row['macs']:,}",
            f"{100 * i['accuracy']:.2f} %",
            f"{i['f1_weighted']:.4f}",
        ]
        if c is None:
            cells += ["–"] * 6
        else:
            cells += [
                f"{100 * c['accuracy']:.2f} %",
                f"{c['f1_weighted']:.4f}",
                f"{row['delta_accuracy_pt']:+.2f} pt",
                f"{row['delta_f1']:+.4f}",
            ]
            if "supernet_accuracy" in c:
                cells += [
                    f"{100 * c['supernet_accuracy']:.2f} %",
                    f"{row['delta_supernet_accuracy_pt']:+.2f} pt",
                ]
            else:
                cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def member_of(
    models: Sequence[ModelEntry], width: float, resolution: int, prefix: str = "wr"
) -> ModelEntry | None:
    """The bank's width-resolution member at (width, resolution), if it has one."""
    mid = member_id(width, resolution, prefix)
    return next((m for m in models if m.id == mid and m.family == "width-resolution"), None)


def counterparts(
    models: Sequence[ModelEntry],
    configs: Sequence[tuple[float, int]],
    reference: str | None,
    bank_dir: Path,
) -> tuple[ModelEntry, dict[tuple[float, int], ModelEntry | None]]:
    """The reference member (whose recipe and architecture the independent models take) and
    each configuration's collaborative member in the bank: those of the reference's
    architecture, or without one the first architecture with any (``wr-`` before ``wc-``),
    whose first member found is then the reference. SystemExit naming ``bank_dir`` when there
    is no such member."""
    anchor: ModelEntry | None = None
    if reference:
        anchor = next((m for m in models if m.id == reference), None)
        if anchor is None or "train_config" not in (anchor.provenance or {}):
            raise SystemExit(f"error: no trained member {reference!r} in {bank_dir}")
        prefixes: tuple[str, ...] = (ID_PREFIXES.get(arch_of(anchor), "wr"),)
    else:
        prefixes = tuple(ID_PREFIXES.values())
    refs: dict[tuple[float, int], ModelEntry | None] = {}
    for prefix in prefixes:  # wr- members first (the committed bank), then wc-
        refs = {(w, r): member_of(models, w, r, prefix) for w, r in configs}
        if any(e is not None for e in refs.values()):
            break
    anchor = anchor or next((e for e in refs.values() if e is not None), None)
    if anchor is None:
        raise SystemExit(f"error: no width-resolution member of {list(configs)} in {bank_dir}")
    return anchor, refs
