"""End to end: an emulated MPU-6050 fed from a real recording at its ODR -> the agent -> a real
mosquitto -> a real subscriber; the predictions agree with replaying the same recording."""

import dataclasses
import json
import threading

import pytest

from agent.clock import FakeClock
from agent.manifest import load_manifest
from agent.profile_tables import SensorConfig
from agent.testing.feeds import RecordingFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.mpu6050_model import Mpu6050Model
from agent.wiring import build_agent
from tests.agent.helpers import (
    MODELS,
    RECORDINGS,
    Subscriber,
    profile_for,
    reference_predictions,
)
from tests.conftest import Broker

pytestmark = pytest.mark.integration


# A member at the sensor's own 50 Hz: its windows are cut by sample count, so the sensor path and
# the replay feed it the same samples (up to the chip's int16 counts). A resampled member would
# not match window for window: the sensor's sample times are disciplined to the host clock
# (agent/sensors/timebase.py), so they are not spaced exactly 20 ms apart as the recording's are,
# and the resampler interpolates at the times it is given.
MEMBER = "wc-w1.00-r128"


def test_emulated_sensor_to_broker_matches_replay(broker: Broker) -> None:
    recording = RECORDINGS[0]
    stop = threading.Event()
    clock = FakeClock()
    feed = RecordingFeed.from_file(recording, loop=False, on_end=stop.set)
    bus = EmulatedBus(clock, {0x68: Mpu6050Model(feed)})
    prof = profile_for(broker.port)
    prof = dataclasses.replace(
        prof,
        source=dataclasses.replace(prof.source, kind="sensor"),
        sensor=SensorConfig(chip="mpu6050", bus=1, address=0x68, rate_hz=50.0),
        model=dataclasses.replace(prof.model, id=MEMBER),
    )
    sub = Subscriber(broker.port)
    try:
        agent = build_agent(prof, clock=clock, stop=stop, bus_factory=bus.factory)
        stats = agent.run()
        entry = load_manifest(MODELS).get(MEMBER)
        assert entry.input.rate_hz == 50.0
        expected, _ = reference_predictions(recording, entry)
        got = [json.loads(p) for p in sub.wait_for("/prediction", len(expected))]
        assert len(got) == len(expected) == stats.windows > 200
        assert [p["seq"] for p in got] == list(range(len(got)))
        assert [p["label"] for p in got] == [entry.labels[i] for i in expected]
        health = [json.loads(p) for p in sub.wait_for("/health", 1)]
        assert health and health[-1]["state"] == "ok"
        assert health[-1]["sensor"] == "MPU-6050 on I2C bus 1 at 0x68"
    finally:
        sub.close()
    assert bus.closed and feed.ended
    late = Subscriber(broker.port, "har/demo/health")  # retained: a late subscriber learns it
    try:
        (msg,) = late.wait_for("/health", 1)
        assert json.loads(msg)["state"] == "ok" and late.messages[0][2] is True
    finally:
        late.close()
