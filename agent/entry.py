"""The ``har-agent`` command's entry point.

The CLI is imported inside the guard: Ctrl-C while Python is still importing it (numpy, the
agent's modules; seconds on a Pi Zero 2 W) is one line and exit status 130, not a traceback.
Once a command runs, typer turns Ctrl-C into exit status 130 itself, and the long-running
commands install their own handlers (a clean stop, then a second Ctrl-C ends it at once).
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from agent.cli import app

        app()
    except KeyboardInterrupt:
        sys.stderr.write("har-agent: interrupted\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
