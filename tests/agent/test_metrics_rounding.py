"""The metrics topic's resource figures are rounded to what they can tell; the snapshot the
policy reads keeps them raw."""

from __future__ import annotations

import json

from agent.monitor import ResourceSnapshot


def _snapshot(load: tuple[float, float, float] | None, mem_mb: float | None) -> ResourceSnapshot:
    return ResourceSnapshot(
        t=0.0,
        cpu_percent=12.5,
        process_cpu_percent=3.1,
        cpu_count=4,
        load_avg=load,
        mem_available_mb=mem_mb,
        cpu_freq_mhz=None,
        cpu_freq_max_mhz=None,
        temperature_c=None,
        throttling=None,
        battery=None,
    )


def test_load_averages_and_memory_are_rounded_in_the_payload() -> None:
    """Was ``"load_avg":[0.24853515625,...]`` (the kernel's fixed-point value, as a float)."""
    snap = _snapshot((0.24853515625, 1.0, 2.0009765625), 5123.87890625)
    body = snap.to_dict()
    assert body["load_avg"] == [0.25, 1.0, 2.0]
    assert body["mem_available_mb"] == 5123.9
    assert '"load_avg": [0.25, 1.0, 2.0]' in json.dumps(body)
    assert snap.load_avg == (0.24853515625, 1.0, 2.0009765625)  # raw where it is kept
    assert snap.mem_available_mb == 5123.87890625


def test_absent_figures_stay_null() -> None:
    body = _snapshot(None, None).to_dict()
    assert body["load_avg"] is None and body["mem_available_mb"] is None
