"""A closed stdout (``har-agent ... | head -1``) ends a command quietly, as it ends a Unix tool.

Python ignores SIGPIPE, so writing to a pipe whose reader has gone raises ``BrokenPipeError``,
which the commands reported as an I/O error on "a file" (or typer ended with status 1 and no
word). :func:`guarded_stdout` puts ``sys.stdout`` on a file object whose writes turn that error
into :class:`StdoutClosed` and, at the same moment, point file descriptor 1 at ``/dev/null``:

- :class:`StdoutClosed` derives from ``BaseException`` (like ``KeyboardInterrupt``), so no
  ``except OSError`` or ``except Exception`` on the way up takes it for a failure to report;
  the entry point ends the command with :data:`EXIT_STATUS` and no message.
- What is still buffered, and the flushes of clean-up code on the way out (the publisher's
  ``stop``, the interpreter's final flush), then go to ``/dev/null`` instead of raising again
  (what the Python docs advise for ``BrokenPipeError``).

SIGPIPE itself stays ignored: its default action would also kill the daemon whenever the MQTT
broker drops a connection it is writing to (the Python docs warn against ``SIG_DFL`` for that).

Any other error writing stdout (a full disk behind ``> file``) is named ``stdout`` (its
``filename``), so the one-line error says what was being written.

Once a stop signal was received (:func:`note_stop_signal`), a write to stdout or stderr that
fails with EIO or EPIPE is the terminal that was closed (SIGHUP, then every write to the hung-up
tty fails with EIO) or a pipe whose reader went with it: the descriptor is pointed at
``/dev/null`` and the command goes on stopping cleanly (exit status 0), as the stop asked.
A write to a descriptor that was a terminal when the command started and now fails with EIO is
taken the same way even before the stop signal's handler ran: the kernel fails the writes as
soon as the terminal hangs up, and the SIGHUP it sends with it can reach Python's handler a
moment later (on a loaded machine, after a write). Under ``nohup`` (SIGHUP ignored) the
command then runs on, its output gone, as ``nohup`` asks.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

EXIT_STATUS = 128 + 13
"""128 + SIGPIPE: what a shell reports for ``yes | head -1``'s ``yes``."""

STDOUT = "stdout"
"""The name an error writing stdout carries (``OSError.filename``)."""


class StdoutClosed(BaseException):
    """stdout's reader has gone (a closed pipe): the command ends quietly."""


_stopping = False
"""A stop signal was received (set from a signal handler: a plain assignment, nothing more)."""

_GONE = (errno.EIO, errno.EPIPE)
"""What a write to a hung-up terminal (EIO) or to a pipe whose reader left (EPIPE) fails with."""


def note_stop_signal() -> None:
    """A stop signal was received: from now on a gone terminal or pipe behind stdout or stderr
    is silenced (see the module). Safe to call from a signal handler."""
    global _stopping
    _stopping = True


def _gone_while_stopping(exc: OSError, fd: int, was_tty: bool) -> bool:
    """``exc`` is the terminal or pipe gone after a stop signal, or (``was_tty``) the terminal
    hung up, whose SIGHUP is on its way: ``fd`` now goes to /dev/null."""
    hung_up = was_tty and exc.errno == errno.EIO
    if not hung_up and (not _stopping or exc.errno not in _GONE):
        return False
    with contextlib.suppress(OSError):
        _silence(fd)
    return True


def _silence(fd: int) -> None:
    """Point ``fd`` at /dev/null: later writes (buffers, clean-up) succeed and go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _GuardedFile(io.FileIO):
    """A standard stream's descriptor, which remembers whether it was a terminal."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "w", closefd=False)
        self.was_tty = os.isatty(fd)


class _StdoutFile(_GuardedFile):
    """File descriptor 1, whose write errors say they are stdout's (see the module)."""

    failed = False
    """A write failed (and raised): what is still buffered is not tried again at the end."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            if _gone_while_stopping(exc, self.fileno(), self.was_tty):
                return memoryview(data).nbytes  # the stop goes on: nowhere to show it
            self.failed = True
            if isinstance(exc, BrokenPipeError):
                _silence(self.fileno())
                raise StdoutClosed from None
            if exc.filename is None:
                exc.filename = STDOUT
            raise


class _StderrFile(_GuardedFile):
    """File descriptor 2, which a stop lets go quietly when its terminal or pipe has gone."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            if _gone_while_stopping(exc, self.fileno(), self.was_tty):
                return memoryview(data).nbytes
            raise


@contextlib.contextmanager
def guarded_stderr() -> Iterator[None]:
    """``sys.stderr`` on :class:`_StderrFile` for the duration (see the module's last
    paragraph). Does nothing when ``sys.stderr`` is not the process's own."""
    original = sys.stderr
    if not isinstance(original, io.TextIOWrapper) or original is not sys.__stderr__:
        yield
        return
    try:
        fd = original.fileno()
    except (OSError, ValueError):
        yield
        return
    original.flush()
    guarded = io.TextIOWrapper(
        io.BufferedWriter(_StderrFile(fd)),
        encoding=original.encoding,
        errors=original.errors,
        line_buffering=original.line_buffering,
        write_through=original.write_through,
    )
    sys.stderr = guarded
    try:
        yield
    finally:
        try:
            guarded.flush()
        finally:
            sys.stderr = original


def _own_stdout() -> tuple[io.TextIOWrapper, int] | None:
    """The process's own ``sys.stdout`` and its file descriptor, or None."""
    out = sys.stdout
    if not isinstance(out, io.TextIOWrapper) or out is not sys.__stdout__:
        return None
    try:
        return out, out.fileno()
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """``sys.stdout`` on :class:`_StdoutFile` for the duration (flushed at the end, while a
    closed pipe can still end the command quietly). Does nothing when ``sys.stdout`` is not
    the process's own (a test's captured stream) or has no file descriptor."""
    own = _own_stdout()
    if own is None:
        yield
        return
    original, fd = own
    original.flush()
    raw = _StdoutFile(fd)
    guarded = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=original.encoding,
        errors=original.errors,
        line_buffering=original.line_buffering,
        write_through=original.write_through,
    )
    sys.stdout = guarded
    failing = False
    try:
        yield
    except BaseException as exc:
        # a failure already on its way out keeps its own exit status: a closed pipe (or a full
        # disk) met by the final flush must not turn an error's 1 into a quiet 141
        failing = not (isinstance(exc, SystemExit) and exc.code in (0, None))
        raise
    finally:
        try:
            if raw.failed:  # reported once already: what is left is dropped, not tried again
                _silence(fd)
            guarded.flush()
        except StdoutClosed:
            if not failing:
                raise
        except OSError:
            _silence(fd)  # what it holds would fail again when it is closed: drop it
            if not failing:
                raise
        finally:
            sys.stdout = original
