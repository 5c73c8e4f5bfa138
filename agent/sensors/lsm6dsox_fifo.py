"""The LSM6DSOX's tagged FIFO words, paired into samples (pure); register facts in
:mod:`agent.sensors.lsm6dsox`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TAG_GYRO = 0x01
TAG_ACCEL = 0x02
SETTLING_MARK = 0x7FFD
"""A FIFO word whose first value (signed) is this or more is a masked filter-settling sample."""

WORD = 7
"""Bytes per FIFO word: tag + x, y, z."""


@dataclass
class TagPairer:
    """Pairs accelerometer and gyroscope FIFO words sampled in the same time slot (TAG_CNT).

    Words of other sensors (timestamp, temperature, configuration change) are skipped, and so are
    words the chip marked as filter-settling samples (first value >= :data:`SETTLING_MARK`, until
    that sensor's first unmarked word after :meth:`restart`; counted in :attr:`settling`). A word
    whose partner never arrives (lost to an overflow, or marked as settling: the two sensors settle
    independently) is dropped when a later slot completes.
    """

    pending: dict[int, list[np.ndarray | None]] = field(default_factory=dict)
    dropped: int = 0
    settling: int = 0
    """Accelerometer and gyroscope words skipped as filter-settling samples, since creation."""
    settled: list[bool] = field(default_factory=lambda: [False, False])
    """Accelerometer, gyroscope: an unmarked word has come since the sensors (re)started."""

    def push(self, data: bytes) -> np.ndarray:
        """FIFO words in, raw samples ``[n, 6]`` (accel x y z, gyro x y z) out, oldest first."""
        if not data:
            return np.zeros((0, 6), dtype=np.int32)
        arr = np.frombuffer(data, dtype=np.uint8).reshape(-1, WORD)
        tags = arr[:, 0]
        xyz = np.ascontiguousarray(arr[:, 1:]).view("<i2").astype(np.int32)
        out: list[np.ndarray] = []
        for tag, vec in zip(tags.tolist(), xyz, strict=True):
            sensor, slot_id = tag >> 3, (tag >> 1) & 0b11
            if sensor not in (TAG_ACCEL, TAG_GYRO):
                continue
            which = 0 if sensor == TAG_ACCEL else 1
            if not self.settled[which]:
                if vec[0] >= SETTLING_MARK:  # Linux st_lsm6dsx: "invalid sample during bootstrap"
                    self.settling += 1
                    continue
                self.settled[which] = True
            slot = self.pending.setdefault(slot_id, [None, None])
            if slot[which] is not None:  # this slot already had one: its partner was lost
                self.dropped += 1
                self.pending.pop(slot_id)
                slot = self.pending.setdefault(slot_id, [None, None])
            slot[which] = vec
            acc, gyro = slot
            if acc is not None and gyro is not None:
                for older in list(self.pending):  # insertion order = time order
                    if older == slot_id:
                        break
                    self.pending.pop(older)
                    self.dropped += 1
                self.pending.pop(slot_id)
                out.append(np.concatenate([acc, gyro]))
        return np.stack(out) if out else np.zeros((0, 6), dtype=np.int32)

    def clear(self) -> None:
        self.pending.clear()

    def restart(self) -> None:
        """The sensors start again (reset, new configuration): their filters settle again."""
        self.clear()
        self.settled = [False, False]
