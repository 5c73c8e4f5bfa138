"""The assembled agent with real models and recordings, publishing into memory."""

import json
import subprocess
import sys
import threading
from dataclasses import replace as dataclasses_replace
from pathlib import Path

import numpy as np
import pytest

from agent.clock import FakeClock
from agent.errors import ConfigError, DataError, ModelError
from agent.publishers import Command, MemoryPublisher
from agent.recording import read_recording
from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter
from agent.run_stats import RunStats
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import (
    PAYLOAD_FIELDS,
    RECORDINGS,
    default_entry,
    profile_for,
    reference_predictions,
)


def test_bundled_recordings_exist() -> None:
    assert RECORDINGS, "recordings/ must ship at least one test-subject recording"


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.name)
def test_replay_matches_direct_inference(recording: Path) -> None:
    entry = default_entry()
    pub = MemoryPublisher()
    clock = FakeClock()
    agent = build_agent(
        profile_for(),
        options=RunOptions(recording=recording, speed=1.0, loop=False),
        publisher=pub,
        clock=clock,
    )
    stats = agent.run()
    preds = [json.loads(p) for t, p, _, _ in pub.messages if t.endswith("/prediction")]
    expected, truths = reference_predictions(recording, entry)
    assert len(preds) == len(expected) == stats.windows > 50
    assert [p["seq"] for p in preds] == list(range(len(preds)))
    assert [p["label"] for p in preds] == [entry.labels[i] for i in expected]
    assert [p.get("truth") for p in preds] == truths
    # paced replay on a fake clock: it took as long as the recording lasts
    header, chunk = read_recording(recording)
    assert clock.monotonic() == pytest.approx(chunk.t[-1] - chunk.t[0], abs=0.5)
    # the model is good on this test subject
    assert stats.accuracy is not None and stats.accuracy > 0.8


def test_payload_fields_and_smoothing() -> None:
    pub = MemoryPublisher()
    agent = build_agent(
        profile_for(),
        options=RunOptions(recording=RECORDINGS[0], speed=0.0, loop=False),
        publisher=pub,
    )
    agent.run()
    p = json.loads(next(m[1] for m in pub.messages if m[0].endswith("/prediction")))
    assert set(p) >= PAYLOAD_FIELDS
    assert p["device"] == "demo" and p["model"] == default_entry().id
    assert abs(sum(p["probs"].values()) - 1.0) < 1e-3
    assert p["smoothed"]["method"] == "mean" and p["smoothed"]["window"] == 3
    assert p["latency_ms"] > 0


def test_resampled_source_gives_same_labels_mostly(tmp_path: Path) -> None:
    """A 100 Hz recording of the same motion is resampled to the model's 50 Hz, not fed raw."""
    header, chunk = read_recording(RECORDINGS[0])
    n = len(chunk) - 1
    t100 = np.arange(2 * n) / 100.0
    v100 = np.stack(
        [
            np.interp(t100, chunk.t - chunk.t[0], chunk.values[:, c])
            for c in range(chunk.values.shape[1])
        ],
        axis=1,
    )
    fast = tmp_path / "r100.har.csv.gz"
    hdr = RecordingHeader(100.0, header.channels, header.start_time)
    with RecordingWriter(fast, hdr) as w:
        w.write(t100, v100)
    pub50, pub100 = MemoryPublisher(), MemoryPublisher()
    build_agent(
        profile_for(),
        options=RunOptions(recording=RECORDINGS[0], speed=0, loop=False),
        publisher=pub50,
    ).run()
    build_agent(
        profile_for(), options=RunOptions(recording=fast, speed=0, loop=False), publisher=pub100
    ).run()
    a = [json.loads(m)["label"] for m in pub50.payloads("/prediction")]
    b = [json.loads(m)["label"] for m in pub100.payloads("/prediction")]
    assert abs(len(a) - len(b)) <= 2
    agree = np.mean([x == y for x, y in zip(a, b, strict=False)])
    assert agree > 0.9


def test_missing_channel_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acc-only.har.csv"
    hdr = RecordingHeader(50.0, (Channel("acc_x", "g"),), "2012-01-01T00:00:00Z")
    with RecordingWriter(path, hdr) as w:
        w.write(np.arange(10) / 50, np.zeros((10, 1)))
    with pytest.raises(DataError, match="no channel 'acc_y'"):
        build_agent(profile_for(), options=RunOptions(recording=path), publisher=MemoryPublisher())


def test_wrong_unit_is_refused(tmp_path: Path) -> None:
    header, _ = read_recording(RECORDINGS[0])
    chans = tuple(
        Channel(c.name, "m/s^2" if c.name == "acc_x" else c.unit) for c in header.channels
    )
    path = tmp_path / "units.har.csv"
    with RecordingWriter(path, RecordingHeader(50.0, chans, header.start_time)) as w:
        w.write(np.arange(10) / 50, np.zeros((10, len(chans))))
    with pytest.raises(DataError, match="'m/s\\^2', the model needs 'g'"):
        build_agent(profile_for(), options=RunOptions(recording=path), publisher=MemoryPublisher())


def test_unknown_model_and_tampered_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--model: unknown model 'nope'"):
        build_agent(profile_for(), options=RunOptions(model_id="nope"), publisher=MemoryPublisher())
    import shutil

    models = tmp_path / "models"
    shutil.copytree(Path(__file__).resolve().parents[2] / "models", models)
    entry = default_entry()
    with open(models / entry.file, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    import dataclasses

    prof = profile_for()
    prof = dataclasses.replace(prof, model=dataclasses.replace(prof.model, dir=str(models)))
    with pytest.raises(ModelError, match="sha256"):
        build_agent(prof, publisher=MemoryPublisher())


def _looping_replay(stop_after: int) -> tuple[RunStats, MemoryPublisher]:
    """A looping replay as fast as it goes, stopped (the stop event) after ``stop_after``
    predictions."""
    stop = threading.Event()
    pub = MemoryPublisher()
    seen: list[object] = []

    def observer(p: object) -> None:
        seen.append(p)
        if len(seen) == stop_after:
            stop.set()

    agent = build_agent(
        profile_for(),
        options=RunOptions(speed=0, loop=True),
        publisher=pub,
        stop=stop,
        observer=observer,
    )
    return agent.run(), pub


def test_stop_event_ends_a_looping_replay() -> None:
    stats, pub = _looping_replay(5)
    assert 5 <= stats.windows < 20
    assert pub.stopped


def test_commands_are_answered() -> None:
    pub = MemoryPublisher()
    pub.commands.append(Command("har/demo/cmd", b'{"cmd": "status", "id": 1}'))
    pub.commands.append(Command("har/demo/cmd", b'{"cmd": "format-disk"}'))
    pub.commands.append(Command("har/demo/cmd", b'{"cmd": "metrics"}'))
    pub.commands.append(Command("har/demo/cmd", b'{"cmd": "force", "model": "wc-w0.50-r064"}'))
    build_agent(profile_for(), options=RunOptions(speed=0, loop=False), publisher=pub).run()
    replies = [json.loads(p) for t, p, _, _ in pub.messages if t == "har/demo/cmd/response"]
    assert replies[0]["ok"] is True and replies[0]["id"] == 1 and "windows" in replies[0]["status"]
    assert replies[1]["ok"] is False and "unknown command" in replies[1]["error"]
    m = replies[2]["metrics"]
    assert replies[2]["ok"] is True and "windows" in m and "resources" in m and "energy" in m
    assert m["energy"]["kind"] in ("measured", "estimated")
    # a static agent has no policy to force
    assert replies[3]["ok"] is False and "adaptive runtime" in replies[3]["error"]


def test_retained_metrics_start_and_end_with_the_run() -> None:
    """A snapshot at start and one when the run ends, so the retained metrics after a replay
    carry its figures (the 60 s tick alone left 'windows': 0 there)."""
    pub = MemoryPublisher()
    stats = build_agent(profile_for(), options=RunOptions(speed=0, loop=False), publisher=pub).run()
    snaps = [json.loads(p) for t, p, _, retain in pub.messages if t == "har/demo/metrics"]
    assert len(snaps) == 2 and all(r for t, _, _, r in pub.messages if t == "har/demo/metrics")
    assert snaps[0]["windows"] == 0 and snaps[-1]["windows"] == stats.windows > 200


def test_non_finite_windows_are_rejected_and_counted() -> None:
    """A source that delivers NaN (a broken sensor conversion, say) never reaches ONNX Runtime."""
    from agent.recording import Chunk

    pub = MemoryPublisher()
    opts = RunOptions(speed=0, loop=False, model_id="cnn1d-base")  # 128 samples at 50 Hz
    agent = build_agent(profile_for(), options=opts, publisher=pub)
    header, chunk = read_recording(RECORDINGS[0])
    values = chunk.values[:640].copy()
    values[100, 2] = np.nan  # poisons windows 0 and 1 (128 samples, hop 64)
    assert agent.pipeline.process(Chunk(chunk.t[:640], values, None)) == 9
    assert len([m for m in pub.messages if m[0].endswith("/prediction")]) == 9 - 2
    assert agent.pipeline.stats.rejected == 2
    assert agent.pipeline.status()["rejected"] == 2


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning")
def test_a_sample_too_large_to_normalise_is_rejected_not_published_as_nan(
    tmp_path: Path,
) -> None:
    """A finite sample of 3e38 (a valid float32 the reader accepts) overflows the normalisation:
    the model gives NaN. Those windows are rejected and counted; they were published with all
    probabilities 0 and, with mean smoothing, left the smoothed confidence at 0 for the rest of
    the run."""
    header, chunk = read_recording(RECORDINGS[0])
    values = chunk.values[:1280].copy()
    values[100, 0] = 3e38  # inside windows 0 and 1 (128 samples, hop 64)
    path = tmp_path / "spike.har.csv"
    with RecordingWriter(path, header) as w:
        w.write(chunk.t[:1280], values, chunk.labels[:1280] if chunk.labels is not None else None)
    pub = MemoryPublisher()
    opts = RunOptions(recording=path, speed=0, loop=False, model_id="cnn1d-base")
    agent = build_agent(profile_for(), options=opts, publisher=pub)
    stats = agent.run()
    preds = [json.loads(p) for p in pub.payloads("/prediction")]
    assert stats.rejected == 2 and stats.saturated == 0 and len(preds) == 19 - 2
    assert [p["window"]["index"] for p in preds] == list(range(2, 19))
    for p in preds:
        assert p["confidence"] > 0 and p["smoothed"]["confidence"] > 0, p
    # the command: one warning line of ours, no numpy RuntimeWarning (pytest's filter above
    # stands in for the module's own, which pytest overrides)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "replay", str(path), "--fast", "--no-mqtt", "-m",
         "cnn1d-base", "--device", "test-spike"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "window 0 gives NaN or Inf model outputs (samples out of range): not published" in (
        done.stderr
    )
    assert "RuntimeWarning" not in done.stderr and done.stdout.count("/prediction ") == 17


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning")
def test_rejected_windows_have_no_timing_row_and_each_reason_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--timing: a rejected window is neither a row of its own (the per-member table vanished
    when any was rejected) nor its session.run time overhead; a NaN sample then a NaN output in
    one run of rejected windows are two warnings (the second was not logged)."""
    from agent.timing import overhead_of_each_window

    header, chunk = read_recording(RECORDINGS[0])
    values = chunk.values[:1280].copy()
    values[60, 1] = np.nan  # window 0 only (samples 0-127)
    values[130, 0] = 3e38  # windows 1 and 2 (samples 64-191, 128-255)
    path = tmp_path / "bad.har.bin"
    labels = chunk.labels[:1280] if chunk.labels is not None else None
    with RecordingWriter(path, header) as w:
        w.write(chunk.t[:1280], np.nan_to_num(values, nan=0.0), labels)
    opts = RunOptions(recording=path, speed=0, loop=False, model_id="cnn1d-base")
    opts = dataclasses_replace(opts, record_timings=True)
    agent = build_agent(profile_for(), options=opts, publisher=MemoryPublisher())
    # the reader refuses NaN: feed the NaN sample through the pipeline itself
    from agent.recording import Chunk

    agent.pipeline.record_timings = True
    with caplog.at_level("WARNING", logger="agent.pipeline"):
        n = agent.pipeline.process(Chunk(chunk.t[:1280], values, None))
    assert n == 19 and agent.pipeline.stats.rejected == 3
    said = [r.getMessage() for r in caplog.records if "window" in r.getMessage()]
    assert len(said) == 2 and "NaN or Inf samples" in said[0] and "model outputs" in said[1]
    timed = build_agent(profile_for(), options=opts, publisher=MemoryPublisher())
    stats = timed.run()  # the file: windows 1 and 2 rejected, the rest timed
    assert stats.rejected == 2 and stats.windows == 17
    assert sum(stats.windows_per_chunk) == len(stats.infer_s) == len(stats.models)
    assert len(overhead_of_each_window(stats)) == len(stats.infer_s)


def test_saturated_windows_are_rejected_and_counted(tmp_path: Path) -> None:
    """A sensor at its full scale clips: those windows are not classified, and the count says
    so; a recording without full-scale figures is never checked."""
    import dataclasses

    from agent.recording_header import Channel, RecordingHeader
    from agent.recording_writer import RecordingWriter

    header, chunk = read_recording(RECORDINGS[0])
    chans = tuple(
        dataclasses.replace(c, full_scale=2.0 if c.unit == "g" else 8.7) for c in header.channels
    )
    values = chunk.values[:640].copy()
    values[300, 0] = 2.0  # clipped at +2 g: inside windows 3 and 4 (hop 64, length 128)
    values[301, 4] = -8.7
    path = tmp_path / "clipped.har.csv"
    with RecordingWriter(path, RecordingHeader(50.0, chans, header.start_time)) as w:
        w.write(chunk.t[:640], values)
    again, _ = read_recording(path)
    assert again.channels[0] == Channel("acc_x", "g", 2.0)  # the format keeps the full scale
    pub = MemoryPublisher()
    opts = RunOptions(recording=path, speed=0, loop=False, model_id="cnn1d-base")
    agent = build_agent(profile_for(), options=opts, publisher=pub)
    stats = agent.run()
    preds = [json.loads(p) for p in pub.payloads("/prediction")]
    assert stats.rejected == stats.saturated == 2 and len(preds) == 9 - 2
    assert [p["window"]["index"] for p in preds] == [0, 1, 2, 5, 6, 7, 8]
    # the same samples from a source that declares no full scale: nothing is rejected
    plain = tmp_path / "plain.har.csv"
    with RecordingWriter(plain, RecordingHeader(50.0, header.channels, header.start_time)) as w:
        w.write(chunk.t[:640], values)
    opts = RunOptions(recording=plain, speed=0, loop=False, model_id="cnn1d-base")
    stats = build_agent(profile_for(), options=opts, publisher=MemoryPublisher()).run()
    assert stats.rejected == 0 and stats.windows == 9


def test_a_looping_replay_goes_on_past_the_first_pass() -> None:
    """Two passes of a bundled recording: window times keep increasing across the wrap, with
    the loop's gap between passes (so no window spans it), and the second pass classifies."""
    from datetime import datetime

    from agent.sources import LOOP_GAP_S

    _, pub = _looping_replay(300)  # one pass of this recording is 257 windows
    preds = [json.loads(p) for p in pub.payloads("/prediction")]
    assert len(preds) >= 300
    starts = [datetime.fromisoformat(p["window"]["start"]).timestamp() for p in preds]
    steps = np.diff(starts)
    assert np.all(steps > 0)
    assert np.sum(steps >= LOOP_GAP_S) == 1  # exactly one wrap, at the loop's gap
    assert [p["seq"] for p in preds] == list(range(len(preds)))


def test_labels_outside_the_models_classes_are_not_scored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bundled recording carries HAPT's transitions (STAND_TO_SIT, ...), which no bank
    member predicts: their windows are counted apart, said once a run, and the accuracy
    is over the model's own classes (not lowered by windows it could never get right)."""
    entry = default_entry()
    agent = build_agent(
        profile_for(),
        options=RunOptions(recording=RECORDINGS[0], speed=0.0, loop=False, record_timings=True),
        publisher=MemoryPublisher(),
        clock=FakeClock(),
    )
    with caplog.at_level("INFO", logger="agent.pipeline"):
        stats = agent.run()
    expected, truths = reference_predictions(RECORDINGS[0], entry)
    scored = [(p, t) for p, t in zip(expected, truths, strict=True) if t in entry.labels]
    outside = [t for t in truths if t is not None and t not in entry.labels]
    assert outside, "the bundled recording should hold a window of a transition"
    assert stats.labelled == len(scored)
    assert stats.correct == sum(entry.labels[p] == t for p, t in scored)
    assert sum(stats.unscored.values()) == len(outside)
    assert set(stats.unscored) == set(outside)
    said = [r.getMessage() for r in caplog.records if "are not scored" in r.getMessage()]
    assert said == [
        f"windows labelled {outside[0]!r} (or any other label outside {entry.id}'s classes) "
        "are not scored"
    ]
