"""Train the width-resolution supernet, export every configuration of the grid, register them.

    python -m tools.bank.build [--arch column2d] [--epochs 40] [--seed 0] [--out models]
    python -m tools.bank.build --refit --compress   # the bank in models/, pruned and int8 too
    python -m tools.bank.build --distill-epochs 0   # the supernet's slices, not distilled
    python -m tools.bank.build --out build/bank-col2d # selection run (validation held out)
    python -m tools.bank.build --smoke              # 4 subjects, a few steps, build/bank-smoke/
    python -m tools.bank.build --arch conv1d --out build/bank-1d   # the first (1-D) bank, 24 epochs
    python -m tools.bank.build --crop-hop 8         # random temporal crops (a trial; off)
    python -m tools.bank.build --rotate 0           # without the random rotations (15 degrees)
    python -m tools.bank.build --no-min-config-pass # the sandwich without its smallest-config pass

Protocol as tools.train_baseline (docs/training.md): test = the UCI-HAR test subjects (final
numbers only), validation = DEFAULT_VAL_SUBJECTS (progress and selection). Lower resolutions are
produced as the agent produces them (tools.bank.windows). Members are written as
``wc-wW.WW-rRRR.onnx`` (column2d) or ``wr-…`` (conv1d) and merged into ``OUT/manifest.json``
(other families are kept; earlier width-resolution members of the same architecture are
replaced, and those the new grid drops go with the pruned and int8 members made from them; a
folder holding another architecture's members is refused: their pruned and int8 members would
be left without a parent). Then every member is distilled from the full
configuration's frozen outputs for ``--distill-epochs`` (tools.bank.distill).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agent.manifest import Manifest, ModelEntry, load_manifest, write_manifest
from agent.windowing import Normalizer
from tools.bank import distill
from tools.bank.arch import OPS
from tools.bank.build_args import DEFAULT_EPOCHS, DEFAULT_ROTATE, MIN_WIDTH, parse_args
from tools.bank.derived import orphans, parent_of, warn_stale
from tools.bank.members import FAMILY, MemberResult, build_member, calib_batches
from tools.bank.plain_arch import arch_of
from tools.bank.staging import bank_lock, check_writable, existing_manifest, staged_bank
from tools.bank.train import BankTrainConfig, train_supernet
from tools.bank.windows import BASE_LENGTH, aligned_windows, crop_windows, eval_windows
from tools.cli import plural, run_main
from tools.data import data_text, load_experiments, stage_experiments
from tools.provenance import git_commit
from tools.train import seed_everything
from tools.train_baseline import SMOKE_SUBJECTS

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_ROTATE", "MIN_WIDTH", "main", "parse_args", "run"]
"""(The command line's defaults live in :mod:`tools.bank.build_args`; build re-exports them.)"""

RESOLUTIONS = (128, 96, 64, 32)
WIDTHS = (0.125, 0.25, 0.5, 0.75, 1.0)
COLUMN2D_WIDTHS = (0.1, 0.125, 0.25, 0.5, 0.75, 1.0)  # 0.1: the seed paper's smallest width
SMOKE_WIDTHS = (0.25, 1.0)
SMOKE_RESOLUTIONS = (128, 64)
CALIB_BATCHES = 16
CALIB_BATCH = 64


def merge_manifest(out: Path, entries: list[ModelEntry], meta: dict[str, Any]) -> Path:
    """Write ``entries`` into ``out/manifest.json``; keep every model of another family. The
    files of width-resolution members the new grid no longer has are deleted with their entries
    (another grid or architecture), and so are the pruned and int8 members made from them
    (``provenance.parent``; compress could only delete them later, never remake them), so the
    folder holds what the manifest lists and every derived member has its parent."""
    others: list[ModelEntry] = []
    old_meta: dict[str, Any] = {}
    # an unreadable manifest is refused (SystemExit), never replaced: the run checked it when
    # it started (existing_manifest), before the training
    old = existing_manifest(out)
    if old is not None:
        others = [m for m in old.models if m.family != FAMILY]
        old_meta = {k: v for k, v in old.meta.items() if k != "manifest_version"}
        gone = orphans([*entries, *others])
        others = [m for m in others if m.id not in {g.id for g in gone}]
        kept = {e.file for e in entries} | {m.file for m in others}
        for m in old.models:
            if m.family == FAMILY and m.file not in kept:
                (out / m.file).unlink(missing_ok=True)
                print(f"removed {m.id}: not in the new grid")
        for m in gone:
            if m.file not in kept:
                (out / m.file).unlink(missing_ok=True)
            print(f"removed {m.id}: made from {parent_of(m)}, which is no longer in the bank")
    return write_manifest(out, [*others, *entries], {**old_meta, **meta})


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Hold the bank for the whole run (a second tool on it is refused before any work)."""
    with bank_lock(args.out):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = BankTrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        width_sampling=args.width_sampling,
        kd_weight=args.kd_weight,
        crop_hop=args.crop_hop,
        rotate_deg=args.rotate,
        min_config_pass=args.min_config_pass,
    )
    if args.smoke:
        cfg = dataclasses.replace(cfg, train_hop128=64)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    started = time.time()
    grid_w = args.widths or (SMOKE_WIDTHS if args.smoke else default_widths(args.arch))
    grid_r = SMOKE_RESOLUTIONS if args.smoke else RESOLUTIONS

    out: Path = args.out
    check_writable(out)  # before the training, not after it
    if args.int8_decide_on is not None:  # a report that cannot decide: now, not after training
        from tools.bank.quantize_stage import held_out_decisions

        held_out_decisions(args.int8_decide_on)
    # an unreadable manifest is refused now, not replaced at the end; so is a bank of another
    # architecture
    check_architecture(out, existing_manifest(out), args.arch)
    experiments, source = load_experiments(args.data, SMOKE_SUBJECTS if args.smoke else None)
    stage = stage_experiments(experiments, bool(args.refit))  # (refit: no val experiments)
    tr_exps, va_exps, te_exps = stage.fit, stage.val, stage.test
    print(f"data: {len(experiments)} experiments from {source}; split {stage.split}")

    crops = None
    if cfg.crop_hop:  # the coarse rows are the windows below, cut from the fine ones
        crops = crop_windows(tr_exps, RESOLUTIONS, cfg.train_hop128, cfg.crop_hop)
        fit = crops.coarse()
    else:
        fit = aligned_windows(tr_exps, RESOLUTIONS, hop128=cfg.train_hop128)
    val = aligned_windows(va_exps, RESOLUTIONS, hop128=64) if not args.refit else None
    norm = Normalizer.fit(aligned_windows(tr_exps, (BASE_LENGTH,), hop128=64).x[BASE_LENGTH])
    print(f"fit on {len(fit)} index-aligned windows (50 Hz hop {cfg.train_hop128}) x {RESOLUTIONS}")
    if crops is not None:
        print(f"random crops: every {cfg.crop_hop} samples, {len(crops.fine)} windows to draw from")
    if cfg.rotate_deg:
        print(f"random rotations: up to {cfg.rotate_deg:g} degrees about a random axis per window")

    model = OPS[args.arch].make()
    history = train_supernet(model, fit, norm, cfg, val=val, max_steps=args.max_steps, crops=crops)
    for rec in history:
        print("  " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items()))
    train_seconds = round(time.time() - started, 1)

    provenance = {
        "command": " ".join(["python -m tools.bank.build", *args.argv]),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "refit": bool(args.refit),
        "train_config": asdict(cfg),
        "model_config": asdict(model.cfg),
        "bn": f"recalibrated per (width, resolution) over {CALIB_BATCHES}x{CALIB_BATCH} "
        "training windows, folded into the convolutions",
        "windows": "agent.resampling.Resampler(50, 50*R/128), hop R/2; training: index-aligned",
        "dataset": f"UCI HAPT (CC BY 4.0), {source}",
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "train_seconds": train_seconds,
        "epoch_seconds": [rec["seconds"] for rec in history],
    }
    results: list[MemberResult] = []
    result: dict[str, Any] = {"results": results, "history": history}
    with staged_bank(out, locked=True) as work:  # the bank changes all at once, or not at all
        for r in grid_r:
            test = eval_windows(te_exps, r)
            val_r = eval_windows(va_exps, r) if va_exps and not args.refit else None
            for w in grid_w:
                calib = calib_batches(fit.x[r], norm, CALIB_BATCHES, CALIB_BATCH, cfg.seed)
                res = build_member(
                    model,
                    w,
                    r,
                    calib,
                    norm,
                    test,
                    val_r,
                    work,
                    latency_runs=50 if args.smoke else 500,
                    provenance=provenance,
                )
                _print_member(res)
                results.append(res)
        meta = {
            "generator": "tools.bank.build",
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        merge_manifest(work, [r.entry for r in results], meta)
        print(f"{plural(len(results), 'member')} exported in {time.time() - started:.0f} s")
        tail = ["--seed", str(args.seed), "--data", data_text(args.data)]
        tail += ["--smoke"] if args.smoke else []
        # the provenance records the commands as a user would type them (--bank OUT); they run
        # on the working copy
        if args.distill_epochs > 0:
            dargv = ["--bank", str(out), "--epochs", str(args.distill_epochs)]
            dargv += ["--soup", str(args.distill_soup), *tail]
            dargs = distill.parse_args([*dargv, *distill_cap(args)])
            dargs.bank = work
            dargs.compress_follows = args.compress
            result["distill"] = distill.run(dargs)
        if args.compress:
            from tools.bank import compress

            decide = ["--int8-decide-on", str(args.int8_decide_on)] if args.int8_decide_on else []
            cargs = compress.parse_args(["--out", str(out), *tail, *decide, *compress_cap(args)])
            cargs.out = work
            result["compress"] = compress.run(cargs)
    result["manifest"] = out / "manifest.json"
    total = len(load_manifest(out).models)  # with the baseline, the pruned and int8 members
    held = plural(len(results), "width-resolution member")
    held += f", {total} in all" if total != len(results) else ""
    print(f"wrote {out} ({held}) in {time.time() - started:.0f} s")
    if not args.compress and args.distill_epochs == 0:  # (distill says so itself)
        warn_stale(load_manifest(out).models, out)
    return result


def check_architecture(out: Path, manifest: Manifest | None, arch: str) -> None:
    """SystemExit with one line when ``out`` holds width-resolution members of another
    architecture: the build would delete them and leave their pruned and int8 members (made
    from them, ``provenance.parent``) without a parent. Checked before any training."""
    if manifest is None:
        return
    other = [m for m in manifest.models if m.family == FAMILY and arch_of(m) != arch]
    if other:
        ids = ", ".join(m.id for m in other[:3]) + (", ..." if len(other) > 3 else "")
        raise SystemExit(
            f"error: {out} holds a {arch_of(other[0])} bank ({ids}); a --arch {arch} build "
            "does not replace another architecture's bank (its pruned and int8 members would "
            "be left without a parent): give another --out, or empty the folder first; nothing "
            "was changed"
        )


def _print_member(res: MemberResult) -> None:
    e = res.entry
    val = e.metrics.get("val_accuracy")
    print(
        f"{e.id}: test acc {e.metrics['accuracy']:.4f} F1 {e.metrics['f1_weighted']:.4f} "
        f"({e.metrics['test_windows']} windows), val {'-' if val is None else f'{val:.4f}'}, "
        f"MACs {e.macs:,}, params {e.params:,}, p50 {e.latency_ms['p50']:.4f} ms, "
        f"ORT-torch {res.max_abs_diff:.2g}, extract {res.extract_diff:.2g}"
    )


def distill_cap(args: argparse.Namespace) -> list[str]:
    """``--max-steps N`` given to build caps each member's distillation at N steps too (not the
    smoke run's own default, which is the supernet's alone)."""
    return [] if args.max_steps_given is None else ["--max-steps", str(args.max_steps_given)]


def compress_cap(args: argparse.Namespace) -> list[str]:
    """``--max-steps N`` given to build caps each of compress's pruning fine-tunes at N steps
    (its int8 stage takes no training steps)."""
    if args.max_steps_given is None:
        return []
    return ["--finetune-max-steps", str(args.max_steps_given)]


def default_widths(arch: str) -> tuple[float, ...]:
    return COLUMN2D_WIDTHS if arch == "column2d" else WIDTHS


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
