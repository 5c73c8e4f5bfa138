"""ONNX Runtime's telemetry is off unless the user turns it on (agent/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.agent.helpers import ROOT

PROBE = "import os, agent, onnxruntime; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_telemetry_is_disabled_before_onnxruntime_loads() -> None:
    assert _probe() == "1"


def test_a_users_choice_is_kept() -> None:
    assert _probe(ORT_DISABLE_TELEMETRY="0") == "0"


def test_the_service_disables_it_too() -> None:
    unit = (ROOT / "systemd" / "har-agent.service").read_text(encoding="utf-8")
    assert "Environment=ORT_DISABLE_TELEMETRY=1" in unit.splitlines()


def test_every_tools_command_disables_it_first() -> None:
    """``python -m tools.x`` imports the ``tools`` package first: it must set the variable
    before tools.x imports onnxruntime (tools/bank/compress.py imports it before agent)."""
    base = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    probe = (
        "import sys, os, tools; "
        "print('onnxruntime' in sys.modules, os.environ.get('ORT_DISABLE_TELEMETRY'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=base,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["False", "1"]
