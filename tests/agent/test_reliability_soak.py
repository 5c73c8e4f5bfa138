"""Issue 6, fault test 8, the bounded CI version of the soak (``python -m tests.soak --hours N``
is the long one): 75 s of the recording looped at full speed through the outbox, three broker
restarts; the agent's RSS and open descriptors stay flat after warm-up and nothing is missing."""

from pathlib import Path

import pytest

from tests.soak import soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_soak_short(tmp_path: Path) -> None:
    result = soak(75.0, restarts=3, outage_s=4.0, every_s=5.0, warmup_s=12.0, workdir=tmp_path)
    assert result.restarts == 3
    assert result.warm is not None and result.end is not None
    assert result.produced > 1000  # several loops' worth even on a slow machine
    # RSS within 10 MB and descriptors within 2 of the warm-up sample; nothing missing
    assert result.problems(rss_tolerance_mb=10.0, fd_tolerance=2) == []
    assert result.received == result.produced
    # each restart can redeliver at most what was in flight (agent window + broker window)
    assert result.duplicates <= 3 * (32 + 20)
