"""The benchmark scripts run and print their tables (figures are not asserted: they are times)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_overhead_floor_prints_every_rung() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "overhead_floor.py"), "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) µs \| ([\d.]+) % \|$", out, re.MULTILINE)
    assert [r[0] for r in rows] == [
        "session.run",
        "+ normalise",
        "+ softmax",
        "+ payload",
        "+ window",
    ]
    assert out.startswith("cnn1d-base, 257 windows, 1 rounds")


def test_overhead_floor_refuses_an_unknown_member() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "overhead_floor.py"), "-m", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "model 'nope' is not in" in proc.stderr
    assert "Traceback" not in proc.stderr
