"""scripts/_setup.sh's platform check: ONNX Runtime has no 32-bit ARM wheels, so a 32-bit
Raspberry Pi OS must be told so before pip fails with "no matching distribution"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.agent.helpers import ROOT

SETUP = ROOT / "scripts" / "_setup.sh"


def check(tmp_path: Path, machine: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``check_platform`` with a ``python3`` that reports ``machine`` (None: the real one)."""
    path = os.environ["PATH"]
    if machine is not None:
        fake = tmp_path / "python3"
        fake.write_text(f"#!/bin/sh\necho '{machine}'\n")
        fake.chmod(0o755)
        path = f"{tmp_path}:{path}"
    return subprocess.run(
        ["bash", "-c", f"source '{SETUP}'; check_platform && echo fine"],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_this_machine_passes(tmp_path: Path) -> None:
    done = check(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fine"


@pytest.mark.parametrize("machine", ["x86_64 64", "aarch64 64"])
def test_64_bit_platforms_pass(tmp_path: Path, machine: str) -> None:
    assert check(tmp_path, machine).returncode == 0


@pytest.mark.parametrize(
    ("machine", "named"),
    [("armv7l 32", "armv7l with 32-bit"), ("aarch64 32", "aarch64 with 32-bit")],
)
def test_32_bit_platforms_are_refused_with_the_reason(
    tmp_path: Path, machine: str, named: str
) -> None:
    done = check(tmp_path, machine)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert named in lines[0]
    assert "64-bit Raspberry Pi OS" in lines[0]


def test_the_check_can_be_skipped(tmp_path: Path) -> None:
    done = check(tmp_path, "armv7l 32", HAR_AGENT_ANY_PLATFORM="1")
    assert done.returncode == 0
    assert done.stdout.strip() == "fine"
