"""What every ``python -m tools...`` command shares: argument types that refuse bad values at
parse time (usage line, exit status 2), and one line on stderr with exit status 1 for the errors
a run can expect (a missing or partial dataset, a bank folder without a readable manifest),
instead of a traceback after minutes of work."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from agent.errors import AgentError
from tools.data import DataSourceError


def positive_int(text: str) -> int:
    """An ``int`` option that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


SEED_MAX = 2**32 - 1
"""The largest seed numpy's ``np.random.seed`` takes (``tools.train.seed_everything``)."""


def seed(text: str) -> int:
    """A ``--seed``: an integer in [0, 2**32 - 1], as numpy's seeding takes it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be within [0, {SEED_MAX}] (got {value})")
    return value


def number_in(lo: float, hi: float, *, above: bool = False) -> Callable[[str], float]:
    """A float option in [lo, hi], or (lo, hi] with ``above`` (argparse: usage line, exit 2)."""
    span = f"{'above' if above else 'at least'} {lo:g} and at most {hi:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo < value <= hi if above else lo <= value <= hi):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {span} (got {text})")
        return value

    return parse


def widths(text: str) -> tuple[float, ...]:
    """Comma-separated widths, each in (0, 1]."""
    try:
        out = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: widths are numbers, e.g. 0.25,0.5,1") from None
    bad = [w for w in out if not 0.0 < w <= 1.0]
    if bad:
        raise argparse.ArgumentTypeError(f"every width must be in (0, 1] (got {bad})")
    return out


def run_main(body: Callable[[], object]) -> int:
    """Run a command's body; an expected error becomes ``error: ...`` and exit status 1, Ctrl-C
    one line and exit status 130."""
    try:
        body()
    except (AgentError, DataSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
