"""``Chunk.max_step``: the reader bounds the steps of the chunks it cuts; the windower and the
resampler skip their gap search under a bound below their limit, and find the same gaps (and
cut the same windows) as without it."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.recording import Chunk, RecordingReader
from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter
from agent.resampling import Resampler
from agent.windowing import Windower, WindowSpec

HEADER = RecordingHeader(
    sample_rate_hz=50.0,
    channels=(Channel("a", "g"), Channel("b", "g")),
    start_time="2012-01-01T00:00:00Z",
    labelled=True,
    labels=("X", "Y"),
)


def _stream_with_gaps(n: int = 6000) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    t = np.arange(n) / 50.0
    for at, by in ((700, 0.5), (2900, 0.031), (4100, 3.0)):  # one just above 1.5 steps
        t[at:] += by
    v = np.random.default_rng(2).standard_normal((n, 2)).astype(np.float32)
    labels: list[str | None] = [("X", "Y", None)[(i // 300) % 3] for i in range(n)]
    return t, v, labels


@pytest.mark.parametrize("name", ["s.har.bin", "s.har.csv"])
@pytest.mark.parametrize("size", [1, 7, 64, 2048, 3000])
def test_reader_bound_holds_for_every_chunk(tmp_path: Path, name: str, size: int) -> None:
    t, v, labels = _stream_with_gaps()
    with RecordingWriter(tmp_path / name, HEADER) as w:
        w.write(t, v, labels)
    for c in RecordingReader(tmp_path / name).chunks(size):
        assert c.max_step is not None
        if len(c) > 1:
            assert float(np.diff(c.t).max()) <= c.max_step


def _windows(chunks: list[Chunk], rate: float, resample: bool) -> list[tuple]:
    rs = Resampler(50.0, rate) if resample else None
    w = Windower(WindowSpec(32, 16, rate), 2)
    out = []
    for c in chunks:
        if rs is not None:
            c = rs.push(c)
            if len(c) > 1 and c.max_step is not None:  # (None: the chunk spanned a gap)
                assert float(np.diff(c.t).max()) <= c.max_step
        out += [(x.index, x.start_t, x.end_t, x.data.tobytes(), x.label) for x in w.push(c)]
    return out


@pytest.mark.parametrize("size", [5, 64, 500])
@pytest.mark.parametrize(("rate", "resample"), [(50.0, False), (37.5, True), (25.0, True)])
def test_bound_changes_no_window(tmp_path: Path, size: int, rate: float, resample: bool) -> None:
    t, v, labels = _stream_with_gaps()
    with RecordingWriter(tmp_path / "s.har.bin", HEADER) as w:
        w.write(t, v, labels)
    with_bound = list(RecordingReader(tmp_path / "s.har.bin").chunks(size))
    without = [replace(c, max_step=None) for c in with_bound]
    got = _windows(with_bound, rate, resample)
    assert got == _windows(without, rate, resample)
    assert len(got) > 100


def test_a_bound_above_the_limit_still_finds_the_gap() -> None:
    t = np.concatenate([np.arange(40), 100 + np.arange(40)]) / 50.0
    v = np.zeros((80, 1), dtype=np.float32)
    for bound in (None, float(np.diff(t).max()), 1e9):
        w = Windower(WindowSpec(32, 16, 50.0), 1)
        got = w.push(Chunk(t, v, None, bound))
        assert [x.start_t for x in got] == [0.0, 2.0] and w.gaps == 1
