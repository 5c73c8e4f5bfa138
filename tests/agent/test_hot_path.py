"""The lean per-window path gives exactly what the reference functions give: timestamps,
model inputs, windows across buffer wrap-arounds and hops longer than the window."""

import io
import math
import random
from pathlib import Path

import numpy as np
import pytest

from agent.inference import InputBuffer, to_model_input
from agent.manifest import load_manifest
from agent.payload import IsoFormatter, iso_from_unix
from agent.publishers import StdoutPublisher
from agent.recording import Chunk
from agent.windowing import Windower, WindowSpec, sliding_windows, uniform_label

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_iso_formatter_matches_datetime() -> None:
    rng = random.Random(7)
    fmt = IsoFormatter()
    stamps = [1_700_000_000.0 + rng.uniform(0, 400_000) for _ in range(20_000)]
    # halfway and carry cases of the microsecond rounding, hour/day/year edges, old dates
    stamps += [1_700_000_000 + k / 1e6 + 5e-7 for k in range(2000)]
    stamps += [1_700_000_000 + k * 0.0005 for k in range(4000)]
    stamps += [1_703_980_799.9996, 1_703_980_799.9995, 1_703_980_799.99949, 3599.9999996]
    stamps += [0.0, 1e-7, 5e-7, 86_399.9995, 1_328_000_000.123456, -1.5, -0.0004]
    stamps += [59.9995, 60.0, 119.99949, -60.0004, -3600.5, 4_102_444_799.9996]  # minute edges
    stamps += [rng.uniform(-2e9, 4.1e9) for _ in range(5000)]  # any minute, before 1970 too
    for ts in stamps:
        assert fmt(ts) == iso_from_unix(ts).encode(), ts
    assert len(fmt._minutes) <= IsoFormatter.MAX_MINUTES


@pytest.mark.parametrize("layout", ["NTC", "NCT", "N1TC"])
def test_input_buffer_equals_reference(layout: str) -> None:
    import dataclasses

    entry = load_manifest(MODELS).get("cnn1d-base")
    entry = dataclasses.replace(entry, input=dataclasses.replace(entry.input, layout=layout))
    buf = InputBuffer(entry)
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = (rng.standard_normal((entry.input.length, 6)) * 3).astype(np.float32)
        ref = to_model_input(entry.normalization(w), layout)
        got = buf.fill(w)
        assert got.shape == ref.shape == entry.input.shape
        assert np.array_equal(got, ref)
    # a float64 window takes the reference path (its rounding differs)
    w64 = rng.standard_normal((entry.input.length, 6))
    assert np.array_equal(buf.fill(w64), to_model_input(entry.normalization(w64), layout))


def _label_runs(n: int, seed: int) -> tuple[str | None, ...]:
    """Labels in runs of 1 to 600 samples (many shorter than a window), None among them."""
    rng = np.random.default_rng(seed)
    out: list[str | None] = []
    while len(out) < n:
        out += [rng.choice(["A", "B", "C", None])] * int(rng.integers(1, 600))  # type: ignore[list-item]
    return tuple(out[:n])


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize(
    ("length", "hop", "chunk"), [(128, 64, 64), (128, 64, 999), (32, 7, 5), (128, 64, 7000)]
)
def test_windower_across_buffer_wraps(length: int, hop: int, chunk: int, copy: bool) -> None:
    """Data, times and labels of every window against the batch cut, across the buffer moving
    its samples back (within one push too, with chunks longer than the buffer); views
    (``copy`` off) are checked before the next push, as the pipeline uses them."""
    n = 20_000  # several times the windower's buffer
    t = np.arange(n) / 50.0
    v = np.random.default_rng(1).standard_normal((n, 3)).astype(np.float32)
    labels = _label_runs(n, length + chunk)
    w = Windower(WindowSpec(length, hop, 50.0), 3, copy=copy)
    ref = sliding_windows(v, length, hop)
    i = views = 0
    for a in range(0, n, chunk):
        for win in w.push(Chunk(t[a : a + chunk], v[a : a + chunk], labels[a : a + chunk])):
            assert win.index == i
            assert np.array_equal(win.data, ref[i])
            assert win.start_t == t[i * hop] and win.end_t == t[i * hop + length - 1]
            assert win.label == uniform_label(labels[i * hop : i * hop + length]), i
            views += np.shares_memory(win.data, w._v)
            i += 1
    assert i == len(ref)
    # views unless the buffer moved during the push that cut them (then copies: with chunks
    # longer than the buffer, most of them)
    if copy:
        assert views == 0
    elif chunk < 1000:
        assert views > len(ref) // 2


def test_windower_hop_longer_than_window_skips_samples() -> None:
    n = 9000
    t = np.arange(n) / 50.0
    v = np.arange(n, dtype=np.float32)[:, None]
    w = Windower(WindowSpec(10, 25, 50.0), 1)
    got = []
    for a in range(0, n, 13):
        got += w.push(Chunk(t[a : a + 13], v[a : a + 13]))
    starts = [int(win.data[0, 0]) for win in got]
    assert starts == list(range(0, n - 9, 25))
    for win, s in zip(got, starts, strict=True):
        assert np.array_equal(win.data[:, 0], np.arange(s, s + 10))
    assert math.isclose(got[-1].start_t, t[starts[-1]])


def test_resampler_matches_per_channel_reference() -> None:
    """One convolution over the channels laid end to end gives each channel's own convolution,
    bit for bit; streamed in chunks it gives the same samples as in one push (up to the
    rounding of the output grid's times, which are accumulated per chunk)."""
    from agent.resampling import Resampler, lowpass_taps

    n = 3000
    rng = np.random.default_rng(5)
    t = np.arange(n) / 50.0
    v = rng.standard_normal((n, 4)).astype(np.float32)
    whole = Resampler(50.0, 25.0).push(Chunk(t, v))
    taps = lowpass_taps(0.45 * 25.0 / 50.0, 31)
    filt = np.stack([np.convolve(v[:, c].astype(np.float64), taps, "valid") for c in range(4)], 1)
    ft = t[15 : 15 + filt.shape[0]]
    grid = ft[0] + (1 / 25.0) * np.arange(int(np.floor((ft[-1] - ft[0]) * 25.0 + 1e-9)) + 1)
    ref = np.stack([np.interp(grid, ft, filt[:, c]) for c in range(4)], 1).astype(np.float32)
    assert np.array_equal(whole.t, grid)
    assert np.array_equal(whole.values, ref)
    for size in (7, 32, 64, 500):
        r = Resampler(50.0, 25.0)
        parts = [r.push(Chunk(t[a : a + size], v[a : a + size])) for a in range(0, n, size)]
        got = np.concatenate([p.values for p in parts])
        np.testing.assert_allclose(got, whole.values, rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.concatenate([p.t for p in parts]), whole.t, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_mean_smoother_equals_float64_numpy(k: int) -> None:
    from collections import deque

    from agent.smoothing import Smoother

    rng = np.random.default_rng(k)
    s = Smoother("mean", k)
    window: deque[np.ndarray] = deque(maxlen=k)
    total: np.ndarray | None = None
    for _ in range(300):
        p = rng.dirichlet(np.ones(6)).astype(np.float32)
        q = p.astype(np.float64)
        if total is None:
            total = q.copy()
        else:
            if len(window) == k:
                total -= window[0]
            total += q
        window.append(q)
        avg = total / len(window)
        got = s.update(p if len(window) % 2 else p.tolist())
        assert got.index == int(avg.argmax())
        assert got.confidence == float(avg[got.index])


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.mark.parametrize("flush_each", [True, False])
def test_stdout_publisher_flushes_each_line_only_when_paced(flush_each: bool) -> None:
    """A paced replay shows each line at once; an unpaced one flushes when it stops."""
    out = _CountingStream()
    pub = StdoutPublisher(out, flush_each=flush_each)
    for i in range(5):
        pub.publish("har/x/prediction", b'{"seq":%d}' % i)
    assert out.flushes == (5 if flush_each else 0)
    assert pub.stop() == 0
    assert out.flushes == (6 if flush_each else 1)
    assert out.getvalue().splitlines() == [f'har/x/prediction {{"seq":{i}}}' for i in range(5)]
