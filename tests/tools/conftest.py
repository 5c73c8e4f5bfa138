"""Fixtures for the tools tests: the real HAPT data, loaded once per session."""

from __future__ import annotations

import pytest

from tools import hapt


@pytest.fixture(scope="session")
def experiments() -> list[hapt.Experiment]:
    return hapt.load_hapt()
