"""The pipeline benchmark's arithmetic (agent/timing.py): no clocks, tables of chunk timings."""

import numpy as np
import pytest

from agent.run_stats import RunStats
from agent.timing import overhead_report, per_window


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


def test_the_decode_median_is_printed_as_a_median_of_its_own() -> None:
    """The overhead's median line said '(of which recording decode X us)' of a separate median:
    a median of a part is no part of the median of the whole (here the median window, 150 us,
    decoded nothing, while the decode median is 100 us). The mean's 'of which' stays: means add
    up."""
    st = _stats([0.0, 1e-4, 1e-4], [1.5e-4, 1e-4, 0.0], [1, 1, 1])
    st.infer_s = [1e-4] * 3
    rep = overhead_report(st, [1e-4] * 3)
    lines = rep.lines()
    median = next(ln for ln in lines if ln.startswith("agent overhead / window"))
    assert median == "agent overhead / window  150.0 us median"
    assert "                         150.0 us mean (of which recording decode 66.7 us)" in lines
    decode = next(ln for ln in lines if ln.startswith("recording decode"))
    assert decode.split()[2:5] == ["100.0", "us", "median"]
    assert "a median of its own, not a part of the overhead median" in decode


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


class _Engine:
    """Records what it ran (the member's id and the input), one tick of the fake clock each."""

    def __init__(self, mid: str, log: list[tuple[str, tuple[int, ...], float]]) -> None:
        self.mid, self.log = mid, log

    def run(self, x: np.ndarray) -> np.ndarray:
        self.log.append((self.mid, x.shape, float(x.reshape(-1)[0])))
        return np.zeros(6, dtype=np.float32)


def test_the_bare_loop_runs_each_window_on_the_member_that_classified_it() -> None:
    """An adaptive run switches members: each window is normalised for and run on its own
    member (the final member's input length may not even fit the others' windows)."""
    from agent.inference import Classifier, to_model_input
    from agent.manifest import load_manifest
    from agent.timing import raw_times_on_own_members
    from tests.agent.helpers import MODELS

    bank = load_manifest(MODELS)
    big, small = bank.get("wc-w0.75-r096"), bank.get("wc-w0.12-r032")
    log: list[tuple[str, tuple[int, ...], float]] = []
    ticks = iter(range(1000))
    sessions = {e.id: Classifier(e, _Engine(e.id, log), lambda: 0.0) for e in (big, small)}
    rng = np.random.default_rng(1)
    order = [big, big, small, small, small, big]
    st = RunStats(windows=len(order))
    st.windows_data = [
        rng.normal(size=(e.input.window.length, len(e.input.channels))).astype(np.float32)
        for e in order
    ]
    st.models = [e.id for e in order]
    times = raw_times_on_own_members(st, sessions, lambda: float(next(ticks)), warmup=4)
    assert times == [1.0] * len(order)  # one per window, aligned with stats.infer_s
    # warmed first, each member on its own windows (cycled when it has fewer), then in order
    assert [m for m, _, _ in log[:8]] == [big.id] * 4 + [small.id] * 4
    timed = log[8:]
    assert [m for m, _, _ in timed] == st.models
    for (_, shape, first), e, w in zip(timed, order, st.windows_data, strict=True):
        x = to_model_input(e.normalization(w), e.input.layout)
        assert shape == e.input.shape and first == float(x.reshape(-1)[0])


def test_report_by_member_when_more_than_one_ran() -> None:
    st = _stats([0.0, 0.0, 0.0, 0.0], [1e-4, 2e-4, 3e-4, 4e-4], [1, 1, 1, 1])
    st.infer_s = [5e-4, 5e-4, 1e-4, 1e-4]
    st.models = ["big", "big", "small", "small"]
    rep = overhead_report(st, [4e-4, 6e-4, 1e-4, 1e-4])
    (big, small) = rep.by_model
    assert (big.model, big.windows, small.model, small.windows) == ("big", 2, "small", 2)
    assert big.overhead_median_us == pytest.approx(150.0)
    assert big.raw_median_us == pytest.approx(500.0) and big.ratio == pytest.approx(0.3)
    assert small.overhead_median_us == pytest.approx(350.0)
    assert small.ratio == pytest.approx(3.5) and small.infer_median_us == pytest.approx(100.0)
    lines = rep.lines()
    assert any(ln.startswith("by member") for ln in lines)
    assert any(ln.split()[:2] == ["small", "2"] and "350.0 %" in ln for ln in lines)
    # one member: no table
    st.models = ["big"] * 4
    one = overhead_report(st, [4e-4] * 4)
    assert len(one.by_model) == 1 and not any(ln.startswith("by member") for ln in one.lines())


def test_overhead_of_each_window_shares_a_chunk_among_its_windows() -> None:
    from agent.timing import overhead_of_each_window

    st = _stats([1.0, 1.0, 1.0], [1.0, 3.0, 1.0], [0, 2, 1])
    assert overhead_of_each_window(st) == pytest.approx([3.0, 3.0, 2.0])


@pytest.mark.parametrize(
    ("windows", "rejected", "line"),
    [
        (3, 0, None),
        (0, 0, "no windows to time: the recording did not fill one window (see the line above)"),
        (0, 1, "no windows to time: its one window was rejected (see the log above)"),
        (0, 7, "no windows to time: all 7 windows were rejected (see the log above)"),
    ],
)
def test_nothing_to_time(windows: int, rejected: int, line: str | None) -> None:
    from agent.timing import nothing_to_time

    assert nothing_to_time(RunStats(windows=windows, rejected=rejected)) == line
