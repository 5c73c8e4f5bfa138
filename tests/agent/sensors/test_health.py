"""Fault bookkeeping: log once when a fault starts, once when it clears; the health payload."""

import json
import logging

import numpy as np
import pytest

from agent.sensors.health import HEALTH_SCHEMA, SensorHealth, StuckDetector


def test_log_once_per_start_and_clear(caplog: pytest.LogCaptureFixture) -> None:
    t = [100.0]
    h = SensorHealth("MPU-6050 on I2C bus 1 at 0x68", lambda: t[0])
    assert (h.state, h.version) == ("ok", 1)
    with caplog.at_level(logging.INFO, logger="agent.sensors.health"):
        for _ in range(5):
            h.fault("i2c_error", "EIO")
        t[0] += 3.5
        for _ in range(3):
            h.clear("i2c_error")
        h.clear("stuck")  # never active: nothing to say
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert (
        "I2C transfers keep failing: EIO" in lines[0] and caplog.records[0].levelname == "WARNING"
    )
    assert "'i2c_error' cleared after 3.5 s" in lines[1]
    assert (h.state, h.version) == ("ok", 3)


def test_payload() -> None:
    h = SensorHealth("imu", lambda: 1_700_000_000.0)
    h.fault("fifo_overflow", "fell behind")
    h.count("overflows")
    body = json.loads(h.payload())
    assert body["schema"] == HEALTH_SCHEMA and body["state"] == "degraded"
    assert body["faults"] == [
        {"fault": "fifo_overflow", "detail": "fell behind", "since": "2023-11-14T22:13:20.000Z"}
    ]
    assert body["counters"]["overflows"] == 1
    with pytest.raises(ValueError, match="unknown sensor fault"):
        h.fault("gremlins", "")


@pytest.mark.parametrize(
    ("rows", "limit", "mask"),
    [
        ([1, 1, 1, 1, 2, 2], 3, [0, 0, 1, 1, 0, 0]),
        ([1, 2, 3, 4], 2, [0, 0, 0, 0]),
        ([5, 5, 5, 5, 5], 5, [0, 0, 0, 0, 1]),
    ],
)
def test_stuck_detector(rows: list[int], limit: int, mask: list[int]) -> None:
    d = StuckDetector(limit)
    values = np.array([[r, 0.0, 1.0] for r in rows])
    # split across two batches: runs continue across FIFO reads
    got = np.concatenate([d.update(values[:2]), d.update(values[2:])])
    assert got.astype(int).tolist() == mask
