"""What the tools record about the code that made a file.

:func:`git_commit` is the ``git_commit`` field of every member's provenance and of the reports:
HEAD of the checkout the tools run from, ``-dirty`` when a tracked file differs from it. Untracked
files do not count: a ``data`` symlink, ``build/`` outputs or a scratch file are not the code, and
counting them made the flag say nothing about whether the code had changed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The checkout these tools are in: the code whose commit is recorded."""


def git_commit(root: Path | None = None) -> str | None:
    """``HEAD``'s hash, plus ``-dirty`` when a tracked file differs from it (staged or not); None
    outside a git checkout or without git. ``root``: the checkout to ask (default :data:`REPO`)."""
    where = REPO if root is None else root

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if changed else "")
