"""What every ``python -m tools...`` command shares: argument types that refuse bad values at
parse time (usage line, exit status 2, ``argument --NAME: must be ... (got ...)``), and one line
on stderr with exit status 1 for the errors a run can expect (a missing or partial dataset, a
bank folder without a readable manifest), instead of a traceback after minutes of work."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from agent.errors import AgentError
from tools.data import DataSourceError


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose usage errors are one line, ``PROG: error: MESSAGE (see PROG
    --help)``, exit status 2, as the runtime's ``har-agent`` says them (no usage block above)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class CommandError(Exception):
    """An error a command expects and reports as one line, ``error: MESSAGE``, exit status 1
    (:func:`run_main`)."""


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def int_at_least(lo: int) -> Callable[[str], int]:
    """An ``int`` option that must be at least ``lo``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo} (got {value})")
        return value

    return parse


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An ``int`` option in [lo, hi]."""

    def parse(text: str) -> int:
        value = _integer(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be within [{lo}, {hi}] (got {value})")
        return value

    return parse


positive_int = int_at_least(1)
"""An ``int`` option that must be at least 1."""
nonnegative_int = int_at_least(0)
"""An ``int`` option that must be at least 0 (0: off, or none)."""

SEED_MAX = 2**32 - 1
"""The largest seed numpy's ``np.random.seed`` takes (``tools.train.seed_everything``)."""

seed = int_in(0, SEED_MAX)
"""A ``--seed``: an integer in [0, 2**32 - 1], as numpy's seeding takes it."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def number_in(lo: float, hi: float, *, above: bool = False) -> Callable[[str], float]:
    """A float option in [lo, hi], or (lo, hi] with ``above`` (argparse: usage line, exit 2)."""
    span = f"{'above' if above else 'at least'} {lo:g} and at most {hi:g}"

    def parse(text: str) -> float:
        value = _number(text)
        if not (lo < value <= hi if above else lo <= value <= hi):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {span} (got {text})")
        return value

    return parse


def positive_number(text: str) -> float:
    """A float option above 0 and finite (``inf`` and ``nan`` are refused: a learning rate of
    ``inf`` trains to NaN weights)."""
    value = _number(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 (got {text})")
    return value


THREADS_MAX = 256
"""The most ``--threads`` a command takes, as the runtime's ``har-agent bench --threads``."""


def thread_count(text: str) -> int:
    """A ``--threads`` option: 1 to :data:`THREADS_MAX`, and a warning on stderr when it is more
    than the CPUs here (the threads then wait for each other: a run many times slower), as the
    runtime's ``har-agent bench --threads`` warns."""
    value = positive_int(text)
    if value > THREADS_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {THREADS_MAX} (got {value})")
    cpus = os.cpu_count() or 1
    if value > cpus:
        print(
            f"warning: --threads {value} is more than the {cpus} CPUs here: the threads will "
            "wait for each other",
            file=sys.stderr,
        )
    return value


def path_arg(text: str) -> Path:
    """A file or folder option: an empty value (an unset shell variable, ``--out "$OUT"``) is
    refused rather than taken as the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"is empty (got {text!r}; an unset shell variable?): give a path (. is the current "
            "folder)"
        )
    return Path(text)


def add_bank_option(ap: argparse.ArgumentParser, help: str) -> None:
    """``--out`` with ``--bank`` as its other name (``args.out``, default ``None``: the command
    picks its own), as every tool that writes a bank folder takes it."""
    ap.add_argument("--out", "--bank", dest="out", type=path_arg, default=None, help=help)


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written in, or None: ``it is a file``, ``X is a file``
    (a path above it), ``X is read-only`` (the folder, or the nearest folder above it that
    exists). For the checks a command makes before its work, not after it."""
    target = folder.resolve()
    near = target
    while not near.exists() and near != near.parent:
        near = near.parent
    if not near.is_dir():
        kind = "a file" if near.is_file() else "not a folder"
        return f"{'it' if near == target else near} is {kind}"
    if not os.access(near, os.W_OK | os.X_OK):
        return f"{near} is read-only"
    return None


def id_list(text: str) -> str:
    """Comma-separated names (member ids, configurations): at least one, blanks around them
    dropped; returned joined by commas. An empty value is refused rather than taken as the
    option's default (often "all")."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"names nothing (got {text!r}); give comma-separated names, or leave the option out"
        )
    return ",".join(dict.fromkeys(names))


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


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs`` (``many``: the plural when it is not ``word + "s"``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def close_progress_bars() -> None:
    """End the progress bars a Ctrl-C left open, so the message after it starts a line of its own
    (not after a bar's ``\r``)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the tools' extras
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def interrupted(message: str = "interrupted") -> None:
    """Ctrl-C's one line on stderr, after any progress bar left open."""
    close_progress_bars()
    print(message, file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a supervisor's stop), raised where Ctrl-C raises KeyboardInterrupt, so
    that the same clean-up runs (staging folders removed, ``interrupted: ...``) instead of the
    process ending at once with its folders half-written."""


def _terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def interrupt_status(exc: KeyboardInterrupt) -> int:
    """The exit status of an interrupted command: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130


def run_main(body: Callable[[], object]) -> int:
    """Run a command's body; an expected error becomes ``error: ...`` and exit status 1, Ctrl-C
    one line and exit status 130, SIGTERM the same clean-up and line, exit status 143."""
    old = None
    if threading.current_thread() is threading.main_thread():  # (handlers live there)
        old = signal.signal(signal.SIGTERM, _terminated)
    try:
        body()
    except (AgentError, DataSourceError, CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        interrupted()
        return interrupt_status(exc)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return 0
