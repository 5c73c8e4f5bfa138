"""The assembled agent on a live (emulated) sensor, publishing into memory."""

import dataclasses
import errno
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.clock import FakeClock
from agent.profile_tables import SensorConfig
from agent.publishers import MemoryPublisher
from agent.recording import read_recording
from agent.recording_writer import RecordingWriter
from agent.testing.feeds import RecordingFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.lsm6dsox_model import Lsm6dsoxModel
from agent.testing.mpu6050_model import Mpu6050Model
from agent.wiring import build_agent
from tests.agent.helpers import default_entry, profile_for, reference_predictions
from tests.agent.sensors.rigs import RECORDING


def first_minutes(tmp: Path, seconds: float) -> tuple[Path, np.ndarray]:
    """The first ``seconds`` of the bundled recording, as a file and as values."""
    header, chunk = read_recording(RECORDING)
    n = int(seconds * header.sample_rate_hz)
    out = tmp / "part.har.csv"
    with RecordingWriter(out, header) as w:
        w.write(chunk.t[:n], chunk.values[:n], (chunk.labels or ())[:n])
    return out, chunk.values[:n]


def sensor_profile(**sensor: object):  # type: ignore[no-untyped-def]
    prof = profile_for()
    return dataclasses.replace(
        prof,
        source=dataclasses.replace(prof.source, kind="sensor"),
        sensor=dataclasses.replace(SensorConfig(), **sensor),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("rate_hz", [52.0, 104.0])
def test_lsm6dsox_is_resampled_and_agrees_with_replay(tmp_path: Path, rate_hz: float) -> None:
    part, values = first_minutes(tmp_path, 120)
    stop = threading.Event()
    clock = FakeClock()
    chip = Lsm6dsoxModel(RecordingFeed(values, 50.0, loop=False, on_end=stop.set))
    bus = EmulatedBus(clock, {0x6A: chip})
    pub = MemoryPublisher()
    prof = sensor_profile(chip="lsm6dsox", address=0x6A, rate_hz=rate_hz)
    agent = build_agent(prof, publisher=pub, clock=clock, stop=stop, bus_factory=bus.factory)
    assert agent.pipeline.resampler is not None  # 52 or 104 Hz in, the model's 50 Hz out
    agent.run()
    entry = default_entry()
    expected, _ = reference_predictions(part, entry)
    got = [json.loads(p)["label"] for t, p, _, _ in pub.messages if t.endswith("/prediction")]
    want = [entry.labels[i] for i in expected]
    assert abs(len(got) - len(want)) <= 1
    agree = np.mean([a == b for a, b in zip(got, want, strict=False)])
    assert agree >= 0.9, agree  # measured: see docs/sensors.md


def test_health_is_published_retained_when_it_changes(tmp_path: Path) -> None:
    _, values = first_minutes(tmp_path, 40)
    stop = threading.Event()
    clock = FakeClock()
    chip = Mpu6050Model(RecordingFeed(values, 50.0, loop=False, on_end=stop.set))
    bus = EmulatedBus(clock, {0x68: chip})
    bus.fail(15, errno.EIO, after=400)  # a long burst some seconds in
    pub = MemoryPublisher()
    agent = build_agent(
        sensor_profile(), publisher=pub, clock=clock, stop=stop, bus_factory=bus.factory
    )
    stats = agent.run()
    health = [(json.loads(p), retain) for t, p, _, retain in pub.messages if t == "har/demo/health"]
    assert [h["state"] for h, _ in health] == ["ok", "degraded", "ok"]
    assert all(retain for _, retain in health)
    assert health[1][0]["faults"][0]["fault"] == "i2c_error"
    assert health[2][0]["counters"]["reinits"] == 1
    assert stats.windows > 5 and agent.pipeline.windower.gaps == 1


def test_a_missing_chip_fails_before_any_model_session_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A board without its sensor (systemd restarts the service every few seconds) must not
    load the bank's sessions each time only to fail on the bus."""
    import agent.wiring
    from agent.errors import SensorNotFoundError

    def loaded(*_a: object, **_k: object) -> object:
        raise AssertionError("a model session was loaded before the sensor was opened")

    monkeypatch.setattr(agent.wiring, "load_engine", loaded)
    monkeypatch.setattr(agent.wiring, "build_adaptive", loaded)
    bus = EmulatedBus(FakeClock(), {})  # nothing answers at 0x68
    for mode in ("static", "adaptive"):
        prof = sensor_profile()
        prof = dataclasses.replace(prof, policy=dataclasses.replace(prof.policy, mode=mode))
        with pytest.raises(SensorNotFoundError):
            build_agent(prof, publisher=MemoryPublisher(), bus_factory=bus.factory)


def _recorded_buses(clock: FakeClock) -> tuple[list[EmulatedBus], Any]:
    """An MPU-6050 on an emulated bus, and the factory that opens it, keeping every bus it
    opened (to check they were closed)."""
    buses: list[EmulatedBus] = []
    bus = EmulatedBus(clock, {0x68: Mpu6050Model(RecordingFeed(np.zeros((10, 6)), 50.0))})

    def factory(n: int) -> EmulatedBus:
        buses.append(bus.factory(n))
        return buses[-1]

    return buses, factory


def test_a_model_that_fails_to_load_closes_the_open_sensor(tmp_path: Path) -> None:
    from agent.errors import ConfigError

    clock = FakeClock()
    buses, factory = _recorded_buses(clock)

    prof = sensor_profile()
    prof = dataclasses.replace(prof, model=dataclasses.replace(prof.model, id="no-such-member"))
    prof = dataclasses.replace(prof, policy=dataclasses.replace(prof.policy, mode="static"))
    with pytest.raises(ConfigError, match="no-such-member"):
        build_agent(prof, publisher=MemoryPublisher(), clock=clock, bus_factory=factory)
    assert buses and all(b.closed for b in buses)


def test_a_publisher_profile_error_closes_the_sensor_before_any_session_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher's own profile errors (here a missing TLS CA file) come after the sensor
    opened: they close it, and still come before the sessions load."""
    import agent.wiring
    from agent.errors import ConfigError

    def loaded(*_a: object, **_k: object) -> object:
        raise AssertionError("a model session was loaded before the publisher was made")

    monkeypatch.setattr(agent.wiring, "load_engine", loaded)
    monkeypatch.setattr(agent.wiring, "build_adaptive", loaded)
    clock = FakeClock()
    buses, factory = _recorded_buses(clock)

    prof = sensor_profile()
    mqtt = dataclasses.replace(prof.mqtt, tls=True, ca_file=str(tmp_path / "gone.pem"))
    prof = dataclasses.replace(prof, mqtt=mqtt)
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file = .*gone\.pem: no such file"):
        build_agent(prof, clock=clock, bus_factory=factory)
    assert buses and all(b.closed for b in buses)


def test_a_run_stopped_before_it_starts_closes_the_sensor() -> None:
    """Ctrl-C or SIGTERM while the agent was still starting: the pipeline never asks the
    source for a chunk, so the sensor's own ``finally`` (in its generator) never runs; the
    agent closes the bus and the claim on the chip itself."""
    clock = FakeClock()
    buses, factory = _recorded_buses(clock)
    stop = threading.Event()
    pub = MemoryPublisher()
    agent = build_agent(
        sensor_profile(), publisher=pub, clock=clock, stop=stop, bus_factory=factory
    )
    stop.set()
    stats = agent.run()
    assert stats.windows == 0 and stats.samples == 0
    assert buses and all(b.closed for b in buses)
    assert pub.stopped


def test_a_stop_while_the_publisher_starts_ends_the_run_there() -> None:
    """Ctrl-C or SIGTERM while the publisher waits for the broker's first answer (its start
    returns, unconnected, when the stop event is set): nothing is published, no sample read,
    and the sensor is closed."""
    clock = FakeClock()
    buses, factory = _recorded_buses(clock)
    stop = threading.Event()

    class WaitingForTheBroker(MemoryPublisher):
        def start(self) -> None:
            super().start()
            stop.set()  # the stop came while the start waited

    pub = WaitingForTheBroker()
    agent = build_agent(
        sensor_profile(), publisher=pub, clock=clock, stop=stop, bus_factory=factory
    )
    stats = agent.run()
    assert stats.windows == 0 and stats.samples == 0
    assert pub.messages == []  # (not even the metrics of a run that never began)
    assert pub.stopped and buses and all(b.closed for b in buses)


def test_a_publisher_that_fails_to_start_closes_the_sensor() -> None:
    """A start that fails (the broker refused, a TLS error) ends the run with its error, and
    still closes the sensor and stops the publisher."""
    from agent.errors import PublishError

    class Refused(MemoryPublisher):
        def start(self) -> None:
            raise PublishError("the MQTT broker at 127.0.0.1:1 refused the connection")

    clock = FakeClock()
    buses, factory = _recorded_buses(clock)
    pub = Refused()
    agent = build_agent(
        sensor_profile(), publisher=pub, clock=clock, stop=threading.Event(), bus_factory=factory
    )
    with pytest.raises(PublishError, match="refused the connection"):
        agent.run()
    assert buses and all(b.closed for b in buses)
    assert pub.stopped


def test_every_cleanup_step_runs_when_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing the sensor fails (an I/O error on the bus): that error ends the run, and the
    publisher still says goodbye."""
    clock = FakeClock()
    buses, factory = _recorded_buses(clock)
    stop = threading.Event()
    pub = MemoryPublisher()
    agent = build_agent(
        sensor_profile(), publisher=pub, clock=clock, stop=stop, bus_factory=factory
    )
    source = agent.pipeline.source
    close = source.close

    def failing_close() -> None:
        close()
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(source, "close", failing_close)
    stop.set()
    with pytest.raises(OSError, match="Input/output error"):
        agent.run()
    assert buses and all(b.closed for b in buses)
    assert pub.stopped
