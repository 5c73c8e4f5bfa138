"""What every ``har-agent`` command shares: the one-line error exit, logging set-up, the
``--profile`` option, the help's command classes, and the stop event that SIGTERM, SIGINT and
SIGHUP set."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from agent import stdout_pipe
from agent.errors import AgentError
from agent.profile import Profile, load_profile
from agent.profile_location import DEFAULT_PROFILE as DEFAULT_PROFILE  # (the commands' default)

log = logging.getLogger("agent")


def profile_option(what: str) -> Any:
    """The ``--profile``/``-p`` option (also ``$HAR_AGENT_PROFILE``), its help saying ``what``
    the command takes from the profile: ``Annotated[Path, profile_option("...")]``."""
    return typer.Option(
        "--profile",
        "-p",
        envvar="HAR_AGENT_PROFILE",
        help=f"{what} \\[env: HAR_AGENT_PROFILE]",
        show_envvar=False,
    )


def _plain_flag(option: Any) -> Any:
    """typer shows its own ``--help`` flag with a ``<bool>`` metavar, as if it took a value;
    every other flag of the CLI declares ``metavar=""`` for the same reason."""
    if option is not None:
        option.metavar = ""
    return option


# click's UsageError (an unknown option or command, a missing argument, a bad option value), found
# through typer's public BadParameter: typer vendors click in some versions and not in others
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)

USAGE_EXIT = 2
"""Exit status of a command line that cannot be parsed (click's and argparse's convention)."""


def _usage_error(ctx: Any, exc: Exception) -> typer.Exit:
    """One line for a command line that cannot be parsed, in the CLI's own error format, naming
    the help to read, instead of typer's usage and boxed error (four lines, or more)."""
    message = str(exc.format_message()).rstrip(".")  # type: ignore[attr-defined]
    typer.echo(f"har-agent: error: {message} (see '{ctx.command_path} --help')", err=True)
    return typer.Exit(USAGE_EXIT)


def _is_help_request(exc: Exception) -> bool:
    """``no_args_is_help``: click raises a usage error that shows the help (not an error)."""
    return type(exc).__name__ == "NoArgsIsHelpError"


class _OneLineUsageErrors:
    """Usage errors of a command or group as one line (:func:`_usage_error`); the help that
    ``no_args_is_help`` asks for is still shown."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return list(super().parse_args(ctx, args))  # type: ignore[misc]
        except _UsageError as exc:
            if _is_help_request(exc):
                raise
            raise _usage_error(ctx, exc) from None


class Group(_OneLineUsageErrors, TyperGroup):
    """A command group whose ``--help`` row reads as the flag it is (``typer.Typer(cls=Group)``),
    and whose usage errors are one line."""

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_flag(super().get_help_option(ctx))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as exc:  # no such command
            raise _usage_error(ctx, exc) from None


class Command(_OneLineUsageErrors, TyperCommand):
    """A command whose ``--help`` row reads as the flag it is (``app.command(cls=Command)``), and
    whose usage errors are one line."""

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_flag(super().get_help_option(ctx))


def fail(exc: AgentError) -> typer.Exit:
    typer.echo(f"har-agent: error: {exc}", err=True)
    return typer.Exit(1)


def os_error(exc: OSError, running: bool = False) -> AgentError:
    """A file the agent could not open (name too long, a permission, ...) that no check before
    it caught, or an I/O error once running (a full disk, a failing SD card): one line naming
    the file (``stdout`` for stdout: :mod:`agent.stdout_pipe`), not a traceback. An error that
    names no file says when it happened instead of naming a placeholder."""
    name = exc.filename
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    reason = exc.strerror or str(exc)
    if name is None:
        return AgentError(f"I/O error while {'running' if running else 'starting'} ({reason})")
    shown = str(name)
    if len(shown) > 200:
        shown = f"{shown[:160]}... ({len(shown)} characters)"
    what = "I/O error while running" if running else "cannot open"
    return AgentError(f"{shown}: {what} ({reason})")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_profile_logged(profile: Path) -> Profile:
    prof = load_profile(profile)
    setup_logging(prof.logging.level)
    return prof


def count(n: int, noun: str) -> str:
    """``1 window``, ``2 windows``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def seconds_text(s: float) -> str:
    """A run's duration for a summary: ``48 ms`` under a second, else ``33.1 s``."""
    return f"{1000 * s:.0f} ms" if s < 1 else f"{s:.1f} s"


def clock_text(s: float) -> str:
    """A position in a recording: ``0:01:23.4``."""
    minutes, sec = divmod(max(s, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{sec:04.1f}"


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""What asks a long-running command to stop cleanly: SIGTERM (``systemctl stop``, ``kill``),
SIGINT (Ctrl-C) and SIGHUP (the terminal closed, ``kill -HUP``; the unit has no ``ExecReload=``,
so ``systemctl reload`` is refused and sends nothing). A SIGHUP that is ignored when the command
starts (``nohup``) stays ignored. A second one while stopping ends the process at once."""


def on_stop_signal(
    stop: threading.Event,
    signum: int,
    received: list[int],
    exit_now: Callable[[int], object] = os._exit,
) -> None:
    """The body of the handler of :data:`STOP_SIGNALS`: the first is appended to ``received``
    (:func:`stop_on_signals`' thread then sets ``stop`` and logs it); a second one while the agent
    stops (or once ``stop`` is set) ends the process at once (exit 128 + signal number, as a shell
    reports it), with one line on stderr.

    A handler runs between two bytecodes of the main thread, wherever it is: inside a write to
    stderr (logging there again raises "reentrant call inside BufferedWriter"), holding a logging
    handler's lock, or holding ``stop``'s own lock for the few bytecodes of ``Event.wait`` that
    do (``stop.set()`` here would then wait for ever on a lock its own thread holds, and
    ``systemctl stop`` would end in SIGKILL 20 s later). So nothing here logs, flushes or takes a
    lock: ``is_set`` reads a flag; the second signal writes its line with :func:`os.write` and
    leaves with :func:`os._exit` (what the outbox holds is on disk)."""
    if received or stop.is_set():
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):  # (stderr closed: the exit still happens)
            os.write(2, f"har-agent: received {name} again, exiting now\n".encode())
        exit_now(128 + signum)
        return
    received.append(signum)


class StopEvent(threading.Event):
    """The run's stop event, with the signal that set it (``None``: not a signal, or not yet)."""

    signal: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopEvent]:
    """A stop event that :data:`STOP_SIGNALS` set; the previous handlers come back afterwards.
    A second signal while stopping ends the process at once (what the outbox holds is on disk).

    The handler only records the signal (:func:`on_stop_signal`) and wakes a small thread, which
    sets the event and logs ``received SIGTERM, stopping``, outside any signal handler."""
    stop = StopEvent()
    received: list[int] = []
    # set by the handler and on the way out; only the reporter waits on it, and the main thread
    # takes its lock only after the handlers are restored (so the handler never waits on itself)
    woken = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stdout_pipe.note_stop_signal()  # (the terminal closed: its writes fail from now on)
        on_stop_signal(stop, signum, received)
        woken.set()

    def report() -> None:
        woken.wait()
        if received:
            stop.signal = received[0]
            stop.set()
            log.info("received %s, stopping", signal.Signals(received[0]).name)

    # the handlers first: off the main thread signal.signal raises ValueError, and a reporter
    # already started would then wait forever for a signal that cannot come
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:  # nohup
                continue
            previous[sig] = signal.signal(sig, handler)
    except BaseException:
        for sig, h in previous.items():
            signal.signal(sig, h)
        raise
    reporter = threading.Thread(target=report, name="har-stop-signals", daemon=True)
    reporter.start()
    try:
        yield stop
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        woken.set()
        reporter.join()
