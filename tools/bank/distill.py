"""Distil every width-resolution member from the supernet's full configuration (issue 3).

    python -m tools.bank.distill [--bank models] [--epochs 20] [--teacher wc-w1.00-r128]
    python -m tools.bank.distill --bank build/bank-col2d   # a selection run: val before/after
    python -m tools.bank.build --smoke --distill-epochs 0  # a smoke bank, not distilled yet ...
    python -m tools.bank.distill --smoke                   # ... distilled (build/bank-smoke)

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
- each member is trained ``--soup`` times (3) from its slice, seeds ``--seed`` onwards, and keeps
  the mean of the runs' weights (a weight soup, :mod:`tools.bank.soup`; chosen on validation:
  docs/model-bank.md); every run's validation and test accuracy is kept in its provenance;
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
files are staged (in ``BANK/.distill-staging/``, removed when the run ends, however it ends) and
only replace the old ones, with the manifest, once every member is done: a failure or Ctrl-C
before that leaves the bank as it was. A bank whose members were distilled already is refused
(distilling twice compounds): ``build`` distils by default, so distil a bank built with
``--distill-epochs 0``.

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
from agent.manifest import Manifest, ModelEntry, load_manifest, write_manifest
from tools.bank.augment import supernet_rotation
from tools.bank.derived import warn_stale
from tools.bank.distill_data import distill_data
from tools.bank.distill_member import distil_member
from tools.bank.distill_plan import plan_distillation
from tools.bank.distill_report import member_line, summary, summary_lines
from tools.bank.finetune import FinetuneConfig
from tools.bank.staging import bank_lock, check_writable, interrupts_held
from tools.cli import (
    ArgumentParser,
    id_list,
    interrupt_status,
    interrupted,
    number_in,
    path_arg,
    plural,
    positive_int,
    positive_number,
    run_main,
    seed,
    thread_count,
)
from tools.data import add_data_argument
from tools.provenance import git_commit
from tools.train import seed_everything

COMMAND = "python -m tools.bank.distill"
DEFAULT_EPOCHS = 20
DEFAULT_LR = 2e-3  # chosen on validation over the pruning fine-tune's 5e-4 (docs/model-bank.md)
DEFAULT_SOUP = 3  # runs averaged per member, chosen on validation over 1 (docs/model-bank.md)
STAGING = ".distill-staging"
REPORT_FILE = "distill-report.json"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Hold the bank for the whole run (a second tool on it is refused before any work)."""
    with bank_lock(args.bank):
        return _run(args)


def _check_bank_folder(bank_dir: Path, shown: Path) -> None:
    """SystemExit with one line, naming ``shown``, when the bank folder is missing, is a file, or
    cannot be changed: checked when the run starts, not when its members are written."""
    if not bank_dir.exists():
        raise SystemExit(
            f"error: {shown}: no such bank folder (build one with python -m tools.bank.build "
            "--distill-epochs 0)"
        )
    if not bank_dir.is_dir():
        raise SystemExit(f"error: {shown} is a file, not a bank folder")
    try:
        check_writable(bank_dir, beside=False)  # the staging folder is inside the bank
    except SystemExit as exc:
        raise SystemExit(str(exc.code).replace(str(bank_dir), str(shown))) from None
    staging = bank_dir / STAGING
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise SystemExit(f"error: {shown / STAGING} is not a folder this tool left; remove it")


def _run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.time()
    bank_dir: Path = args.bank
    # the folder the user named: build runs this stage on its working copy (args.bank), whose
    # name means nothing to the user, so messages name this one
    shown: Path = getattr(args, "bank_shown", bank_dir)
    _check_bank_folder(bank_dir, shown)
    staging = bank_dir / STAGING
    try:
        try:
            bank, new, common, rows = _distil(args, bank_dir, shown, staging)
        except KeyboardInterrupt as exc:
            if bank_dir != shown:  # build's working copy: build says it, naming the bank
                raise
            interrupted(f"interrupted: {shown} was left as it was")
            raise SystemExit(interrupt_status(exc)) from None
        means = summary(rows)
        seconds = round(time.time() - started)
        report = {**common, "rows": rows, "summary": means, "seconds": seconds}
        # every member is done: move the files in, then the manifest, then the report (nothing
        # half-written before, and a Ctrl-C waits for all of them)
        with interrupts_held():
            for entry in new.values():
                os.replace(staging / entry.file, bank_dir / entry.file)
            meta = {k: v for k, v in bank.meta.items() if k != "manifest_version"}
            meta["distilled_by"] = COMMAND
            meta["distilled_at"] = common["date"]
            write_manifest(bank_dir, [new.get(m.id, m) for m in bank.models], meta)
            text = json.dumps(report, indent=2) + "\n"
            (bank_dir / REPORT_FILE).write_text(text, encoding="utf-8")
    finally:
        # only the staging folder this run made (a symlink or file there was refused above)
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
    if not getattr(args, "compress_follows", False):  # build --compress remakes them next
        warn_stale([new.get(m.id, m) for m in bank.models], shown)
    for line in summary_lines(means):
        print(line)
    done_in = f"{time.time() - started:.0f} s"
    print(f"distilled {plural(len(new), 'member')} into {shown / 'manifest.json'} in {done_in}")
    return report


def _distil(
    args: argparse.Namespace, bank_dir: Path, shown: Path, staging: Path
) -> tuple[Manifest, dict[str, ModelEntry], dict[str, Any], list[dict[str, Any]]]:
    """Every student trained, exported and evaluated into ``staging``; the bank is not changed.
    Returns the bank's manifest, the new entries by id, the fields every member's
    ``provenance.distilled`` shares, and the report's rows."""
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
    rotate = args.rotate if args.rotate is not None else supernet_rotation(teacher_entry)
    cfg = FinetuneConfig(max_steps=args.max_steps, lr=args.lr, rotate_deg=rotate)
    if rotate:
        print(f"random rotations: up to {rotate:g} degrees about a random axis per window")
    shutil.rmtree(staging, ignore_errors=True)  # left by a run that was killed
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
        "soup": args.soup,
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
            soup=args.soup,
        )
        rows.append(row)
        print(member_line(row))
    return bank, new, common, rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=COMMAND,
        description="Distil each width-resolution member of a built bank from its full "
        "configuration (run before compress).",
        epilog="Rewrites the members in BANK and writes BANK/distill-report.json, all at once at "
        "the end; about 10-13 min per run for the 24 members on a 2-core VM (about 30 min with the "
        "default --soup 3). docs/model-bank.md",
    )
    ap.add_argument(
        "--bank", type=path_arg, default=None, help="bank folder (models; smoke: build/bank-smoke)"
    )
    ap.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help=f"epochs per member ({DEFAULT_EPOCHS})",
    )
    ap.add_argument(
        "--soup",
        type=positive_int,
        default=DEFAULT_SOUP,
        metavar="N",
        help=f"train each member N times from its slice (seeds SEED..SEED+N-1) and keep the mean "
        f"of the runs' weights, a weight soup ({DEFAULT_SOUP}; 1: one run, a third of the time)",
    )
    ap.add_argument(
        "--lr",
        type=positive_number,
        default=DEFAULT_LR,
        help=f"start of each member's cosine learning-rate decay (AdamW; {DEFAULT_LR:g})",
    )
    ap.add_argument(
        "--rotate",
        type=number_in(0, 180),
        default=None,
        metavar="DEG",
        help="random rotations of each training window's sensor triads, up to DEG degrees "
        "(default: what the bank's supernet was trained with, its train_config.rotate_deg; "
        "0: none)",
    )
    who = ap.add_mutually_exclusive_group()
    who.add_argument(
        "--teacher",
        type=id_list,
        default=None,
        help="teacher member id, or comma-separated ids for an ensemble (mean of their softmax "
        "outputs; default: the full configuration, width 1.0 at the highest resolution)",
    )
    who.add_argument(
        "--ensemble-width",
        type=number_in(0, 1, above=True),
        default=None,
        metavar="W",
        help="teacher: the ensemble of every member of width >= W, at every resolution",
    )
    who.add_argument(
        "--teacher-at-resolution",
        action="store_true",
        help="teacher of each student: the width-1.0 member at the student's own resolution",
    )
    ap.add_argument(
        "--members", type=id_list, default=None, help="comma-separated member ids (default: all)"
    )
    ap.add_argument(
        "--keep-teacher",
        action="store_true",
        help="leave the teacher(s) as they are (default: they too are distilled from the "
        "frozen outputs, a born-again step)",
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (0)")
    ap.add_argument(
        "--threads",
        type=thread_count,
        default=2,
        help="torch threads (2; more than the CPUs here: a warning, and a much slower run)",
    )
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
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
