"""The rule every sample of a recording keeps (agent/recording_samples.py): the writer refuses a
block that breaks it, whole and before writing any of it, so what it wrote stays readable."""

import math
from pathlib import Path

import numpy as np
import pytest

from agent.recording import read_recording
from agent.recording_header import Channel, RecordingHeader
from agent.recording_samples import as_stored, first_bad_sample
from agent.recording_writer import BlockRefused, RecordingWriter

HEADER = RecordingHeader(
    sample_rate_hz=50.0,
    channels=(Channel("acc_x", "g"), Channel("gyro_x", "rad/s")),
    start_time="2012-01-01T00:00:00Z",
    labelled=True,
    labels=("WALKING",),
)
NAMES = ["s.har.csv", "s.har.csv.gz", "s.har.bin", "s.har.bin.gz"]
GOOD_T = np.arange(12) / 50.0  # 0 .. 0.22
GOOD_V = np.linspace(-1.0, 1.0, 24).reshape(12, 2)
NAN, INF = math.nan, math.inf
F32_MAX = float(np.finfo(np.float32).max)


def _block(t: list[float], bad_value: float | None = None, at: int = 1) -> tuple:
    values = np.zeros((len(t), 2))
    if bad_value is not None:
        values[at, 1] = bad_value
    return np.array(t), values


# blocks written after GOOD_T (last time 0.22): what the reviewer found the writer took (NaN
# and 1e39 read back as "value is not finite"), and the time rule, within and across blocks
BAD_BLOCKS = {
    "NaN value": (_block([0.24, 0.26, 0.28], NAN), "sample 2 of a block of 3: value is not finite"),
    "Inf value": (_block([0.24, 0.26], INF), "sample 2 of a block of 2: value is not finite"),
    "-Inf value": (_block([0.24, 0.26], -INF, 0), "sample 1 of a block of 2: value is not finite"),
    "1e39 value": (
        _block([0.24, 0.26, 0.28], 1e39, 2),
        "sample 3 of a block of 3: value is not finite (NaN, Inf, or beyond float32's range)",
    ),
    "-1e39 value": (_block([0.24, 0.26], -1e39), "sample 2 of a block of 2: value is not finite"),
    "NaN time": (_block([0.24, NAN, 0.28]), "sample 2 of a block of 3: time is not finite"),
    "NaN first time": (_block([NAN, 0.26]), "sample 1 of a block of 2: time is not finite"),
    "Inf time": (_block([0.24, INF]), "sample 2 of a block of 2: time is not finite"),
    "repeated time": (
        _block([0.24, 0.26, 0.26]),
        "sample 3 of a block of 3: time 0.26 does not increase (the sample before it is at "
        "0.26; sample times must be strictly increasing)",
    ),
    "time going back": (_block([0.24, 0.28, 0.26]), "sample 3 of a block of 3: time 0.26 does"),
    "time of the last block": (
        _block([0.22, 0.24]),
        "sample 1 of a block of 2: time 0.22 does not increase (the sample before it is at 0.22;",
    ),
    "time before the last block": (_block([0.1, 0.3]), "sample 1 of a block of 2: time 0.1 does"),
}


def _good(path: Path) -> RecordingWriter:
    w = RecordingWriter(path, HEADER, flush_every=1)
    w.write(GOOD_T, GOOD_V, ["WALKING"] * len(GOOD_T))
    return w


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_block_is_refused_and_the_file_stays_as_it_was(
    tmp_path: Path, name: str, case: str
) -> None:
    (t, values), message = BAD_BLOCKS[case]
    reference = tmp_path / "ref" / name
    reference.parent.mkdir()
    _good(reference).abort()  # the good block alone, left in .part as `record` leaves it
    out = tmp_path / name
    w = _good(out)
    with pytest.raises(BlockRefused) as refused:
        w.write(t, values, ["WALKING"] * len(t))
    assert str(refused.value).startswith(f"{out}: {message}"), str(refused.value)
    assert str(refused.value).endswith("; nothing of the block was written")
    assert (refused.value.part, refused.value.rows) == (w.part, len(GOOD_T))
    w.abort()
    part = out.with_name(name + ".part")
    assert part.read_bytes() == reference.with_name(name + ".part").read_bytes()
    _, chunk = read_recording(part)  # readable: none of the refused block is in it
    np.testing.assert_allclose(chunk.t, GOOD_T)
    np.testing.assert_allclose(chunk.values, GOOD_V, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_the_writer_goes_on_after_a_refused_block(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    with _good(out) as w:
        with pytest.raises(BlockRefused):
            w.write([0.24, 0.26], [[0.0, NAN], [0.0, 0.0]], ["WALKING"] * 2)
        w.write([0.24, 0.26], [[0.5, 0.5], [0.25, 0.25]], ["WALKING"] * 2)
    _, chunk = read_recording(out)
    np.testing.assert_allclose(chunk.t, [*GOOD_T, 0.24, 0.26])
    assert len(chunk) == w.rows == len(GOOD_T) + 2


def test_csv_times_are_checked_as_written_to_the_microsecond(tmp_path: Path) -> None:
    """Times 0.1 us apart are two times in binary but one in CSV (``%.6f``): the reader would
    refuse the second, so the CSV writer does."""
    t = [0.24, 0.2400001]
    with _good(tmp_path / "s.har.bin") as w:
        w.write(t, np.zeros((2, 2)), ["WALKING"] * 2)
    assert len(read_recording(tmp_path / "s.har.bin")[1]) == len(GOOD_T) + 2
    w = _good(tmp_path / "s.har.csv")
    with pytest.raises(BlockRefused, match="sample 2 of a block of 2: time 0.24 does not"):
        w.write(t, np.zeros((2, 2)), ["WALKING"] * 2)
    w.abort()


@pytest.mark.parametrize("name", NAMES)
def test_whatever_the_writer_takes_its_reader_reads(tmp_path: Path, name: str) -> None:
    """Random blocks salted with the edges (float32's largest value and just beyond it, NaN,
    Inf, times that repeat or go back, times a microsecond apart): every accepted block reads
    back, each refused one leaves no trace."""
    rng = np.random.default_rng(7)
    edges = [F32_MAX, -F32_MAX, 3.4028235e38, 3.4028236e38, 1e39, 1e-46, NAN, INF, -INF]
    kept_t: list[float] = []
    kept_v: list[np.ndarray] = []
    refused = 0
    w = RecordingWriter(tmp_path / name, HEADER)
    now = 0.0
    for _ in range(150):
        n = int(rng.integers(1, 6))
        t = now + np.cumsum(rng.choice([0.02, 0.02, 0.02, 1e-7, 0.0, -0.01], size=n))
        v = rng.normal(size=(n, 2))
        if rng.random() < 0.3:
            v[rng.integers(n), rng.integers(2)] = rng.choice(edges)
        if rng.random() < 0.05:
            t[rng.integers(n)] = rng.choice([NAN, INF])
        try:
            w.write(t, v, ["WALKING"] * n)
        except BlockRefused:
            refused += 1
            continue
        kept_t += t.tolist()
        kept_v.append(v)
        now = w.last_t
    w.close()
    _, chunk = read_recording(tmp_path / name)
    assert 10 < refused < 140 and len(chunk) == w.rows == len(kept_t)
    np.testing.assert_allclose(chunk.t, kept_t, atol=1e-6)
    np.testing.assert_allclose(chunk.values, as_stored(np.concatenate(kept_v)), rtol=1e-6)


@pytest.mark.parametrize(
    ("t", "values", "after", "expected"),
    [
        ([0.0, 0.02], [[1.0], [2.0]], -math.inf, None),
        ([0.0, 0.02], [[1.0], [NAN]], -math.inf, (1, "finite")),
        ([NAN, 0.02], [[1.0], [2.0]], -math.inf, (0, "finite")),
        ([0.0, 0.0], [[1.0], [2.0]], -math.inf, (1, "increasing")),
        ([0.0, 0.02], [[1.0], [2.0]], 0.0, (0, "increasing")),
        ([0.0, 0.02], [[1.0], [2.0]], -0.02, None),
        # the values first, across the whole block: a reader names the same row as before
        ([0.0, 0.0, 0.04], [[1.0], [2.0], [INF]], -math.inf, (2, "finite")),
        ([], np.zeros((0, 1)), 5.0, None),
    ],
)
def test_first_bad_sample(t: list, values: list, after: float, expected: tuple | None) -> None:
    bad = first_bad_sample(np.array(t, dtype=float), as_stored(np.array(values)), after)
    assert (None if bad is None else (bad.index, bad.rule)) == expected


def test_as_stored_makes_a_number_beyond_float32_inf_without_a_warning() -> None:
    stored = as_stored(np.array([1e39, -1e39, F32_MAX]))  # warnings are errors in the tests
    assert stored.dtype == np.float32 and stored.tolist() == [INF, -INF, F32_MAX]
