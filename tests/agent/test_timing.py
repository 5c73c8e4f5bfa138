"""The pipeline benchmark's arithmetic (agent/timing.py): no clocks, tables of chunk timings."""

import pytest

from agent.run_stats import RunStats
from agent.timing import overhead_report, per_window, raw_session_times


def _stats(read: list[float], process: list[float], windows: list[int]) -> RunStats:
    st = RunStats(windows=sum(windows))
    st.read_s, st.process_s, st.windows_per_chunk = read, process, windows
    st.wall_s = 1.0
    return st


@pytest.mark.parametrize(
    ("read", "process", "windows", "overhead", "decode"),
    [
        # one window a chunk
        ([1.0, 2.0], [3.0, 4.0], [1, 1], [4.0, 6.0], [1.0, 2.0]),
        # two windows in one chunk share its cost
        ([2.0], [4.0], [2], [3.0], [1.0]),
        # a chunk without a window is carried into the next one that has one
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0, 1, 1], [4.0, 2.0], [2.0, 1.0]),
        # what follows the last window goes to the last entry
        ([1.0, 1.0], [1.0, 1.0], [1, 0], [4.0], [2.0]),
        ([1.0], [1.0], [0], [], []),
    ],
)
def test_per_window_counts_every_chunk(
    read: list[float],
    process: list[float],
    windows: list[int],
    overhead: list[float],
    decode: list[float],
) -> None:
    got_overhead, got_decode = per_window(_stats(read, process, windows))
    assert got_overhead == pytest.approx(overhead)
    assert got_decode == pytest.approx(decode)
    # nothing is lost: the per-window figures add up to the whole agent time
    if windows and sum(windows):
        total = sum(o * n for o, n in zip(got_overhead, [n for n in windows if n], strict=True))
        assert total == pytest.approx(sum(read) + sum(process))


def test_report_ratio_and_mean() -> None:
    st = _stats([0.0, 2e-4], [1e-4, 1e-4], [1, 1])
    st.infer_s = [5e-4, 5e-4]
    rep = overhead_report(st, [4e-4, 4e-4])
    assert rep.overhead_median_us == pytest.approx(200.0)
    assert rep.overhead_mean_us == pytest.approx(200.0)
    assert rep.decode_mean_us == pytest.approx(100.0)
    assert rep.raw_median_us == pytest.approx(400.0)
    assert rep.ratio == pytest.approx(0.5)
    assert rep.windows_per_s == pytest.approx(2.0)
    assert any("50.0 %" in line for line in rep.lines())


def test_raw_session_times_warm_up_then_time_each_input() -> None:
    calls: list[int] = []
    ticks = iter(range(100))
    times = raw_session_times(calls.append, [1, 2, 3], lambda: float(next(ticks)), warmup=2)
    assert calls == [1, 2, 1, 2, 3]
    assert times == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("hop", "model_rate", "source_rate", "expected"),
    [(64, 50.0, 50.0, 64), (32, 25.0, 50.0, 64), (16, 12.5, 50.0, 64), (64, 50.0, 100.0, 128)],
)
def test_hop_in_source_samples(
    hop: int, model_rate: float, source_rate: float, expected: int
) -> None:
    from agent.manifest import InputSpec
    from agent.timing import hop_in_source_samples

    spec = InputSpec("x", "NCT", 2 * hop, model_rate, hop, ("a",), ("g",))
    assert hop_in_source_samples(spec, source_rate) == expected
