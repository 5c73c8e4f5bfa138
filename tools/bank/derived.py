"""Derived members (pruned, int8) and their parents: which ones a rebuild left stale, or without
a parent."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.manifest import ModelEntry

COMPRESS = "python -m tools.bank.compress"
DEFAULT_BANK = Path("models")  # the folder compress works on without --bank (or --smoke)


def parent_of(m: ModelEntry) -> str | None:
    """The id of the member ``m`` was made from (``provenance.parent``); None for a member
    made from data (width-resolution, baseline)."""
    parent = m.provenance.get("parent")
    return None if parent is None else str(parent)


def still_valid(m: ModelEntry, by_id: dict[str, ModelEntry]) -> bool:
    """A pruned or int8 member made from a parent that is still in the bank, byte for byte."""
    parent = by_id.get(str(m.provenance.get("parent", "")))
    return parent is not None and parent.sha256 == m.provenance.get("parent_sha256")


def stale(models: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The members made from a parent (``provenance.parent``) that has changed or is gone."""
    by_id = {m.id: m for m in models}
    return [m for m in models if "parent" in m.provenance and not still_valid(m, by_id)]


def orphans(models: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The members whose parent is not among ``models``, and in turn those made from them (an
    int8 member of a pruned one): what is left once a bank loses their parent."""
    gone: list[ModelEntry] = []
    left = list(models)
    while True:
        ids = {m.id for m in left}
        more = [m for m in left if parent_of(m) is not None and parent_of(m) not in ids]
        if not more:
            return gone
        gone += more
        left = [m for m in left if m.id not in {g.id for g in more}]


def compress_command(models: Sequence[ModelEntry], bank: Path) -> str:
    """The compress command that runs on ``bank`` (the folder a tool wrote, as the user named
    it) holding ``models``: with ``--bank`` unless it is compress's default folder, and with
    ``--parent`` when compress's default pruning parent is not a width-resolution member there
    (compress refuses to run without one): the parent of the bank's pruned members if it is
    still there, else the widest, finest width-resolution member. (A bank with no
    width-resolution member gets no ``--parent``: compress refuses it whatever the parent.)"""
    from tools.bank import compress  # torch, onnxruntime: only when there is advice to give

    words = [COMPRESS]
    if bank.resolve() != DEFAULT_BANK.resolve():
        words += ["--bank", shlex.quote(str(bank))]
    fp32 = [m for m in models if m.family not in (compress.PRUNED, compress.INT8)]
    parents = [m for m in fp32 if m.family == compress.FAMILY]
    ids = {m.id for m in parents}
    # compress's own choice of parent, not a copy of it
    if parents and compress._default_parent(fp32) not in ids:
        pruned_from = [parent_of(m) for m in models if m.family == compress.PRUNED]
        fullest = max(parents, key=lambda m: (m.width, m.resolution)).id
        words += ["--parent", next((p for p in pruned_from if p in ids), fullest)]
    return " ".join(words)


def warn_stale(models: Sequence[ModelEntry], bank: Path) -> None:
    """One warning line for the members made from a previous version of their parent (compress
    remakes them), one for those whose parent is gone (compress keeps none of them: it removes
    them, and cannot remake them). ``bank``: the folder the tool wrote, as the user named it
    (not a working copy); the advised compress command names it unless it is ``models``."""
    ids = {m.id for m in models}
    old = stale(models)
    changed = [m for m in old if parent_of(m) in ids]
    gone = [m for m in old if parent_of(m) not in ids]
    if not old:
        return
    command = compress_command(models, bank)
    if changed:
        print(
            f"warning: {', '.join(m.id for m in changed)} were made from a previous version of "
            f"their parent; run {command} to remake them",
            file=sys.stderr,
        )
    if gone:
        many = len(gone) > 1
        print(
            f"warning: the parent{'s' if many else ''} of "
            f"{', '.join(f'{m.id} ({parent_of(m)})' for m in gone)} "
            f"{'are' if many else 'is'} no longer in the bank; run {command} to remove "
            f"{'them' if many else 'it'} (it keeps no member whose parent is gone)",
            file=sys.stderr,
        )
