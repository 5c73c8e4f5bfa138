"""Change a bank folder all at once, or not at all.

The tools that write members (build, compress, train_baseline) work on a copy of the bank folder
and only move the result in when they finish; a failure or Ctrl-C on the way leaves the folder as
it was, so its files always match its manifest::

    with staged_bank(Path("models")) as work:
        ...  # write ONNX files, reports and the manifest into ``work``

On success every top-level file that is new or changed in ``work`` replaces its namesake, the
files the tool deleted are deleted, and ``manifest.json`` moves in last (each move is one
``rename``). Sub-folders are not part of a bank and are not copied.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"


def staging_dir(out: Path) -> Path:
    """Beside the bank, on the same filesystem (so that moving a file in is a rename)."""
    return out.parent / f".{out.name}.staging"


@contextmanager
def staged_bank(out: Path) -> Iterator[Path]:
    """A working copy of ``out``; committed into ``out`` when the block ends without error."""
    work = staging_dir(out)
    shutil.rmtree(work, ignore_errors=True)  # left by a run that was killed
    try:
        work.mkdir(parents=True)
    except OSError as exc:
        raise SystemExit(f"error: {work}: cannot create a working copy ({exc.strerror})") from None
    before = {p.name for p in out.iterdir() if p.is_file()} if out.is_dir() else set()
    try:
        for name in before:
            shutil.copy2(out / name, work / name)
        yield work
        _commit(work, out, before)
    except KeyboardInterrupt:
        print(f"interrupted: {out} was left as it was", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _commit(work: Path, out: Path, before: set[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    after = {p.name for p in work.iterdir() if p.is_file()}
    for name in sorted(after - {MANIFEST}):
        if name in before and filecmp.cmp(work / name, out / name, shallow=False):
            continue
        os.replace(work / name, out / name)
    for name in sorted(before - after):
        (out / name).unlink(missing_ok=True)
    if MANIFEST in after:
        os.replace(work / MANIFEST, out / MANIFEST)
