"""Independently trained baselines: the bank's configurations trained alone, to measure
"collaborative beats independent" (issue 3) instead of assuming it.

    python -m tools.bank.independent [--configs w1.00-r128,w0.50-r064,...] [--bank models]
        [--out build/independent] [--report OUT/independent-report.json] [--data data/hapt]
    python -m tools.bank.independent --smoke  # CI: 4 subjects, 2 steps, build/independent-smoke/
    python -m tools.bank.independent --bank build/bank-col2d-refit [--reference wc-w1.00-r128]
    python -m tools.bank.independent --recompare models/independent-report.json  # bank changed

The architecture follows the reference member (``--reference``, else the first configuration
found in the bank, ``wr-`` members before ``wc-`` ones): its ``provenance.model_config`` says
``arch`` (:mod:`tools.bank.arch`), so a column2d bank trains :class:`SlimColumnCNN` alone at each
configuration and compares with its ``wc-`` members.

For each (width, resolution) the *same* slimmable network (:class:`SlimCNN` with the bank's
:class:`SlimConfig`, or :class:`SlimColumnCNN` with its :class:`ColumnConfig`, constructed
right after seeding as :mod:`tools.bank.build` does, so it starts from the supernet's initial
weights) is trained at that one width and resolution only:
cross-entropy, no sandwich, no distillation, its BatchNorm sees only its own batches. Everything
else is the committed bank's recipe, read from the reference member's ``provenance`` in
``BANK/manifest.json`` (train config, epochs, seed, refit): the same index-aligned training
windows (:func:`tools.bank.windows.aligned_windows`, 50 Hz hop ``train_hop128``), the same
batches and random gains (same generator draws), AdamW with the same one-cycle schedule and the
same number of steps, and fixed epochs (no selection on the test subjects). Afterwards the model
goes through the members' own path, :func:`tools.bank.members.build_member`: BN recalibrated
over 16x64 training windows of its resolution, folded, exported to ONNX, and evaluated with ONNX
Runtime on the agent-cut windows of the test subjects. The ONNX files stay in ``OUT`` (they are
not bank members); the comparison goes to ``--report`` (JSON, default
``OUT/independent-report.json``; the progress of a run that has not finished is kept in
``*.partial.json`` beside it, as a record: a rerun starts over) and is printed as a Markdown
table. The output folder and the report are checked before the first configuration trains.

This module is the command (options, recipe overrides, data, the run and its report file);
:mod:`tools.bank.independent_train` trains and exports one configuration alone, and
:mod:`tools.bank.independent_report` picks the compared members and lays out the comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from agent.manifest import load_manifest
from agent.windowing import Normalizer
from tools.bank.build import CALIB_BATCH, CALIB_BATCHES, RESOLUTIONS
from tools.bank.independent_report import (
    ID_PREFIXES,
    compare,
    counterparts,
    markdown_table,
    recompare,
)
from tools.bank.independent_train import export_alone, make_model, recipe_from, train_single
from tools.bank.members import member_id
from tools.bank.plain_arch import COLUMN2D
from tools.bank.supernet2d import ColumnConfig
from tools.bank.windows import BASE_LENGTH, aligned_windows
from tools.cli import (
    ArgumentParser,
    CommandError,
    folder_problem,
    id_list,
    interrupt_status,
    path_arg,
    positive_int,
    run_main,
    seed,
)
from tools.data import add_data_argument, load_experiments, stage_experiments
from tools.provenance import git_commit
from tools.train import seed_everything
from tools.train_baseline import SMOKE_SUBJECTS

# the full, a middle and the smallest configuration first, then one more per width
DEFAULT_CONFIGS = (
    (1.0, 128),
    (0.5, 64),
    (0.25, 96),
    (0.125, 32),
    (1.0, 64),
    (0.75, 96),
    (0.5, 32),
    (0.125, 128),
)
SMOKE_CONFIGS = ((0.25, 64), (0.125, 32))
THREADS = 1


def parse_config(text: str) -> tuple[float, int]:
    """``w0.50-r064`` (or ``0.5,64``) -> (0.5, 64). Width 0.12 means the bank's 0.125."""
    t = text.strip().removeprefix("wr-").removeprefix("wc-")
    try:
        if "," in t:
            w_s, r_s = t.split(",")
        else:
            w_s, r_s = t.split("-")
            w_s, r_s = w_s.removeprefix("w"), r_s.removeprefix("r")
        w, r = float(w_s), int(r_s)
    except ValueError as exc:
        raise ValueError(f"bad configuration {text!r}: expected like w0.50-r064") from exc
    if abs(w - 0.12) < 1e-9:
        w = 0.125
    if not 0 < w <= 1.0 or r not in RESOLUTIONS:
        raise ValueError(f"bad configuration {text!r}: width in (0, 1], R in {RESOLUTIONS}")
    return w, r


def check_outputs(out: Path, report: Path) -> None:
    """CommandError naming the option unless the ONNX folder and the report (with its progress
    file beside it) can be written: checked before the first configuration is trained, not
    after it."""
    if report.is_dir():
        raise CommandError(f"--report {report}: is a folder, not a file")
    for option, path, folder in (("--out", out, out), ("--report", report, report.parent)):
        why = folder_problem(folder)
        if why is not None and folder != path and why.startswith("it "):  # the report's folder
            why = f"{folder}{why[2:]}"
        if why is not None:
            raise CommandError(f"{option} {path}: cannot write there ({why})")


def _recipe_text(cfg: dict[str, Any]) -> str:
    """``epochs 40, batch_size 64, lr 0.002, ...``: a recipe to read (no 17-digit floats)."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in cfg.items())


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    check_outputs(args.out, args.report)
    torch.set_num_threads(THREADS)
    bank = load_manifest(args.bank)
    configs: list[tuple[float, int]] = args.configs
    anchor, refs = counterparts(bank.models, configs, args.reference, args.bank)
    cfg, model_cfg, refit = recipe_from(anchor)
    cfg = dataclasses.replace(cfg, threads=THREADS)
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.seed is not None:  # another seed than the bank's: a spread estimate, not a pair
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if args.smoke:
        cfg = dataclasses.replace(cfg, train_hop128=64)
    recipe = _recipe_text({**dataclasses.asdict(cfg), "refit": refit})
    print(f"recipe of {anchor.id} ({args.bank}): {recipe}")

    experiments, source = load_experiments(args.data, SMOKE_SUBJECTS if args.smoke else None)
    stage = stage_experiments(experiments, refit)
    fit = aligned_windows(stage.fit, RESOLUTIONS, hop128=cfg.train_hop128)
    val = aligned_windows(stage.val, RESOLUTIONS, hop128=64) if stage.val else None
    norm = Normalizer.fit(aligned_windows(stage.fit, (BASE_LENGTH,), hop128=64).x[BASE_LENGTH])
    # float64 sums in another order differ in the ninth digit; anything larger is other windows
    same_norm = bool(
        np.allclose(norm.mean, anchor.normalization.mean, rtol=1e-7, atol=1e-7)
        and np.allclose(norm.std, anchor.normalization.std, rtol=1e-7, atol=1e-7)
    )
    print(
        f"data: {source}; fit on {len(fit)} index-aligned windows of subjects "
        f"{list(stage.fit_subjects)}; normalisation equals the bank's: {same_norm}"
    )
    if not same_norm and not args.smoke:
        print("warning: training windows differ from the bank's (normalisation)", file=sys.stderr)

    out: Path = args.out
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m tools.bank.independent", *args.argv])
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "version": 1,
        "generator": "tools.bank.independent",
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "threads": THREADS,
        "bank": str(args.bank / "manifest.json"),
        "reference_member": anchor.id,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "max_steps": args.max_steps,
        "refit": refit,
        "train_config": dataclasses.asdict(cfg),
        "model_config": dataclasses.asdict(model_cfg),
        **({"arch": COLUMN2D} if isinstance(model_cfg, ColumnConfig) else {}),
        "data": {
            "source": source,
            "train_subjects": list(stage.fit_subjects),
            "test_subjects": sorted(stage.split.test),
            "fit_rows": len(fit),
            "normalization_equals_bank": same_norm,
        },
        "delta": "collaborative minus independent (positive: collaborative better)",
        "selection": "none: fixed epochs decided beforehand (the bank's), final weights",
        "complete": False,
        "results": rows,
    }
    report_path: Path = args.report
    with _writing(report_path):
        report_path.parent.mkdir(parents=True, exist_ok=True)
    # progress goes beside it; a complete report is only ever replaced by a complete one
    partial = report_path.with_name(f"{report_path.stem}.partial{report_path.suffix}")
    prefix = ID_PREFIXES[COLUMN2D if isinstance(model_cfg, ColumnConfig) else "conv1d"]
    w, r = configs[0]
    try:
        for w, r in configs:
            t0 = time.time()
            seed_everything(cfg.seed)
            model = make_model(model_cfg)  # built right after seeding, as in tools.bank.build
            cid = f"w{w:.2f}-r{r:03d}"
            history = train_single(
                model, w, r, fit, norm, cfg, val=val, max_steps=args.max_steps, desc=cid
            )
            train_seconds = round(time.time() - t0, 1)
            provenance = {
                "command": command,
                "seed": cfg.seed,
                "epochs": cfg.epochs,
                "refit": refit,
                "train_config": dataclasses.asdict(cfg),
                "model_config": dataclasses.asdict(model_cfg),
                "training": f"alone at width {w}, resolution {r}: cross-entropy only, no "
                "sandwich, no distillation; recipe of the reference member's provenance",
                "reference_member": anchor.id,
                "bn": f"recalibrated over {CALIB_BATCHES}x{CALIB_BATCH} training windows of its "
                "resolution, folded into the convolutions",
                "dataset": f"UCI HAPT (CC BY 4.0), {source}",
                "torch": torch.__version__,
                "git_commit": git_commit(),
                "train_seconds": train_seconds,
            }
            with _writing(out):
                res = export_alone(
                    model, w, r, fit, norm, cfg.seed, stage.test, stage.val, out, provenance
                )
            entry = res.entry
            row = compare(entry, refs[(w, r)])
            row["train_seconds"] = train_seconds
            row["history"] = history
            rows.append(row)
            delta = row.get("delta_accuracy_pt")
            print(
                f"{entry.id}: test acc {entry.metrics['accuracy']:.4f} F1 "
                f"{entry.metrics['f1_weighted']:.4f} ({entry.metrics['test_windows']} windows); "
                f"collaborative {'-' if delta is None else f'{delta:+.2f} pt'}; "
                f"ORT-torch {res.max_abs_diff:.2g}; {train_seconds:.0f} s"
            )
            report["total_seconds"] = round(time.time() - started, 1)
            with _writing(partial):  # after every configuration
                partial.write_text(json.dumps(report, indent=1) + "\n")
    except KeyboardInterrupt as exc:
        # the export in progress is not an independent model (nor a bank member)
        (out / f"{member_id(w, r, prefix)}.onnx").unlink(missing_ok=True)
        _interrupted(rows, len(configs), partial, report_path, interrupt_status(exc))
    report["complete"] = True
    report["total_seconds"] = round(time.time() - started, 1)
    with _writing(report_path):
        partial.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(partial, report_path)
    print(markdown_table(rows))
    print(f"wrote {report_path} in {report['total_seconds']:.0f} s")
    return report


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError in the block (disk full, a folder made read-only meanwhile) becomes one line
    naming the file (or ``path``)."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or path
        raise CommandError(f"{where}: cannot write it ({exc.strerror or exc})") from None


def _interrupted(
    rows: list[dict[str, Any]], total: int, partial: Path, report: Path, status: int
) -> NoReturn:
    """Ctrl-C or SIGTERM: one line saying what was kept and where (a rerun does not resume),
    exit ``status``."""
    if rows:
        kept = f"{len(rows)} of {total} configurations finished, their results are in {partial}"
    else:
        kept = "no configuration had finished"
    earlier = f"{report} was left as it was, and " if report.exists() else ""
    print(
        f"interrupted: {kept}; {earlier}a rerun trains every configuration again",
        file=sys.stderr,
    )
    raise SystemExit(status)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog="python -m tools.bank.independent",
        description="Train bank configurations alone and compare with the collaborative members.",
        epilog="Writes OUT/ind-*.onnx (not bank members) and the --report JSON; about 19 min for "
        "the six default configurations on a 2-core VM. docs/model-bank.md",
    )
    ap.add_argument(
        "--configs",
        type=id_list,
        default=None,
        help="comma-separated, e.g. w1.00-r128,w0.12-r032 (default: "
        + ",".join(f"w{w:.2f}-r{r:03d}" for w, r in DEFAULT_CONFIGS)
        + ")",
    )
    ap.add_argument("--bank", type=path_arg, default=Path("models"), help="reference bank (models)")
    ap.add_argument(
        "--reference",
        type=id_list,
        default=None,
        help="member whose recipe (and architecture) to use, e.g. wc-w1.00-r128 (default: the "
        "first configuration found, wr- before wc-)",
    )
    ap.add_argument(
        "--out",
        type=path_arg,
        default=None,
        help="ONNX folder (build/independent; smoke: build/independent-smoke)",
    )
    ap.add_argument(
        "--report",
        type=path_arg,
        default=None,
        help="JSON report (OUT/independent-report.json; progress is kept in "
        "*.partial.json until the run completes; a rerun starts over)",
    )
    add_data_argument(ap)
    ap.add_argument("--epochs", type=positive_int, default=None, help="override the bank's epochs")
    ap.add_argument(
        "--seed", type=seed, default=None, help="override the bank's seed (0 to 2**32-1)"
    )
    ap.add_argument(
        "--max-steps", type=positive_int, default=None, help="stop after this many steps"
    )
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, 2 steps (CI)")
    ap.add_argument(
        "--recompare",
        type=path_arg,
        default=None,
        metavar="REPORT",
        help="train nothing: rewrite REPORT's collaborative side against --bank's members",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.recompare is not None:  # it reads REPORT and --bank: the rest would be ignored
        ignored = [
            a.option_strings[0]
            for a in ap._actions
            if a.dest not in ("help", "recompare", "bank")
            and getattr(args, a.dest) != ap.get_default(a.dest)
        ]
        if ignored:
            ap.error(
                f"--recompare trains nothing (it reads REPORT and --bank): "
                f"{', '.join(ignored)} cannot be used with it"
            )
    try:
        args.configs = (
            [parse_config(c) for c in args.configs.split(",")]
            if args.configs
            else list(SMOKE_CONFIGS if args.smoke else DEFAULT_CONFIGS)
        )
    except ValueError as exc:
        ap.error(str(exc))
    if args.smoke:
        args.epochs = 1 if args.epochs is None else args.epochs
        args.max_steps = 2 if args.max_steps is None else args.max_steps
    if args.out is None:
        args.out = Path("build/independent-smoke" if args.smoke else "build/independent")
    if args.report is None:  # never the bank's committed report unless asked for
        args.report = args.out / "independent-report.json"
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.recompare is not None:
        return run_main(lambda: recompare(args.recompare, args.bank))
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
