"""Derived members (pruned, int8) and their parents: which ones a rebuild left stale."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agent.manifest import ModelEntry


def still_valid(m: ModelEntry, by_id: dict[str, ModelEntry]) -> bool:
    """A pruned or int8 member made from a parent that is still in the bank, byte for byte."""
    parent = by_id.get(str(m.provenance.get("parent", "")))
    return parent is not None and parent.sha256 == m.provenance.get("parent_sha256")


def stale(models: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The members made from a parent (``provenance.parent``) that has changed or is gone."""
    by_id = {m.id: m for m in models}
    return [m for m in models if "parent" in m.provenance and not still_valid(m, by_id)]


def warn_stale(models: Sequence[ModelEntry]) -> None:
    """One warning line naming the members a rebuild of their parents left stale."""
    old = stale(models)
    if old:
        print(
            f"warning: {', '.join(m.id for m in old)} were made from a previous version of their "
            "parent; run python -m tools.bank.compress to remake them",
            file=sys.stderr,
        )
