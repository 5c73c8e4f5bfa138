"""Change a bank folder all at once, or not at all.

The tools that write members (build, compress, train_baseline) work on a copy of the bank folder
and only move the result in when they finish; a failure or Ctrl-C on the way leaves the folder as
it was, so its files always match its manifest::

    with staged_bank(Path("models")) as work:
        ...  # write ONNX files, reports and the manifest into ``work``

On success every top-level file the tool wrote in ``work`` replaces its namesake, the files it
deleted are deleted, and ``manifest.json`` moves in last (each move is one ``rename``); files it
did not touch stay as the folder has them. Sub-folders are not part of a bank and are not
copied. One tool at a time: a second one on the same bank is refused while the first runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import ModelError
from agent.instance import NameInUse, claim
from agent.manifest import Manifest, ModelEntry, load_manifest, sha256_file
from tools.cli import folder_problem, interrupt_status, interrupted

MANIFEST = "manifest.json"


def staging_dir(out: Path) -> Path:
    """Beside the bank's real folder (through any symlink), on the same filesystem, so that
    moving a file in is a rename."""
    real = out.resolve()
    return real.parent / f".{real.name}.staging"


def check_writable(out: Path, *, beside: bool = True) -> None:
    """SystemExit naming the folder unless the bank folder (or the nearest folder above it that
    exists) and, with ``beside``, the folder that will hold its working copy
    (:func:`staging_dir`) are writable: checked before hours of training, not after. A tool that
    stages inside the bank (distill) passes ``beside=False``."""
    why = folder_problem(out)
    if why is None and beside and out.exists():
        parent = staging_dir(out).parent
        if not os.access(parent, os.W_OK | os.X_OK):
            why = f"{parent} is read-only"
    if why is not None:
        raise SystemExit(f"error: {out}: cannot create or change the bank folder ({why})")


def existing_manifest(out: Path) -> Manifest | None:
    """The bank's manifest, or None when the folder has none yet. SystemExit naming the file and
    what is wrong with it when it cannot be read: checked when a tool starts, before any
    training, because a tool that writes a manifest it could not read drops the entries of every
    model it did not make itself (their files stay, unlisted)."""
    if not os.path.lexists(out / MANIFEST):
        return None
    try:
        return load_manifest(out)
    except ModelError as exc:
        raise SystemExit(
            f"error: {exc}; nothing was changed (repair or remove the manifest)"
        ) from None


def check_member_files(bank: Path, entries: Iterable[ModelEntry]) -> None:
    """SystemExit naming the first file of ``entries`` in ``bank`` that is missing, is not the
    file the manifest's sha256 names, or is not a readable ONNX model: checked before a tool
    reads them, so a member made from one records the sha256 of the file it was made from."""
    import onnx
    from google.protobuf.message import DecodeError

    for entry in entries:
        path = bank / entry.file
        why = ""
        try:
            if not path.is_file():
                why = "is missing"
            elif sha256_file(path) != entry.sha256:
                why = "does not match the manifest's sha256"
            else:
                onnx.checker.check_model(onnx.load(str(path)))
        except (OSError, ModelError, DecodeError, onnx.checker.ValidationError) as exc:
            text = str(exc).strip().splitlines()
            why = f"is not a readable ONNX model ({type(exc).__name__}: {text[0] if text else ''})"
        if why:
            raise SystemExit(f"error: {path} {why} (model {entry.id}); nothing was changed")


def _nested(out: Path) -> bool:
    """``out`` is itself a working copy (build runs distill and compress on its own)."""
    return out.name.startswith(".") and out.name.endswith(".staging")


@contextmanager
def bank_lock(out: Path) -> Iterator[None]:
    """One tool at a time changes a bank: SystemExit naming the bank while another holds it.
    Tools take it when they start, before any training, and keep it until they are done."""
    digest = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:16]
    try:
        lock = claim(f"bank/{digest}")
    except NameInUse:
        raise SystemExit(
            f"error: another tool is changing {out} right now; wait for it to finish"
        ) from None
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM wait for the block: a bank's files and manifest move in
    together, and the signal acts once they have (its handler runs then: Python's raises
    KeyboardInterrupt, ``tools.cli.run_main``'s SIGTERM one raises its subclass; without a
    handler the signal is raised again, to its default action). (The handlers are swapped for
    ones that note the signal, in the main thread, where handlers run; blocking the signals
    would not do: any thread of the process may receive them.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if caught:
        sig = signal.Signals(caught[0])
        handler = old[sig]
        if callable(handler):
            handler(sig, None)  # Python's SIGINT default raises KeyboardInterrupt
        elif handler == signal.SIG_DFL:
            signal.raise_signal(sig)


@contextmanager
def staged_bank(out: Path, *, locked: bool = False) -> Iterator[Path]:
    """A working copy of ``out``; committed into ``out`` when the block ends without error.
    ``locked``: the caller holds :func:`bank_lock` already (else it is taken here)."""
    with contextlib.ExitStack() as stack:
        if not locked:
            stack.enter_context(bank_lock(out))
        work = staging_dir(out)
        shutil.rmtree(work, ignore_errors=True)  # left by a run that was killed
        try:
            work.mkdir(parents=True)
        except OSError as exc:
            raise SystemExit(
                f"error: {work}: cannot create a working copy ({exc.strerror})"
            ) from None
        snapshot: dict[str, str] = {}
        try:
            try:
                if out.is_dir():
                    for p in out.iterdir():
                        if p.is_file():
                            shutil.copy2(p, work / p.name)
                            snapshot[p.name] = _digest(work / p.name)
                yield work
            except KeyboardInterrupt as exc:
                if _nested(out):  # the outer working copy says it, naming the real bank
                    raise
                interrupted(f"interrupted: {out} was left as it was")
                raise SystemExit(interrupt_status(exc)) from None
            # a Ctrl-C now comes after the commit: the folder is the new one, never half of it
            with interrupts_held():
                _commit(work, out, snapshot)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commit(work: Path, out: Path, snapshot: dict[str, str]) -> None:
    """Move in what the tool changed, delete what it deleted; a file it left as it was copied
    (same bytes) is left as the folder has it now (another program may have changed it)."""
    out.mkdir(parents=True, exist_ok=True)
    after = {p.name for p in work.iterdir() if p.is_file()}
    for name in sorted(after - {MANIFEST}):
        if snapshot.get(name) == _digest(work / name):
            continue  # not changed by the tool
        os.replace(work / name, out / name)
    for name in sorted(set(snapshot) - after):
        (out / name).unlink(missing_ok=True)
    if MANIFEST in after and snapshot.get(MANIFEST) != _digest(work / MANIFEST):
        os.replace(work / MANIFEST, out / MANIFEST)
