"""Distil every width-resolution member from the supernet's full configuration (issue 3).

    python -m tools.bank.distill [--bank models] [--epochs 20] [--teacher wc-w1.00-r128]
    python -m tools.bank.distill --bank build/bank-col2d   # a selection run: val before/after
    python -m tools.bank.distill --smoke --bank build/bank-smoke

Run after ``python -m tools.bank.build`` (``build --distill-epochs N`` runs it) and before
``python -m tools.bank.compress``. The collaborative supernet hands each configuration a good
start; this stage then trains every member on its own for a few epochs, as the pruned members
are fine-tuned after pruning (:mod:`tools.bank.finetune`):

- the teacher is the bank's full configuration (width 1.0 at the highest resolution), exactly as
  the bank ships it (rebuilt from its ONNX graph, :mod:`tools.bank.parent`); its soft outputs on
  the full-resolution training windows are computed once, before anything changes;
- each student is a member rebuilt from its ONNX graph (BN already folded), trained on the
  *same* windows at its own resolution (index-aligned, :func:`tools.bank.windows.aligned_windows`
  with the build's hop) with ``0.5 * KL(student || teacher) + 0.5 * CE``, random gains, AdamW and
  a cosine decay from ``--lr`` (2e-3, chosen on validation; the rest as
  :class:`~tools.bank.finetune.FinetuneConfig`);
- the teacher itself is distilled from its own frozen outputs (a born-again step, chosen on
  validation: docs/model-bank.md); ``--keep-teacher`` leaves it as the supernet made it;
- ``--teacher A,B,…`` or ``--ensemble-width W`` (every member of width >= W, at every
  resolution) make the teacher an ensemble: the mean of the members' softmax outputs, each on
  the same aligned windows at its own resolution, all computed before any member changes;
- ``--teacher-at-resolution`` gives each student the width-1.0 member at the student's own
  resolution as its teacher (a teacher assistant, when that member was itself distilled from the
  full configuration first: run this stage twice, the second time with ``--keep-teacher`` and
  ``--members`` naming the narrower members).

Training subjects follow the build: a refit bank (``provenance.refit``) trains on the train and
validation subjects, a selection run on the train subjects only and reports validation accuracy
before and after. Each member is exported again, checked against PyTorch, evaluated with ONNX
Runtime on the test subjects and timed; its manifest entry keeps its id and family and gains
``provenance.distilled`` and ``metrics.supernet_accuracy`` (the figure before this stage). New
files are staged and only replace the old ones, with the manifest, once every member is done. A
bank whose members were distilled already is refused (distilling twice compounds).

This module is the command (options, staging, manifest and report); the stage's parts are
:mod:`tools.bank.distill_plan` (students, teachers, refusals), :mod:`tools.bank.distill_data`
(windows and soft targets), :mod:`tools.bank.distill_member` (one member trained, exported,
evaluated) and :mod:`tools.bank.distill_report` (the printed figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agent.errors import ModelError
from agent.manifest import ModelEntry, load_manifest, write_manifest
from tools.bank.derived import warn_stale
from tools.bank.distill_data import distill_data
from tools.bank.distill_member import distil_member
from tools.bank.distill_plan import plan_distillation
from tools.bank.distill_report import member_line, summary, summary_lines
from tools.bank.finetune import FinetuneConfig
from tools.bank.staging import bank_lock
from tools.cli import positive_int, run_main, seed
from tools.data import add_data_argument
from tools.provenance import git_commit
from tools.train import seed_everything

COMMAND = "python -m tools.bank.distill"
DEFAULT_EPOCHS = 20
DEFAULT_LR = 2e-3  # chosen on validation over the pruning fine-tune's 5e-4 (docs/model-bank.md)
STAGING = ".distill-staging"
REPORT_FILE = "distill-report.json"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Hold the bank for the whole run (a second tool on it is refused before any work)."""
    with bank_lock(args.bank):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.time()
    bank_dir: Path = args.bank
    # the folder the user named: build runs this stage on its working copy (args.bank), whose
    # name means nothing to the user, so messages name this one
    shown: Path = getattr(args, "bank_shown", bank_dir)
    try:
        bank = load_manifest(bank_dir)
    except ModelError as exc:
        raise SystemExit(f"error: {str(exc).replace(str(bank_dir), str(shown))}") from None
    plan = plan_distillation(
        bank,
        bank_dir,
        shown,
        teacher=args.teacher,
        ensemble_width=args.ensemble_width,
        at_resolution=args.teacher_at_resolution,
        members=args.members,
        keep_teacher=args.keep_teacher,
    )
    teachers, students = plan.teachers, plan.students
    teacher_entry = teachers[0]
    data = distill_data(bank_dir, plan, args.data, args.smoke)
    teacher_name = ",".join(t.id for t in teachers)
    print(
        f"data: {data.experiments} experiments from {data.source}; fit subjects "
        f"{list(data.fit_subjects)} ({len(data.y)} windows, hop {data.hop128}), teacher "
        f"{teacher_name} (train accuracy {data.teacher_fit_accuracy:.4f})"
    )
    cfg = FinetuneConfig(max_steps=args.max_steps, lr=args.lr)
    staging = bank_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    common = {
        "command": " ".join([COMMAND, *args.argv]),
        # one teacher: its id and sha256; an ensemble: lists of both, in the same order; one
        # teacher per resolution: the id and sha256 of each student's own (set per member)
        "teacher": teacher_entry.id if len(teachers) == 1 else [t.id for t in teachers],
        "teacher_sha256": (
            teacher_entry.sha256 if len(teachers) == 1 else [t.sha256 for t in teachers]
        ),
        "teacher_at_resolution": bool(args.teacher_at_resolution),
        "epochs": args.epochs,
        "dataset": f"UCI HAPT (CC BY 4.0), {data.source}",
        "finetune_config": dataclasses.asdict(cfg),
        "fit_subjects": list(data.fit_subjects),
        "hop128": data.hop128,
        "seed": args.seed,
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    new: dict[str, ModelEntry] = {}
    rows: list[dict[str, Any]] = []
    for i, entry in enumerate(students, 1):
        new[entry.id], row = distil_member(
            entry,
            f"{entry.id} [{i}/{len(students)}]",
            bank_dir,
            staging,
            data,
            cfg,
            args.epochs,
            args.seed,
            latency_runs=50 if args.smoke else 500,
            distilled={**common, **plan.own_teacher(entry)},
        )
        rows.append(row)
        print(member_line(row))
    # every member is done: move the files in, then the manifest (nothing half-written before)
    for entry in new.values():
        os.replace(staging / entry.file, bank_dir / entry.file)
    staging.rmdir()
    meta = {k: v for k, v in bank.meta.items() if k != "manifest_version"}
    meta["distilled_by"] = COMMAND
    meta["distilled_at"] = common["date"]
    write_manifest(bank_dir, [new.get(m.id, m) for m in bank.models], meta)
    if not getattr(args, "compress_follows", False):  # build --compress remakes them next
        warn_stale([new.get(m.id, m) for m in bank.models])
    means = summary(rows)
    report = {**common, "rows": rows, "summary": means, "seconds": round(time.time() - started)}
    (bank_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(means):
        print(line)
    done_in = f"{time.time() - started:.0f} s"
    print(f"distilled {len(new)} members into {shown / 'manifest.json'} in {done_in}")
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=COMMAND,
        description="Distil each width-resolution member of a built bank from its full "
        "configuration (run before compress).",
    )
    ap.add_argument(
        "--bank", type=Path, default=None, help="bank folder (models; smoke: build/bank-smoke)"
    )
    ap.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help=f"epochs per member ({DEFAULT_EPOCHS})",
    )
    ap.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        help=f"start of each member's cosine learning-rate decay (AdamW; {DEFAULT_LR:g})",
    )
    who = ap.add_mutually_exclusive_group()
    who.add_argument(
        "--teacher",
        default=None,
        help="teacher member id, or comma-separated ids for an ensemble (mean of their softmax "
        "outputs; default: the full configuration, width 1.0 at the highest resolution)",
    )
    who.add_argument(
        "--ensemble-width",
        type=float,
        default=None,
        metavar="W",
        help="teacher: the ensemble of every member of width >= W, at every resolution",
    )
    who.add_argument(
        "--teacher-at-resolution",
        action="store_true",
        help="teacher of each student: the width-1.0 member at the student's own resolution",
    )
    ap.add_argument("--members", default=None, help="comma-separated member ids (default: all)")
    ap.add_argument(
        "--keep-teacher",
        action="store_true",
        help="leave the teacher(s) as they are (default: they too are distilled from the "
        "frozen outputs, a born-again step)",
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (0)")
    ap.add_argument("--threads", type=positive_int, default=2, help="torch threads (2)")
    add_data_argument(ap)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, few steps (CI)")
    ap.add_argument(
        "--max-steps", type=positive_int, default=None, help="cap steps per member (trials)"
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.bank is None:
        args.bank = Path("build/bank-smoke") if args.smoke else Path("models")
    args.bank_shown = args.bank  # messages name it, even when a caller moves args.bank
    if args.smoke and args.max_steps is None:
        args.max_steps = 4
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if not args.lr > 0:
        ap.error("--lr must be positive")
    if args.ensemble_width is not None and not 0 < args.ensemble_width <= 1:
        ap.error("--ensemble-width must be in (0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
