"""Every tool that reads or writes a bank folder takes it as ``--bank`` (some also by their
older name, ``--out`` or ``--models``): one spelling works everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tools import train_baseline  # noqa: E402
from tools.bank import (  # noqa: E402
    build,
    compress,
    distill,
    independent,
    paced_latency,
    report,
)

pytestmark = pytest.mark.tools

# (command's parse_args, the attribute holding the bank folder, its older name if any)
TOOLS = [
    (build.parse_args, "out", "--out"),
    (compress.parse_args, "out", "--out"),
    (train_baseline.parse_args, "out", "--out"),
    (report.parse_args, "models", "--models"),
    (distill.parse_args, "bank", None),
    (paced_latency.parse_args, "bank", None),
    (independent.parse_args, "bank", None),
]


@pytest.mark.parametrize(("parse", "dest", "older"), TOOLS)
def test_every_bank_tool_takes_bank(
    parse: Callable[[list[str]], argparse.Namespace], dest: str, older: str | None
) -> None:
    assert getattr(parse(["--bank", "somewhere"]), dest) == Path("somewhere")
    if older is not None:
        assert getattr(parse([older, "elsewhere"]), dest) == Path("elsewhere")
