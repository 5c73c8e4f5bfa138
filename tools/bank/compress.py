"""Add pruned and int8 members to a built bank (issue 3, compression part).

    python -m tools.bank.compress [--out models] [--parent wc-w1.00-r128] [--seed 0]
    python -m tools.bank.compress --smoke --out build/bank-smoke   # tiny run (tests)
    python -m tools.bank.compress --out build/bank-col2d-refit     # a column2d bank (wc-…)

The parent's architecture (1-D ``wr-`` or per-column 2-D ``wc-``) is read from its manifest
entry (:mod:`tools.bank.plain_arch`); without ``--parent`` the full configuration
``wr-w1.00-r128`` is pruned, or ``wc-w1.00-r128`` in a bank that has only column2d members.

Run after ``python -m tools.bank.build`` (or ``build --compress`` runs it). Reads the bank's
manifest, then:

1. *pruned*: :mod:`tools.bank.prune_stage` prunes the parent to each MACs target with each
   criterion, keeps per target the criterion with the better validation accuracy;
2. *int8*: :mod:`tools.bank.quantize_stage` quantizes every fp32 member and keeps those that pay;
3. merges the kept members into ``OUT/manifest.json`` (earlier pruned and int8 members and their
   files are replaced) and writes every measured figure, kept or not, to
   ``OUT/compress-report.json`` for ``tools.bank.report``.

Splits: fine-tuning and calibration windows from the train subjects minus the validation
subjects; validation subjects for every choice (sensitivity, criterion, keep/drop); test subjects
only for the reported metrics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import onnxruntime
import torch

from agent.manifest import Manifest, ModelEntry, load_manifest, write_manifest
from tools.bank.compress_args import (
    COMMAND,
    DEFAULT_PARENT,
    DEFAULT_PARENT_COLUMN2D,
    parse_args,
)
from tools.bank.derived import parent_of, still_valid
from tools.bank.members import FAMILY
from tools.bank.parent import plain_from_onnx
from tools.bank.plain_arch import model_config
from tools.bank.prune_stage import PRUNED, StageData, run_pruning
from tools.bank.quantize_stage import INT8, held_out_decisions, run_quantization
from tools.bank.staging import bank_lock, check_member_files, check_writable, staged_bank
from tools.cli import CommandError, run_main
from tools.data import DEFAULT_VAL_SUBJECTS, load_experiments, make_split
from tools.hapt import TEST_SUBJECTS
from tools.provenance import git_commit
from tools.train import seed_everything
from tools.train_baseline import SMOKE_SUBJECTS

__all__ = [
    "COMMAND",
    "DEFAULT_PARENT",
    "DEFAULT_PARENT_COLUMN2D",
    "REBUILD",
    "main",
    "parse_args",
    "run",
]

REPORT_FILE = "compress-report.json"
# the chain python -m tools.bank.rebuild runs (tests/tools/test_rebuild.py): a selection bank
# first, whose trials decide the refit's int8 variants
REBUILD = (
    "python -m tools.import_hapt && "
    "python -m tools.train_baseline --no-refit --out build/bank-sel && "
    "python -m tools.bank.build --arch column2d --epochs 40 --out build/bank-sel --compress && "
    "python -m tools.train_baseline && "
    "python -m tools.bank.build --arch column2d --epochs 40 --refit --out models --compress "
    "--int8-decide-on build/bank-sel/compress-report.json && "
    "python -m tools.bank.paced_latency && "
    "python -m tools.bank.report"
)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Hold the bank for the whole run (a second tool on it is refused before any work)."""
    # a bank that cannot be changed is refused now, not after minutes of pruning
    check_writable(getattr(args, "out_shown", args.out))
    with bank_lock(args.out):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    seed_everything(args.seed)
    started = time.time()
    out: Path = args.out
    shown: Path = getattr(args, "out_shown", out)  # build hands in its working copy as out
    bank = load_manifest(out)
    base = [m for m in bank.models if m.family not in (PRUNED, INT8)]
    # every check before anything is written or deleted: a typo must not cost the bank
    parent_id = args.parent or _default_parent(base)
    parent = next((m for m in bank.models if m.id == parent_id), None)
    if parent is None or parent.family != FAMILY:
        what = "" if parent is None else f"of family {parent.family!r}, not "
        raise SystemExit(
            f"error: parent {parent_id!r} is {what or 'not '}a width-resolution member of "
            f"{shown / 'manifest.json'}; nothing was changed"
        )
    if args.int8_decide_on is not None:  # (read again by the int8 stage)
        held_out_decisions(args.int8_decide_on)
    wanted = set(args.int8_only.split(",")) if args.int8_only else None
    if wanted is not None and wanted - {m.id for m in base}:
        raise SystemExit(
            f"error: --int8-only names members not in the bank: "
            f"{', '.join(sorted(wanted - {m.id for m in base}))}; nothing was changed"
        )
    # the files the stages will read are the ones the manifest names (their sha256 becomes
    # the members' parent_sha256), so are the files of the members the new manifest keeps as
    # they are (it must not list a file that is gone), and the parent's graph is one the
    # pruning can rebuild
    try:
        reads = _inputs(args, bank, base, parent, wanted)
        check_member_files(out, [*reads, *(m for m in _kept(args, bank, base) if m not in reads)])
        if not args.no_prune:
            try:
                plain_from_onnx(out / parent.file, model_config(parent))
            except ValueError as exc:
                raise SystemExit(
                    f"error: {exc} (parent {parent.id}); nothing was changed"
                ) from None
    except SystemExit as exc:
        raise SystemExit(str(exc.code).replace(str(out), str(shown))) from None

    experiments, source = load_experiments(args.data, SMOKE_SUBJECTS if args.smoke else None)
    split = make_split({e.subject for e in experiments}, DEFAULT_VAL_SUBJECTS, TEST_SUBJECTS)
    data = StageData(
        fit=[e for e in experiments if e.subject in split.train],
        val=[e for e in experiments if e.subject in split.val],
        test=[e for e in experiments if e.subject in split.test],
    )
    print(f"data: {len(experiments)} experiments from {source}; split {split}")
    provenance = {
        "command": " ".join([COMMAND, *args.argv]),
        "seed": args.seed,
        "dataset": f"UCI HAPT (CC BY 4.0), {source}",
        "fit_subjects": list(split.train),
        "val_subjects": list(split.val),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,  # its quantizer makes the int8 graphs
        "torch_pruning": _version("torch-pruning"),
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        with staged_bank(out, locked=True) as work:  # the bank changes all at once, or not at all
            try:
                pruned, int8, report, made, trials = _compress(
                    args, work, bank, base, parent, wanted, data, provenance, started
                )
            except KeyboardInterrupt:
                _end_bars()  # "interrupted: ..." starts a line of its own
                raise
    except OSError as exc:  # disk full, or the folder changed its permissions meanwhile
        # the file's name only: its folder may be the working copy, which is gone now
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        why = f"{exc.strerror or exc}{where}"
        raise CommandError(f"{shown}: cannot write the bank: {why}") from None
    manifest = out / "manifest.json"
    kept = [m for m in (*pruned, *int8) if m not in made]
    paid = sum(bool(r.get("kept")) for r in trials)
    tried = "" if args.no_quantize else f" (int8 kept for {paid} of {len(trials)} tried)"
    print(
        f"{_made_kept(made, kept)}{tried}; wrote {shown / 'manifest.json'} and "
        f"{shown / REPORT_FILE} in {time.time() - started:.0f} s"
    )
    return {"pruned": pruned, "int8": int8, "report": report, "manifest": manifest}


def _members(entries: Sequence[ModelEntry]) -> str:
    """``2 pruned and 1 int8 members``, ``1 pruned member``, ``no member``."""
    counts = [
        f"{n} {family}"
        for family in (PRUNED, INT8)
        if (n := sum(m.family == family for m in entries))
    ]
    if not counts:
        return "no member"
    return f"{' and '.join(counts)} member{'' if len(entries) == 1 else 's'}"


def _made_kept(made: Sequence[ModelEntry], kept: Sequence[ModelEntry]) -> str:
    """What the run made, and what it kept from before (a skipped stage, an untried member)."""
    text = f"made {_members(made)}"
    return f"{text}, kept {_members(kept)} from before" if kept else text


def _end_bars() -> None:
    """Close the progress bars still open (a fine-tuning bar left open by Ctrl-C), each ending
    its line, so that what is printed next starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.leave = True  # a bar that would vanish stays where it stopped, ending its line
        bar.close()


def _compress(
    args: argparse.Namespace,
    out: Path,
    bank: Manifest,
    base: list[ModelEntry],
    parent: ModelEntry,
    wanted: set[str] | None,
    data: StageData,
    provenance: dict[str, Any],
    started: float,
) -> tuple[
    list[ModelEntry], list[ModelEntry], dict[str, Any], list[ModelEntry], list[dict[str, Any]]
]:
    """Prune and quantize into ``out`` (a working copy of the bank); write report and manifest.
    Returns the pruned and int8 members of the new manifest, the report, the members this run
    made (the others were kept from before) and this run's int8 trial rows."""
    old_pruned = [m for m in bank.models if m.family == PRUNED]
    old_int8 = [m for m in bank.models if m.family == INT8]
    previous = out / REPORT_FILE
    report: dict[str, Any] = {}
    if previous.is_file():  # a skipped stage keeps its section
        old = json.loads(previous.read_text(encoding="utf-8"))
        report = {k: old[k] for k in ("pruning", "int8") if k in old}
    report_before = dict(report)
    report.update(parent=parent.id, smoke=bool(args.smoke))
    by_id = {m.id: m for m in base}
    if args.no_prune:  # keep the pruned members whose parent is unchanged
        pruned = [m for m in old_pruned if still_valid(m, by_id)]
    else:
        pruned, report["pruning"] = run_pruning(
            parent,
            out,
            data,
            provenance,
            args.seed,
            smoke=args.smoke,
            finetune_max_steps=args.finetune_max_steps,
        )
    by_id.update((m.id, m) for m in pruned)
    tried: list[ModelEntry] = []  # made by this run (the int8 trials that paid)
    rows: list[dict[str, Any]] = []  # this run's trials
    if args.no_quantize:  # keep the int8 members whose fp32 parent is unchanged
        int8 = [m for m in old_int8 if still_valid(m, by_id)]
    else:
        candidates = [*base, *pruned]
        if args.smoke:
            candidates = [m for m in candidates if m.id in _smoke_ids(parent, pruned)]
        if wanted is not None:
            candidates = [m for m in candidates if m.id in wanted or m in pruned]
        tried, rows = run_quantization(
            candidates, out, data, provenance, args.seed, args.smoke, args.int8_decide_on
        )
        int8, report["int8"] = tried, rows
        if wanted is not None:  # a partial trial: the others keep their int8 member and row
            again = {m.id for m in candidates}
            untried = [
                m
                for m in old_int8
                if m.provenance.get("parent") not in again and still_valid(m, by_id)
            ]
            int8 = [*untried, *tried]
            # an earlier trial's row stays while it still describes the bank: its member is
            # kept, or it was dropped and its parent is still here (ids only: no sha in rows)
            kept_ids = {m.id for m in untried}
            old_rows = [
                r
                for r in report_before.get("int8", [])
                if r["parent"] not in again
                and (r["id"] in kept_ids if r.get("kept") else r["parent"] in by_id)
            ]
            report["int8"] = [*old_rows, *rows]
    kept = {m.file for m in (*base, *pruned, *int8)}
    for m in (*old_pruned, *old_int8):
        if m.file not in kept:
            (out / m.file).unlink(missing_ok=True)
            if parent_of(m) in {*by_id, *(p.id for p in old_pruned)}:
                print(f"removed {m.id}: replaced, or its parent changed")
            else:  # never remade: nothing here to make it from
                print(f"removed {m.id}: made from {parent_of(m)}, which is no longer in the bank")
    report["seconds"] = round(time.time() - started, 1)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    meta = {k: v for k, v in bank.meta.items() if k != "manifest_version"}
    meta["compressed_by"] = COMMAND
    meta["compressed_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    meta["compress_report"] = REPORT_FILE
    if not args.smoke:
        meta["rebuild"] = REBUILD
    write_manifest(out, [*base, *pruned, *int8], meta)
    return pruned, int8, report, [*([] if args.no_prune else pruned), *tried], rows


def _inputs(
    args: argparse.Namespace,
    bank: Manifest,
    base: list[ModelEntry],
    parent: ModelEntry,
    wanted: set[str] | None,
) -> list[ModelEntry]:
    """The members whose files the run reads: the parent (pruning), and the fp32 members the
    int8 stage will try (as :func:`_compress` picks them; the new pruned members aside)."""
    reads = [] if args.no_prune else [parent]
    if not args.no_quantize:
        by_id = {m.id: m for m in base}
        kept = [m for m in bank.models if m.family == PRUNED and still_valid(m, by_id)]
        candidates = [*base, *(kept if args.no_prune else [])]
        if args.smoke:
            candidates = [m for m in candidates if m.id in _smoke_ids(parent, kept)]
        if wanted is not None:
            candidates = [m for m in candidates if m.id in wanted or m in kept]
        reads += [m for m in candidates if m not in reads]
    return reads


def _kept(args: argparse.Namespace, bank: Manifest, base: list[ModelEntry]) -> list[ModelEntry]:
    """The members the new manifest lists as they are: every fp32 member, and the pruned and
    int8 members of a skipped stage (or of an ``--int8-only`` run) whose parent is unchanged."""
    by_id = {m.id: m for m in base}
    kept = list(base)
    if args.no_prune:
        pruned = [m for m in bank.models if m.family == PRUNED and still_valid(m, by_id)]
        by_id.update((m.id, m) for m in pruned)
        kept += pruned
    if args.no_quantize or args.int8_only:
        kept += [m for m in bank.models if m.family == INT8 and still_valid(m, by_id)]
    return kept


def _default_parent(models: Sequence[ModelEntry]) -> str:
    """``wr-w1.00-r128``; in a bank without it but with ``wc-w1.00-r128`` (column2d), that."""
    ids = {m.id for m in models}
    if DEFAULT_PARENT not in ids and DEFAULT_PARENT_COLUMN2D in ids:
        return DEFAULT_PARENT_COLUMN2D
    return DEFAULT_PARENT


def _smoke_ids(parent: ModelEntry, pruned: Sequence[ModelEntry]) -> set[str]:
    """Smoke runs quantize only the parent and the pruned members (speed)."""
    return {parent.id, *(m.id for m in pruned)}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
