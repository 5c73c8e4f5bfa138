"""The lean per-window path gives exactly what the reference functions give: timestamps,
model inputs, windows across buffer wrap-arounds and hops longer than the window."""

import math
import random
from pathlib import Path

import numpy as np
import pytest

from agent.inference import InputBuffer, to_model_input
from agent.manifest import load_manifest
from agent.payload import IsoFormatter, iso_from_unix
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
    for ts in stamps:
        assert fmt(ts) == iso_from_unix(ts), ts
    assert len(fmt._hours) <= IsoFormatter.MAX_HOURS


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


@pytest.mark.parametrize(("length", "hop", "chunk"), [(128, 64, 64), (128, 64, 999), (32, 7, 5)])
def test_windower_across_buffer_wraps(length: int, hop: int, chunk: int) -> None:
    n = 20_000  # several times the windower's buffer
    t = np.arange(n) / 50.0
    v = np.random.default_rng(1).standard_normal((n, 3)).astype(np.float32)
    labels = tuple(["A"] * 5000 + [None] * 3000 + ["B"] * (n - 8000))
    w = Windower(WindowSpec(length, hop, 50.0), 3)
    got = []
    for a in range(0, n, chunk):
        got += w.push(Chunk(t[a : a + chunk], v[a : a + chunk], labels[a : a + chunk]))
    ref = sliding_windows(v, length, hop)
    assert len(got) == len(ref)
    for i, win in enumerate(got):
        assert win.index == i
        assert np.array_equal(win.data, ref[i])
        assert win.start_t == t[i * hop] and win.end_t == t[i * hop + length - 1]
        assert win.label == uniform_label(labels[i * hop : i * hop + length])


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
