"""Fixtures for the tools tests: the real HAPT data, loaded once per session; a stand-in int8
member for the tests of what the tools keep and drop."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from agent.manifest import ModelEntry
from tools import hapt


@pytest.fixture(scope="session")
def experiments() -> list[hapt.Experiment]:
    return hapt.load_hapt()


def int8_of(bank: Path, parent: ModelEntry) -> ModelEntry:
    """An int8 member of ``parent`` in ``bank`` (its file a copy of the parent's, which is all a
    test of the bookkeeping needs), made from the parent as it is now."""
    q8 = dataclasses.replace(
        parent,
        id=f"q8-{parent.id}",
        file=f"q8-{parent.id}.onnx",
        family="int8",
        provenance={"parent": parent.id, "parent_sha256": parent.sha256},
    )
    shutil.copy(bank / parent.file, bank / q8.file)
    return q8
