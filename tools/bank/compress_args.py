"""``python -m tools.bank.compress``'s command line: its options, defaults and usage checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.cli import ArgumentParser, add_bank_option, id_list, path_arg, positive_int, seed
from tools.data import add_data_argument

DEFAULT_PARENT = "wr-w1.00-r128"
DEFAULT_PARENT_COLUMN2D = "wc-w1.00-r128"
COMMAND = "python -m tools.bank.compress"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=COMMAND,
        description="Add pruned and int8 members to a built model bank.",
        epilog="Writes the pruned and int8 members into the bank (--out), their manifest entries "
        "and compress-report.json, all at once at the end; 5-12 min on a 2-core VM. "
        "docs/model-bank.md",
    )
    add_bank_option(
        ap,
        "bank folder it reads and adds to (models; smoke: build/bank-smoke); --bank as in "
        "distill and paced_latency",
    )
    ap.add_argument(
        "--parent",
        type=id_list,
        default=None,
        help=f"member to prune ({DEFAULT_PARENT}, or {DEFAULT_PARENT_COLUMN2D} in a column2d bank)",
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (0)")
    add_data_argument(ap)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, few steps (CI)")
    ap.add_argument(
        "--no-prune",
        action="store_true",
        help="skip pruning: keep the bank's pruned members (those whose parent is unchanged)",
    )
    int8 = ap.add_mutually_exclusive_group()  # --int8-only says which to try, so int8 runs
    int8.add_argument(
        "--no-quantize",
        action="store_true",
        help="skip int8: keep the bank's int8 members (those whose fp32 parent is unchanged)",
    )
    ap.add_argument(
        "--finetune-max-steps",
        type=positive_int,
        default=None,
        help="cap every fine-tuning call at this many steps (a quick trial; not for the bank)",
    )
    int8.add_argument(
        "--int8-only",
        type=id_list,
        default=None,
        help="comma-separated member ids to try int8 on (plus the pruned ones); the other int8 "
        "members and their trial rows are kept",
    )
    ap.add_argument(
        "--int8-decide-on",
        type=path_arg,
        default=None,
        metavar="REPORT",
        help="decide each int8 variant's accuracy on a selection bank's compress-report.json "
        "(its trial of the same id, on validation subjects it did not train on) instead of this "
        "bank's validation subjects: for a refit bank, which trained on them",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.no_prune and args.no_quantize:
        ap.error("--no-prune and --no-quantize together leave nothing to do")
    if args.int8_decide_on is not None and args.no_quantize:
        ap.error("--int8-decide-on decides int8 variants; --no-quantize makes none")
    if args.out is None:
        args.out = Path("build/bank-smoke") if args.smoke else Path("models")
    args.out_shown = args.out  # messages name it, even when a caller moves args.out
    return args
