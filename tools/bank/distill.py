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

import numpy as np
import torch

from agent.errors import ModelError
from agent.manifest import ModelEntry, load_manifest, sha256_file, write_manifest
from agent.windowing import Normalizer
from tools.bank.derived import warn_stale
from tools.bank.evaluate import latency_block, member_metrics
from tools.bank.finetune import FinetuneConfig, finetune, torch_accuracy
from tools.bank.members import FAMILY
from tools.bank.parent import plain_from_onnx
from tools.bank.plain_arch import model_config
from tools.bank.staging import bank_lock, check_member_files
from tools.bank.teachers import (
    ensemble_soft_targets,
    pick_teachers,
    teachers_at_resolution,
)
from tools.bank.windows import ResWindows, aligned_windows, eval_windows
from tools.cli import positive_int, run_main, seed
from tools.data import DEFAULT_VAL_SUBJECTS, add_data_argument, load_experiments, make_split
from tools.export import (
    check_export,
    export_onnx,
    latency_ms,
    ort_logits,
    session,
    torch_logits,
)
from tools.hapt import TEST_SUBJECTS
from tools.provenance import git_commit
from tools.train import seed_everything
from tools.train_baseline import SMOKE_SUBJECTS

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
    members = [m for m in bank.models if m.family == FAMILY]
    try:
        if args.teacher_at_resolution:
            teachers = list(teachers_at_resolution(members, members).values())
        else:
            teachers = pick_teachers(members, args.teacher, args.ensemble_width)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    teacher_ids = {t.id for t in teachers}
    if args.members:
        wanted = set(args.members.split(","))
        unknown = wanted - {m.id for m in members}
        if unknown:
            raise SystemExit(f"error: not width-resolution members of the bank: {sorted(unknown)}")
        kept = sorted(wanted & teacher_ids)
        if kept and args.keep_teacher:
            raise SystemExit(f"error: {', '.join(kept)}: a teacher and --keep-teacher is set")
        students = [m for m in members if m.id in wanted]
    else:
        students = [m for m in members if m.id not in teacher_ids or not args.keep_teacher]
    if not students:
        raise SystemExit(f"error: no member to distil in {shown / 'manifest.json'}")
    if args.teacher_at_resolution:  # only the teachers the students need
        try:
            by_res = teachers_at_resolution(members, students)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        teachers = list(by_res.values())
    done = [m.id for m in students if "distilled" in m.provenance]
    if done:
        raise SystemExit(f"error: already distilled (rebuild the bank first): {', '.join(done)}")
    reads = {**{t.id: t for t in teachers}, **{m.id: m for m in students}}.values()
    try:
        check_member_files(bank_dir, reads)  # missing, not the manifest's, not a readable ONNX
    except SystemExit as exc:
        raise SystemExit(str(exc.code).replace(str(bank_dir), str(shown))) from None

    teacher_entry = teachers[0]
    prov = teacher_entry.provenance
    refit = bool(prov.get("refit", False))
    hop128 = int(prov.get("train_config", {}).get("train_hop128", 32))
    experiments, source = load_experiments(args.data, SMOKE_SUBJECTS if args.smoke else None)
    split = make_split({e.subject for e in experiments}, DEFAULT_VAL_SUBJECTS, TEST_SUBJECTS)
    fit_subj = set(split.train) | (set(split.val) if refit else set())
    fit_exps = [e for e in experiments if e.subject in fit_subj]
    val_exps = [] if refit else [e for e in experiments if e.subject in split.val]
    test_exps = [e for e in experiments if e.subject in split.test]
    res = sorted({m.resolution or 0 for m in [*students, *teachers]} - {0}, reverse=True)
    fit = aligned_windows(fit_exps, tuple(res), hop128=hop128)
    norm = teacher_entry.normalization
    # per resolution, once: the normalised training windows
    inputs = {r: torch.from_numpy(norm(fit.x[r])) for r in res}
    y = torch.from_numpy(fit.y)
    if args.teacher_at_resolution:  # soft targets per resolution, each from its own teacher
        soft_at = {r: ensemble_soft_targets(bank_dir, [t], inputs) for r, t in by_res.items()}
    else:
        soft = ensemble_soft_targets(bank_dir, teachers, inputs)
        soft_at = {r: soft for r in res}
    teacher_fit_acc = float(
        np.mean([float((soft_at[r].argmax(1) == y).float().mean()) for r in soft_at])
    )
    teacher_name = ",".join(t.id for t in teachers)
    print(
        f"data: {len(experiments)} experiments from {source}; fit subjects {sorted(fit_subj)} "
        f"({len(y)} windows, hop {hop128}), teacher {teacher_name} "
        f"(train accuracy {teacher_fit_acc:.4f})"
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
        "dataset": f"UCI HAPT (CC BY 4.0), {source}",
        "finetune_config": dataclasses.asdict(cfg),
        "fit_subjects": sorted(fit_subj),
        "hop128": hop128,
        "seed": args.seed,
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # per resolution, once: the validation and test windows
    vals = {r: eval_windows(val_exps, r) if val_exps else None for r in inputs}
    tests = {r: eval_windows(test_exps, r) for r in inputs}
    new: dict[str, ModelEntry] = {}
    rows: list[dict[str, Any]] = []
    for i, entry in enumerate(students, 1):
        r = entry.resolution
        assert r is not None
        student = plain_from_onnx(bank_dir / entry.file, model_config(entry))
        x, val, test = inputs[r], vals[r], tests[r]
        before = _val_accuracy(student, val, norm)
        gen = torch.Generator().manual_seed(args.seed)
        t0 = time.time()
        loss = finetune(
            student,
            None,
            x,
            y,
            args.epochs,
            cfg,
            gen,
            desc=f"{entry.id} [{i}/{len(students)}]",
            soft=soft_at[r],
        )
        after = _val_accuracy(student, val, norm)
        shape = (1, r, len(entry.input.channels))
        path = export_onnx(student, staging / entry.file, shape)
        sess = session(path, threads=1)
        check = norm(test.x[:256])
        diff = float(np.max(np.abs(torch_logits(student, check) - ort_logits(sess, check))))
        check_export(entry.id, path, diff)
        m = member_metrics(sess, test, norm, entry.input)
        m["ort_vs_torch_max_abs_diff"] = diff
        m["supernet_accuracy"] = entry.metrics.get("accuracy")
        m["supernet_f1_weighted"] = entry.metrics.get("f1_weighted")
        if val is not None and before is not None and after is not None:
            m["val_accuracy"] = round(after, 6)
            m["val_windows"] = len(val.y)
            m["val_subjects"] = sorted(set(val.subject.tolist()))
            m["supernet_val_accuracy"] = round(before, 6)
        feed = check[:1] if len(check) else np.zeros(shape, np.float32)
        lat = latency_ms(sess, feed, runs=50 if args.smoke else 500, warmup=50)
        new[entry.id] = dataclasses.replace(
            entry,
            sha256=sha256_file(path),
            file_bytes=path.stat().st_size,
            metrics=m,
            latency_ms=latency_block(lat),
            provenance={
                **entry.provenance,
                "distilled": {
                    **common,
                    **(
                        {"teacher": by_res[r].id, "teacher_sha256": by_res[r].sha256}
                        if args.teacher_at_resolution
                        else {}
                    ),
                    "seconds": round(time.time() - t0, 1),
                    "last_epoch_loss": round(loss, 6),
                    "supernet_sha256": entry.sha256,
                },
            },
        )
        row = {
            "id": entry.id,
            "val_before": before,
            "val_after": after,
            "test_before": entry.metrics.get("accuracy"),
            "test_after": m["accuracy"],
            "ort_vs_torch": diff,
            "seconds": round(time.time() - t0, 1),
        }
        rows.append(row)
        print(
            f"{entry.id}: val {_pct(before)} -> {_pct(after)}, test {_pct(row['test_before'])} "
            f"-> {_pct(row['test_after'])}, ORT-torch {diff:.2g}, {row['seconds']} s"
        )
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
    summary = _summary(rows)
    report = {**common, "rows": rows, "summary": summary, "seconds": round(time.time() - started)}
    (bank_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for line in _summary_lines(summary):
        print(line)
    done_in = f"{time.time() - started:.0f} s"
    print(f"distilled {len(new)} members into {shown / 'manifest.json'} in {done_in}")
    return report


def _val_accuracy(model: torch.nn.Module, val: ResWindows | None, norm: Normalizer) -> float | None:
    return None if val is None else torch_accuracy(model, torch.from_numpy(norm(val.x)), val.y)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _mean(vals: Sequence[float | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return float(np.mean(got)) if got else None


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    return {
        k: _mean([r[k] for r in rows])
        for k in ("val_before", "val_after", "test_before", "test_after")
    }


def _summary_lines(s: dict[str, float | None]) -> list[str]:
    return [
        f"mean val accuracy  {_pct(s['val_before'])} -> {_pct(s['val_after'])}",
        f"mean test accuracy {_pct(s['test_before'])} -> {_pct(s['test_after'])} (reported only)",
    ]


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
