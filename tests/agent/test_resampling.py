"""The streaming resampler: anti-alias filter, rates, labels, gaps, and the same output in
any chunking (agent/resampling.py)."""

import numpy as np
import pytest

from agent.errors import DataError
from agent.recording import Chunk
from agent.resampling import Resampler, lowpass_taps


def test_lowpass_has_unit_dc_gain_and_attenuates() -> None:
    taps = lowpass_taps(0.2, 31)
    assert taps.sum() == pytest.approx(1.0)
    n = np.arange(400)
    high = np.sin(2 * np.pi * 0.45 * n)
    filtered = np.convolve(high, taps, mode="valid")
    assert np.abs(filtered).max() < 0.02


@pytest.mark.parametrize(
    ("rate_in", "rate_out", "freq", "tol"),
    [
        (100.0, 50.0, 1.0, 0.01),
        (200.0, 50.0, 2.0, 0.02),
        (25.0, 50.0, 0.5, 0.005),
        (52.0, 50.0, 1.0, 0.01),
        (50.0, 50.0, 1.0, 1e-6),
    ],
)
@pytest.mark.parametrize("chunk", [7, 333, 5000])
def test_resampler_rates(
    rate_in: float, rate_out: float, freq: float, tol: float, chunk: int
) -> None:
    n = int(rate_in * 20)
    t = np.arange(n) / rate_in
    v = np.sin(2 * np.pi * freq * t)[:, None].astype(np.float32)
    r = Resampler(rate_in, rate_out)
    parts = [r.push(Chunk(t[a : a + chunk], v[a : a + chunk])) for a in range(0, n, chunk)]
    ot = np.concatenate([p.t for p in parts])
    ov = np.concatenate([p.values for p in parts])[:, 0]
    np.testing.assert_allclose(np.diff(ot), 1 / rate_out, atol=1e-9)
    assert len(ot) >= rate_out * 20 * 0.95
    np.testing.assert_allclose(ov, np.sin(2 * np.pi * freq * ot), atol=tol)


def test_resampler_removes_aliasing_tone() -> None:
    rate_in, rate_out = 200.0, 50.0
    t = np.arange(4000) / rate_in
    tone = np.sin(2 * np.pi * 40.0 * t)  # above the 25 Hz output Nyquist: must not alias in
    out = Resampler(rate_in, rate_out).push(Chunk(t, tone[:, None].astype(np.float32)))
    assert np.abs(out.values[20:]).max() < 0.05


def test_resampler_labels_and_gap() -> None:
    t = np.arange(400) / 100.0
    t[200:] += 3.0
    labels = tuple(["A"] * 200 + ["B"] * 200)
    v = np.zeros((400, 1), dtype=np.float32)
    out = Resampler(100.0, 50.0).push(Chunk(t, v, labels))
    assert out.labels is not None and set(out.labels) == {"A", "B"}
    # no output sample lands inside the gap
    assert not np.any((out.t > 2.0) & (out.t < 5.0))


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_resampled_labels_follow_the_nearest_earlier_sample(chunk: int) -> None:
    """Whether a chunk holds one label (the shortcut) or several, each output sample takes the
    label of the last input sample at or before it, the same in any chunking."""
    rng = np.random.default_rng(3)
    n = 3000
    t = np.arange(n) / 50.0
    runs = np.repeat(rng.choice(["A", "B", "C"], size=n // 100), 100)  # 2 s runs
    labels = tuple(str(x) for x in runs)
    v = rng.normal(size=(n, 2)).astype(np.float32)
    r = Resampler(50.0, 37.5)
    outs = [
        r.push(Chunk(t[a : a + chunk], v[a : a + chunk], labels[a : a + chunk]))
        for a in range(0, n, chunk)
    ]
    out_t = np.concatenate([o.t for o in outs])
    out_l = [lbl for o in outs for lbl in (o.labels or ())]
    assert len(out_l) == len(out_t) > 2000
    # the filtered stream lags by half the filter: output k sits at a filtered sample's time
    # grid; its label is the input label at the latest input time <= the output time
    want = [labels[int(np.searchsorted(t, x + 1e-9, side="right")) - 1] for x in out_t]
    assert out_l == want
    whole = Resampler(50.0, 37.5).push(Chunk(t, v, labels))
    assert whole.labels == tuple(out_l)


def test_resampler_rejects_bad_rates() -> None:
    with pytest.raises(DataError):
        Resampler(0.0, 50.0)


@pytest.mark.parametrize(("rate_in", "rate_out"), [(50.0, 37.5), (50.0, 25.0), (50.0, 12.5)])
@pytest.mark.parametrize("chunk", [1, 10, 64, 333])
def test_resampled_output_is_the_same_bit_for_bit_in_any_chunking(
    rate_in: float, rate_out: float, chunk: int
) -> None:
    """The grid times come from the run's origin and an integer index, so a stream cut into
    chunks gives exactly what one push of the whole run gives (how tools/ cuts training and
    test windows). Adding a step per chunk drifted by a float32 step in some windows."""
    n = 4000
    rng = np.random.default_rng(3)
    t = 1.7e9 + np.arange(n) / rate_in  # a Unix start time: large times round most
    v = rng.standard_normal((n, 6)).astype(np.float32)
    whole = Resampler(rate_in, rate_out).push(Chunk(t, v))
    r = Resampler(rate_in, rate_out)
    parts = [r.push(Chunk(t[a : a + chunk], v[a : a + chunk])) for a in range(0, n, chunk)]
    got_t = np.concatenate([p.t for p in parts])
    got_v = np.concatenate([p.values for p in parts])
    assert np.array_equal(got_t, whole.t) and np.array_equal(got_v, whole.values)
