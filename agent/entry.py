"""The ``har-agent`` command's entry point.

The CLI is imported inside the guard: Ctrl-C while Python is still importing it (numpy, the
agent's modules; seconds on a Pi Zero 2 W) is one line and exit status 130, not a traceback.
Once a command runs, typer turns Ctrl-C into exit status 130 itself, and the long-running
commands install their own handlers (a clean stop, then a second Ctrl-C ends it at once).

A closed stdout (``har-agent models list | head -2``) ends every command the same way when a
write meets it, quietly with exit status 141 (128 + SIGPIPE), as it ends a Unix tool (a command
already failing keeps its status): see :mod:`agent.stdout_pipe`.
"""

from __future__ import annotations

import sys

from agent import stdout_pipe


def main() -> None:
    try:
        with stdout_pipe.guarded_stderr(), stdout_pipe.guarded_stdout():
            from agent.cli import app

            app()
    except KeyboardInterrupt:
        sys.stderr.write("har-agent: interrupted\n")
        raise SystemExit(130) from None
    except stdout_pipe.StdoutClosed:
        raise SystemExit(stdout_pipe.EXIT_STATUS) from None
    except OSError as exc:
        if exc.filename != stdout_pipe.STDOUT:
            raise
        # what stdout still buffered could not be written at the end (a full disk)
        sys.stderr.write(f"har-agent: error: stdout: {exc.strerror or exc}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
