"""``python -m tools.bank.build``'s command line: its options, defaults and usage checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.bank import distill
from tools.bank.arch import ARCHS
from tools.bank.supernet import WIDTH_SAMPLING, SlimConfig
from tools.bank.supernet2d import ColumnConfig
from tools.bank.train import BankTrainConfig
from tools.cli import (
    ArgumentParser,
    add_bank_option,
    nonnegative_int,
    number_in,
    path_arg,
    positive_int,
    seed,
    widths,
)
from tools.data import add_data_argument

# epochs chosen on the validation subjects for each architecture (docs/model-bank.md)
DEFAULT_EPOCHS = {"column2d": 40, "conv1d": 24}
DEFAULT_ROTATE = 15.0
"""Random rotations of the training windows, up to this many degrees (adopted 2026-12-04)."""
MIN_WIDTH = {"conv1d": SlimConfig().min_width, "column2d": ColumnConfig().min_width}
"""The narrowest width each supernet trains (the sandwich's smallest pass)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog="python -m tools.bank.build",
        description="Train the width-resolution supernet and register its grid in the bank.",
        epilog="Writes the grid's members (OUT/wc-*.onnx), their entries in OUT/manifest.json and "
        "OUT/distill-report.json, all at once at the end. A full run on a 2-core VM: the "
        "supernet about 19 min (40 epochs), the distillation about 30 min (3 runs a member), "
        "--compress 5-12 min more (--smoke: seconds). docs/model-bank.md",
    )
    ap.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs (column2d: 40, conv1d: 24, as the committed banks; smoke: 1)",
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (0)")
    add_bank_option(
        ap,
        "bank folder (models; smoke: build/bank-smoke); --bank as in distill and compress",
    )
    add_data_argument(ap)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, few steps (CI)")
    ap.add_argument(
        "--arch",
        choices=ARCHS,
        default="column2d",
        help="supernet architecture (column2d: the bank in models/; conv1d: the first bank)",
    )
    ap.add_argument(
        "--widths",
        type=widths,
        default=None,
        help="comma-separated export widths (conv1d: 0.125,...,1; column2d: 0.1,0.125,...,1)",
    )
    ap.add_argument(
        "--width-sampling",
        choices=WIDTH_SAMPLING,
        default="uniform",
        help="how the sandwich's random widths are drawn in [min, 1] (uniform)",
    )
    ap.add_argument(
        "--kd-weight",
        type=number_in(0, 1),
        default=BankTrainConfig.kd_weight,
        help="weight of the distillation term for the sandwich's narrower passes; the rest is "
        f"cross-entropy (default {BankTrainConfig.kd_weight}; 1.0: distillation only)",
    )
    ap.add_argument(
        "--crop-hop",
        type=nonnegative_int,
        default=0,
        help="random temporal crops: each epoch draws every training window at a random "
        "multiple of this many 50 Hz samples after its fixed start (a multiple of 4 that divides "
        "the training hop, 32, and is smaller; smoke: 64); 0, the default: off",
    )
    ap.add_argument(
        "--rotate",
        type=number_in(0, 180),
        default=DEFAULT_ROTATE,
        metavar="DEG",
        help="random rotations: each training window's accelerometer and gyroscope turned "
        "together by an angle up to DEG degrees about a random axis (sensor placement; "
        f"default {DEFAULT_ROTATE:g}, adopted on validation: docs/model-bank.md; 0: off). "
        "Distillation and pruning fine-tunes use the same angle",
    )
    ap.add_argument(
        "--min-config-pass",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each step also trains the smallest configuration (narrowest width at the lowest "
        "resolution), besides the narrowest width at a random resolution (default: on, adopted "
        "on validation: docs/model-bank.md)",
    )
    ap.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="cap every training run at this many optimizer steps (quick trials, not for the "
        "bank): the supernet's training, each member's distillation (distill --max-steps) and, "
        "with --compress, each pruning fine-tune (compress --finetune-max-steps); the int8 "
        "stage has no steps. --smoke alone caps the supernet at 8 and leaves the other stages "
        "their own smoke caps",
    )
    ap.add_argument(
        "--distill-epochs",
        type=nonnegative_int,
        default=distill.DEFAULT_EPOCHS,
        help="then distil every member from the full configuration for this many epochs "
        f"(tools.bank.distill; default {distill.DEFAULT_EPOCHS}, 0: keep the supernet's slices)",
    )
    ap.add_argument(
        "--distill-soup",
        type=positive_int,
        default=distill.DEFAULT_SOUP,
        metavar="N",
        help="distil each member N times and keep the mean of the runs' weights (distill --soup; "
        f"default {distill.DEFAULT_SOUP}, 1: one run)",
    )
    ap.add_argument(
        "--refit", action="store_true", help="train on train + validation subjects (no val)"
    )
    ap.add_argument(
        "--compress",
        action="store_true",
        help="then run python -m tools.bank.compress on OUT (pruned and int8 members)",
    )
    ap.add_argument(
        "--int8-decide-on",
        type=path_arg,
        default=None,
        metavar="REPORT",
        help="with --compress: decide the int8 variants on a selection bank's "
        "compress-report.json (compress --int8-decide-on; for a refit)",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.int8_decide_on is not None and not args.compress:
        ap.error("--int8-decide-on decides the int8 variants of --compress: add --compress")
    args.max_steps_given = args.max_steps  # passed on to distill and compress (as given)
    if args.epochs is None:
        args.epochs = 1 if args.smoke else DEFAULT_EPOCHS[args.arch]
    if args.smoke and args.max_steps is None:
        args.max_steps = 8
    if args.out is None:
        args.out = Path("build/bank-smoke") if args.smoke else Path("models")
    hop = 64 if args.smoke else BankTrainConfig.train_hop128
    crop = args.crop_hop
    if crop and (crop >= hop or crop % 4 or hop % crop):
        ap.error(
            "argument --crop-hop: must be a multiple of 4 (a whole number of samples at every "
            f"resolution) that divides the training hop ({hop}) and is smaller (got {crop})"
        )
    if args.widths:
        narrowest = MIN_WIDTH[args.arch]
        low = [w for w in args.widths if w < narrowest - 1e-9]
        if low:
            ap.error(
                f"argument --widths: {','.join(f'{w:g}' for w in low)} is below the {args.arch} "
                f"supernet's narrowest trained width ({narrowest:g})"
            )
        ids: dict[str, float] = {}
        for w in args.widths:
            key = f"w{w:.2f}"
            if key in ids:
                ap.error(f"argument --widths: {ids[key]:g} and {w:g} would both be member {key}")
            ids[key] = w
    return args
