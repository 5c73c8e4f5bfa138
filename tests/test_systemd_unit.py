"""The shipped unit: `systemd-analyze verify` is silent and the offline security score <= 2.0."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "har-agent.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _checkable(tmp_path: Path) -> Path:
    # the real ExecStart only exists after `har-agent service install`; verify checks it exists
    unit = tmp_path / "har-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/har-agent/.venv/bin/har-agent", "/bin/true"))
    return unit


def test_verify_prints_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(_checkable(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stderr


def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(_checkable(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_essentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=har-agent",
        "SupplementaryGroups=i2c",
        "DevicePolicy=closed",
        "DeviceAllow=char-i2c rw",
        "StateDirectory=har-agent",
        "ConfigurationDirectory=har-agent",
        "LogsDirectory=har-agent",
    ):
        assert line in text
