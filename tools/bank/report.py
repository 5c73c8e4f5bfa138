"""Write the bank report: tables in docs/model-bank.md and trade-off plots in docs/img/.

    python -m tools.bank.report [--models models] [--doc docs/model-bank.md] [--img docs/img]

Reads ``manifest.json`` and ``compress-report.json`` of the bank, times every member again in
one interleaved ONNX Runtime run (batch 1, one thread) so that latency ratios between members are
taken under the same load, and replaces the part of the document between the report markers
(appended when the markers are missing). Everything else in the document is left alone. The
image links go from the document's folder to ``--img`` (``img/...`` for the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import AgentError, ModelError
from agent.manifest import Manifest, ModelEntry, load_manifest
from tools.bank.latency import interleaved_latency
from tools.bank.plots import Point, pareto_front, plot_tradeoff
from tools.cli import ArgumentParser, path_arg, plural, positive_int, run_main
from tools.export import board_name, session

BEGIN = "<!-- bank-report:begin (written by python -m tools.bank.report) -->"
END = "<!-- bank-report:end -->"
PAPERS = (
    ("seed 001 (Qin et al.): CNN trained alone", "95.95 %", "13.06 M FLOPs"),
    ("seed 001: same CNN trained collaboratively", "97.00 %", "13.06 M FLOPs"),
    ("seed 002 (Tang et al.): baseline CNN", "96.23 %", "4x theoretical -> 1.7x actual (0.43)"),
    ("seed 000 (Liang et al.): collaborative compression", "-0.25 pt", "~50 % FLOPs cut"),
    (
        "seed 004 (Balemans et al.): pruned + int8 (not HAR)",
        "-",
        "5.62x theoretical -> 3.3x (0.59)",
    ),
)


class ReportError(AgentError):
    """The report cannot be written where it was asked to go (one line, exit status 1)."""


def check_destination(doc: Path, img: Path) -> None:
    """:class:`ReportError` unless ``doc`` can be rewritten and the plots written under ``img``:
    checked before the timing run, not after it."""
    if doc.is_dir():
        raise ReportError(f"--doc {doc}: is a folder, not a document")
    if not doc.parent.is_dir():
        raise ReportError(f"--doc {doc}: the folder {doc.parent} does not exist")
    if doc.exists() and not os.access(doc, os.R_OK | os.W_OK):
        raise ReportError(f"--doc {doc}: cannot read and rewrite it (permissions)")
    if not doc.exists() and not os.access(doc.parent, os.W_OK | os.X_OK):
        raise ReportError(f"--doc {doc}: cannot create it in {doc.parent} (permissions)")
    near = img
    while not near.exists() and near != near.parent:
        near = near.parent
    if not near.is_dir():
        raise ReportError(f"--img {img}: {near} is not a folder")
    if not os.access(near, os.W_OK | os.X_OK):
        raise ReportError(f"--img {img}: cannot write in {near} (permissions)")


def load_compress_report(bank: Manifest) -> dict[str, Any]:
    """The bank's compress report (empty when it has none); a broken one is a ModelError."""
    path = bank.root / str(bank.meta.get("compress_report", "compress-report.json"))
    if not path.exists():
        return {}
    try:
        comp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are both
        raise ModelError(f"{path}: unreadable compress report ({_one_line(exc)})") from None
    if not isinstance(comp, dict):
        raise ModelError(f"{path}: the compress report is {type(comp).__name__}, not an object")
    return comp


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def member_session(bank: Manifest, m: ModelEntry) -> Any:
    """An ONNX Runtime session of member ``m``; a missing or corrupt file is a ModelError naming
    it (ONNX Runtime's own errors, NoSuchFile, InvalidProtobuf, ..., share no base class)."""
    path = bank.path_of(m)
    if not path.is_file():
        raise ModelError(f"{path}: missing (model {m.id} of {bank.root / 'manifest.json'})")
    try:
        return session(path)
    except Exception as exc:  # every ONNX Runtime load error, named
        raise ModelError(f"{path}: cannot load model {m.id} ({_one_line(exc)})") from None


def measure_all(bank: Manifest, rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """p50/p90 of every member in one interleaved run (seeded normal input of its shape)."""
    rng = np.random.default_rng(0)
    sessions = {m.id: member_session(bank, m) for m in bank.models}
    feeds = {m.id: rng.standard_normal(m.input.shape).astype(np.float32) for m in bank.models}
    return interleaved_latency(sessions, feeds, rounds=rounds, runs=runs, warmup=30)


def _pct(x: Any) -> str:
    return f"{100 * x:.2f} %" if isinstance(x, int | float) else "–"


def members_table(models: Sequence[ModelEntry], lat: dict[str, dict[str, float]]) -> list[str]:
    rows = [
        "| member | family | width | res | MACs | params | file bytes | test acc | test F1 "
        "| p50 ms (build) | p50 ms (this run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in sorted(models, key=lambda m: (-m.macs, m.family, m.id)):
        f1 = m.metrics.get("f1_weighted")
        rows.append(
            f"| `{m.id}` | {m.family} | {m.width:g} | {m.resolution} | {m.macs:,} | "
            f"{m.params:,} | {m.file_bytes:,} | {_pct(m.metrics.get('accuracy'))} | "
            f"{f1:.4f} | {m.latency_ms.get('p50', '–')} | {lat[m.id]['p50']} |"
            if isinstance(f1, float)
            else f"| `{m.id}` | {m.family} | – | – | – | – | – | – | – | – | – |"
        )
    return rows


def speedup_rows(
    models: Sequence[ModelEntry], lat: dict[str, dict[str, float]]
) -> tuple[list[str], dict[str, float]]:
    """Actual speedup (latency ratio) over theoretical (MACs ratio) vs the largest fp32 member."""
    fp32 = [m for m in models if m.family != "int8"]
    ref = max(fp32, key=lambda m: m.macs)
    rows = [
        f"Reference: `{ref.id}` ({ref.macs:,} MACs, p50 {lat[ref.id]['p50']} ms in this run).",
        "",
        "| member | theoretical speedup (MACs ratio) | actual speedup (p50 ratio) | realised |",
        "|---|---|---|---|",
    ]
    realised: dict[str, float] = {}
    for m in sorted(fp32, key=lambda m: -m.macs):
        if m.id == ref.id or not m.macs:
            continue
        theo = ref.macs / m.macs
        act = lat[ref.id]["p50"] / lat[m.id]["p50"]
        realised[m.id] = act / theo
        rows.append(f"| `{m.id}` | {theo:.2f}x | {act:.2f}x | {act / theo:.2f} |")
    return rows, realised


def overhead_fit(models: Sequence[ModelEntry], lat: dict[str, dict[str, float]]) -> str:
    fp32 = [m for m in models if m.family != "int8" and m.macs]
    if len({m.macs for m in fp32}) < 2:  # a line through one point is no fit (RankWarning)
        return (
            "No least-squares fit of latency on MACs: it needs two fp32 members of different MACs."
        )
    x = np.array([m.macs / 1e6 for m in fp32])
    y = np.array([lat[m.id]["p50"] for m in fp32])
    slope, icpt = np.polyfit(x, y, 1)
    return (
        f"Least-squares fit over the fp32 members: p50 ≈ {icpt:.3f} ms + {slope:.4f} ms per M MACs "
        f"(a fixed per-call cost of about {icpt:.3f} ms that no pruning removes)."
    )


def int8_rows(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [
        "| int8 of | fp32 test acc | int8 test acc | Δ test | fp32 val | int8 val | "
        "fp32 p50 ms | int8 p50 ms | speedup | bytes fp32 → int8 | kept? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = 100 * (r["int8_accuracy"] - r["fp32_accuracy"])
        out.append(
            f"| `{r['parent']}` | {_pct(r['fp32_accuracy'])} | {_pct(r['int8_accuracy'])} | "
            f"{d:+.2f} pt | {_pct(r['fp32_val_accuracy'])} | {_pct(r['int8_val_accuracy'])} | "
            f"{r['fp32_p50']} | {r['int8_p50']} | {r['fp32_p50'] / r['int8_p50']:.2f}x | "
            f"{r['fp32_bytes']:,} → {r['int8_bytes']:,} | {'yes' if r['kept'] else 'no'}: "
            f"{r['why']} |"
        )
    return out


def pruning_rows(rep: dict[str, Any]) -> list[str]:
    sens = rep["sensitivity"]
    out = [
        f"Sensitivity of `{rep['parent']}` (validation accuracy with one conv pruned alone, no "
        f"fine-tuning; unpruned: {_pct(sens['val_base'])}):",
        "",
        "| criterion | conv | "
        + " | ".join(f"{float(r):.0%} removed" for r in sens["ratios"])
        + " |",
        "|---|---|" + "---|" * len(sens["ratios"]),
    ]
    for crit, layers in sens["acc"].items():
        for layer, by in layers.items():
            vals = " | ".join(_pct(v) for v in by.values())
            out.append(f"| {crit} | {layer} | {vals} |")
    out += [
        "",
        "| criterion | target | planned channels | tolerated drop | val acc per step |",
        "|---|---|---|---|---|",
    ]
    for crit, runs in rep["runs"].items():
        for run in runs:
            steps = ", ".join(_pct(s["val_accuracy"]) for s in run["steps"])
            out.append(
                f"| {crit} | {run['target']:.0%} | {run['plan']} | "
                f"{100 * run['tolerated_val_drop']:.2f} pt | {steps} |"
            )
    return out


def render(bank: Manifest, comp: dict[str, Any], lat: dict[str, Any], img: Path, doc: Path) -> str:
    models = list(bank.models)
    pts_lat = [Point(m.id, m.family, lat[m.id]["p50"], m.metrics["accuracy"]) for m in models]
    pts_mac = [Point(m.id, m.family, m.macs, m.metrics["accuracy"]) for m in models]
    # the links go from the document's folder to the plots, wherever the two are
    rel = Path(os.path.relpath(img, doc.parent)).as_posix()
    plot_tradeoff(
        pts_lat,
        "p50 latency (ms, batch 1, 1 thread, ORT)",
        "Accuracy vs latency",
        img / "bank-accuracy-latency.png",
        logx=True,
    )
    plot_tradeoff(
        pts_mac, "MACs per window", "Accuracy vs MACs", img / "bank-accuracy-macs.png", logx=True
    )
    sp_rows, realised = speedup_rows(models, lat)
    vals = np.array(list(realised.values()))
    spread = (
        f"median {np.median(vals):.2f}, range {vals.min():.2f}–{vals.max():.2f} over "
        f"{plural(len(realised), 'member')}"
        if realised
        else "no smaller fp32 member to compare"
    )
    lines = [
        BEGIN,
        "",
        "## Bank report",
        "",
        f"Latencies in the last column: one interleaved run of every member on {board_name()} "
        f"(ONNX Runtime, batch 1, 1 thread, {next(iter(lat.values()))['runs']} calls each); "
        "the build column is the figure in the manifest (measured when the member was made).",
        "",
        *members_table(models, lat),
        "",
        f"![accuracy vs latency]({rel}/bank-accuracy-latency.png)",
        f"![accuracy vs MACs]({rel}/bank-accuracy-macs.png)",
        "",
        "Pareto front (latency): "
        + ", ".join(f"`{p.id}`" for p in pareto_front(pts_lat))
        + ". Pareto front (MACs): "
        + ", ".join(f"`{p.id}`" for p in pareto_front(pts_mac))
        + ".",
        "",
        "### Realised speedup vs theoretical",
        "",
        f"Realised = (latency ratio) / (MACs ratio) against the largest member: {spread}. "
        f"{overhead_fit(models, lat)}",
        "",
        *sp_rows,
    ]
    if "pruning" in comp:
        lines += ["", "### Pruning", "", *pruning_rows(comp["pruning"])]
    if "int8" in comp:
        lines += ["", "### int8 trials (every fp32 member; kept only where it pays)", ""]
        lines += int8_rows(comp["int8"])
    lines += ["", "### Side by side with the papers (UCI-HAR)", "", *paper_rows(models), "", END]
    return "\n".join(lines) + "\n"


def paper_rows(models: Sequence[ModelEntry]) -> list[str]:
    by_id = {m.id: m for m in models}
    out = ["| source | accuracy | cost |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in PAPERS]
    best = max((m for m in models if m.family != "int8"), key=lambda m: m.metrics["accuracy"])
    out.append(
        f"| ours: best fp32 member `{best.id}` | {_pct(best.metrics['accuracy'])} | "
        f"{best.macs / 1e6:.2f} M MACs |"
    )
    for m in models:
        if m.family == "pruned":
            parent = by_id.get(str(m.provenance.get("parent")))
            if parent is None:
                continue
            d = 100 * (m.metrics["accuracy"] - parent.metrics["accuracy"])
            out.append(
                f"| ours: `{m.id}` vs `{parent.id}` | {d:+.2f} pt | "
                f"{1 - m.macs / parent.macs:.0%} MACs cut |"
            )
    return out


def write_section(doc: Path, section: str) -> None:
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text, encoding="utf-8")


def run(args: argparse.Namespace) -> str:
    check_destination(args.doc, args.img)  # before minutes of timing, not after
    bank = load_manifest(args.models)
    comp = load_compress_report(bank)
    lat = measure_all(bank, rounds=args.rounds, runs=args.runs)
    try:
        section = render(bank, comp, lat, args.img, args.doc)
    except OSError as exc:  # disk full, or the folder changed meanwhile
        raise ReportError(f"--img {args.img}: cannot write the plots ({_one_line(exc)})") from None
    try:
        write_section(args.doc, section)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"--doc {args.doc}: cannot rewrite it ({_one_line(exc)})") from None
    print(f"wrote {args.doc} and plots in {args.img}")
    return section


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog="python -m tools.bank.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--models",
        "--bank",
        dest="models",
        type=path_arg,
        default=Path("models"),
        help="bank folder (models); --bank as in distill and paced_latency",
    )
    ap.add_argument(
        "--doc",
        type=path_arg,
        default=Path("docs/model-bank.md"),
        help="document whose report section is rewritten (docs/model-bank.md)",
    )
    ap.add_argument("--img", type=path_arg, default=Path("docs/img"), help="plot folder (docs/img)")
    ap.add_argument("--rounds", type=positive_int, default=20, help="interleaved rounds (20)")
    ap.add_argument("--runs", type=positive_int, default=25, help="calls per member per round (25)")
    return ap.parse_args(list(sys.argv[1:] if argv is None else argv))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
