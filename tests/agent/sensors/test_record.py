"""har-agent record: live sessions into the recording format, and back through the agent."""

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.publishers import MemoryPublisher
from agent.recording import RecordingReader, read_recording
from agent.recording_writer import BlockRefused
from agent.sensors.record import record_session
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import default_entry, profile_for, reference_predictions
from tests.agent.sensors.rigs import HALF_LSB_G, SPOIL, make_rig, spoil_sensor_block


def sensor_profile(rig):  # type: ignore[no-untyped-def]
    return dataclasses.replace(profile_for(), sensor=rig.config)


def test_round_trip_and_replay(tmp_path: Path) -> None:
    rig = make_rig("mpu6050")
    out = tmp_path / "walk.har.csv.gz"
    seen: list[tuple[int, float]] = []
    result = record_session(
        sensor_profile(rig),
        out,
        clock=rig.clock,
        stop=rig.stop,
        duration_s=60.0,
        label="WALKING",
        bus_factory=rig.bus.factory,
        progress=lambda n, s: seen.append((n, s)),
    )
    assert out.is_file() and not (tmp_path / "walk.har.csv.gz.part").exists()
    assert rig.bus.closed
    n = result.samples
    assert 2999 <= n <= 3001 and result.duration_s == pytest.approx(60.0, abs=0.05)
    assert seen[-1][0] == n and seen == sorted(seen)
    header, chunk = read_recording(out)
    assert header.sample_rate_hz == 50.0 and header.labelled and header.labels == ("WALKING",)
    assert header.source["sensor"] == "MPU-6050" and header.source["device"] == "demo"
    assert header.meta["recorded_by"] == "har-agent record"
    assert set(chunk.labels or ()) == {"WALKING"}
    assert np.all(np.diff(chunk.t) > 0)
    rows = rig.chip.feed.values[:n]
    assert np.abs(chunk.values[:, :3] - rows[:, :3]).max() <= HALF_LSB_G * 1.01

    # the recorded session replays through the agent exactly like a dataset file
    pub = MemoryPublisher()
    stats = build_agent(
        profile_for(), options=RunOptions(recording=out, speed=0, loop=False), publisher=pub
    ).run()
    preds = [json.loads(p) for t, p, _, _ in pub.messages if t.endswith("/prediction")]
    entry = default_entry()
    expected, _ = reference_predictions(out, entry)
    assert [p["label"] for p in preds] == [entry.labels[i] for i in expected]
    assert stats.windows == len(preds) == (n - 128) // 64 + 1
    assert {p["truth"] for p in preds} == {"WALKING"}


def test_stop_keeps_what_was_recorded(tmp_path: Path) -> None:
    rig = make_rig("mpu6050")
    out = tmp_path / "cut.har.csv"

    def progress(n: int, seconds: float) -> None:
        if seconds > 5.0:
            rig.stop.set()  # Ctrl-C

    result = record_session(
        sensor_profile(rig),
        out,
        clock=rig.clock,
        stop=rig.stop,
        bus_factory=rig.bus.factory,
        progress=progress,
    )
    reader = RecordingReader(out)
    rows = sum(len(c) for c in reader.chunks())
    assert rows == result.samples and 250 <= rows <= 270
    assert not reader.header.labelled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": "a,b"}, "--label must be"),
        ({"label": ""}, "--label must be"),
        ({"duration_s": 0.0}, "--duration must be positive"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    rig = make_rig("mpu6050")
    with pytest.raises(ConfigError, match=match):
        record_session(
            sensor_profile(rig),
            tmp_path / "x.har.csv",
            clock=rig.clock,
            stop=threading.Event(),
            bus_factory=rig.bus.factory,
            **kwargs,
        )
    assert not (tmp_path / "x.har.csv").exists()


def test_duration_ends_by_the_clock_when_the_sensor_delivers_nothing(tmp_path: Path) -> None:
    """--duration counted sample time only: with the chip gone after 5 s it never ended."""
    rig = make_rig("mpu6050")
    out = tmp_path / "short.har.csv"

    def progress(n: int, seconds: float) -> None:
        if seconds > 5.0 and 0x68 in rig.bus.devices:
            rig.bus.detach(0x68)  # unplugged: no more samples

    result = record_session(
        sensor_profile(rig),
        out,
        clock=rig.clock,
        stop=rig.stop,
        duration_s=20.0,
        bus_factory=rig.bus.factory,
        progress=progress,
    )
    assert out.is_file() and 5.0 <= result.duration_s < 6.0
    assert rig.clock.monotonic() < 20.0 + 5.0 + 2.0  # the wall-clock bound, not for ever


def test_settings_the_chip_cannot_make_name_the_profile_file(tmp_path: Path) -> None:
    """The rate is checked when the sensor opens, not when the profile loads: the error still
    names the profile's file, as every other profile error does (docs/profiles.md)."""
    rig = make_rig("mpu6050", rate_hz=30.0)
    prof = dataclasses.replace(sensor_profile(rig), file="/etc/har-agent/profile.toml")
    with pytest.raises(ConfigError) as exc:
        record_session(
            prof,
            tmp_path / "x.har.csv",
            clock=rig.clock,
            stop=threading.Event(),
            bus_factory=rig.bus.factory,
        )
    assert str(exc.value).startswith(
        "/etc/har-agent/profile.toml: sensor.rate_hz = 30 is not a rate the MPU-6050 makes"
    )


@pytest.mark.parametrize("name", ["s.har.csv.gz", "s.har.bin"])
@pytest.mark.parametrize("how", list(SPOIL))
def test_a_block_the_recording_cannot_hold_stops_it_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, name: str
) -> None:
    """A sensor block with a NaN, or times that go back, used to be written: the file was then
    refused by its own reader. The writer refuses the block before writing any of it; the
    session stops there and its ``.part`` file holds every sample before it, readable."""
    rig = make_rig("mpu6050")
    spoil_sensor_block(monkeypatch, how, at=3)
    out = tmp_path / name
    with pytest.raises(BlockRefused) as refused:
        record_session(  # (with a duration: a writer that took the block would not hang)
            sensor_profile(rig),
            out,
            clock=rig.clock,
            stop=rig.stop,
            duration_s=10.0,
            bus_factory=rig.bus.factory,
        )
    what = "value is not finite" if how == "a NaN value" else "does not increase"
    assert what in str(refused.value)
    assert rig.bus.closed and not out.exists()
    _, chunk = read_recording(refused.value.part)
    assert len(chunk) == refused.value.rows == 30  # the three blocks of 10 before it
    rows = rig.chip.feed.values[:30]
    assert np.abs(chunk.values[:, :3] - rows[:, :3]).max() <= HALF_LSB_G * 1.01
