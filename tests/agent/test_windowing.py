import numpy as np
import pytest

from agent.errors import DataError
from agent.recording import Chunk
from agent.windowing import (
    Normalizer,
    Windower,
    WindowSpec,
    sliding_windows,
    uniform_label,
)


def _stream(n: int, rate: float = 50.0, ch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / rate
    v = np.stack([np.arange(n, dtype=np.float32) + 1000 * c for c in range(ch)], axis=1)
    return t, v


@pytest.mark.parametrize(
    ("n", "length", "hop", "expected"),
    [
        (0, 4, 2, 0),
        (3, 4, 2, 0),
        (4, 4, 2, 1),
        (5, 4, 2, 1),
        (6, 4, 2, 2),
        (10, 4, 4, 2),
        (10, 4, 1, 7),
        (256, 128, 64, 3),
        (257, 128, 64, 3),
        (320, 128, 64, 4),
    ],
)
def test_sliding_window_counts(n: int, length: int, hop: int, expected: int) -> None:
    _, v = _stream(n)
    w = sliding_windows(v, length, hop)
    assert w.shape == (expected, length, 2)
    for i in range(expected):
        np.testing.assert_array_equal(w[i], v[i * hop : i * hop + length])


@pytest.mark.parametrize("chunk", [1, 7, 64, 100, 1000])
def test_streaming_windower_matches_batch(chunk: int) -> None:
    t, v = _stream(1000)
    w = Windower(WindowSpec(128, 64, 50.0), 2)
    got = []
    for a in range(0, 1000, chunk):
        got += w.push(Chunk(t[a : a + chunk], v[a : a + chunk]))
    ref = sliding_windows(v, 128, 64)
    assert len(got) == len(ref)
    for i, win in enumerate(got):
        assert win.index == i
        np.testing.assert_array_equal(win.data, ref[i])
        assert win.start_t == pytest.approx(t[i * 64])
        assert win.end_t == pytest.approx(t[i * 64 + 127])


@pytest.mark.parametrize("seed", range(6))
def test_window_is_marked_finite_only_when_every_sample_was_checked(seed: int) -> None:
    """A window is ``finite`` exactly when none of its samples came from a chunk whose
    producer did not vouch for it: across chunk sizes, gaps (restarts) and the buffer moving
    its samples back (more than 4,096 samples), against the samples' own flags."""
    rng = np.random.default_rng(seed)
    n = 9000
    t, v = _stream(n)
    t = t.copy()
    t[5000:] += 1.0 if seed % 2 else 0.0  # a gap (restart) in half of the cases
    checked = np.zeros(n, dtype=bool)  # per sample: from a chunk flagged finite
    w = Windower(WindowSpec(128, 64 if seed < 3 else 200, 50.0), 2)
    got = []
    a = 0
    while a < n:
        size = int(rng.choice([1, 13, 64, 128, 700]))
        flag = bool(rng.random() < 0.7)
        b = min(n, a + size)
        checked[a:b] = flag
        got += w.push(Chunk(t[a:b], v[a:b], finite=flag))
        a = b
    assert len(got) > 40
    seen = {True: 0, False: 0}
    for win in got:
        first = int(win.data[0, 0])  # _stream's channel 0 is the sample's position
        want = bool(checked[first : first + 128].all())
        assert win.finite is want, (win.index, first)
        seen[want] += 1
    assert seen[True] and seen[False]


def test_windows_of_recorded_samples_are_finite_and_unknown_ones_are_not() -> None:
    t, v = _stream(600)
    w = Windower(WindowSpec(128, 64, 50.0), 2)
    wins = w.push(Chunk(t[:200], v[:200], finite=True))
    assert [x.finite for x in wins] == [True, True]  # samples 0-127 and 64-191
    wins = w.push(Chunk(t[200:260], v[200:260]))  # unknown: the window that takes it is not
    assert [(int(x.data[0, 0]), x.finite) for x in wins] == [(128, False)]
    later = w.push(Chunk(t[260:600], v[260:600], finite=True))
    # windows that still hold any of samples 200-259 are not finite; the ones after are
    starts = [int(x.data[0, 0]) for x in later]
    assert starts == [192, 256, 320, 384, 448]
    assert [x.finite for x in later] == [False, False, True, True, True]


def test_windower_restarts_at_gap() -> None:
    t, v = _stream(300)
    t = t.copy()
    t[150:] += 5.0  # a 5 s hole after sample 149
    w = Windower(WindowSpec(100, 50, 50.0), 2)
    wins = w.push(Chunk(t, v))
    # before the gap: windows at 0, 50 (ends 149); after: windows at 150, 200 (ends 249 / 299)
    assert [int(x.data[0, 0]) for x in wins] == [0, 50, 150, 200]
    assert all(np.all(np.diff(x.data[:, 0]) == 1) for x in wins)
    assert w.gaps == 1


def test_windower_gap_between_chunks() -> None:
    t, v = _stream(300)
    w = Windower(WindowSpec(100, 50, 50.0), 2)
    first = w.push(Chunk(t[:120], v[:120]))
    second = w.push(Chunk(t[120:] + 10.0, v[120:]))
    assert [int(x.data[0, 0]) for x in first + second] == [0, 120, 170]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["A", "A", "A"], "A"),
        (["A", "B", "A"], None),
        ([None, None], None),
        (["A", None], None),
        ([], None),
        (None, None),
    ],
)
def test_uniform_label(labels: list[str | None] | None, expected: str | None) -> None:
    assert uniform_label(labels) == expected


def test_windower_labels() -> None:
    t, v = _stream(200)
    labels = ["WALK"] * 100 + ["SIT"] * 100
    w = Windower(WindowSpec(50, 50, 50.0), 2)
    wins = w.push(Chunk(t, v, tuple(labels)))
    assert [x.label for x in wins] == ["WALK", "WALK", "SIT", "SIT"]


def test_windower_rejects_wrong_channels() -> None:
    w = Windower(WindowSpec(10, 5, 50.0), 3)
    with pytest.raises(DataError, match="3 channels"):
        w.push(Chunk(np.arange(4) / 50, np.zeros((4, 2), dtype=np.float32)))


@pytest.mark.parametrize(("length", "hop", "rate"), [(0, 1, 50.0), (10, 0, 50.0), (10, 5, 0.0)])
def test_window_spec_validation(length: int, hop: int, rate: float) -> None:
    with pytest.raises(DataError):
        WindowSpec(length, hop, rate)


def test_normalizer_fit_and_apply() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal([1.0, -2.0, 0.5], [0.5, 2.0, 1.0], size=(5000, 3)).astype(np.float32)
    norm = Normalizer.fit(x)
    y = norm(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-3)


def test_normalizer_constant_channel_and_validation() -> None:
    x = np.ones((10, 2), dtype=np.float32)
    assert Normalizer.fit(x).std == (1.0, 1.0)
    with pytest.raises(DataError):
        Normalizer((0.0,), (0.0,))
    with pytest.raises(DataError):
        Normalizer((0.0, 1.0), (1.0,))
    with pytest.raises(DataError, match="2 channels"):
        Normalizer((0.0, 0.0), (1.0, 1.0))(np.zeros((4, 3), dtype=np.float32))
