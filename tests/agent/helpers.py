"""Test helpers shared by the agent tests: the repo's model bank and recordings, a direct
(reference) classification, and a real paho subscriber that collects messages."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.floats import first_argmax
from agent.inference import OrtEngine, SessionSettings, softmax_values, to_model_input
from agent.manifest import ModelEntry, load_manifest
from agent.profile import Profile, load_profile
from agent.recording import read_recording
from agent.resampling import Resampler
from agent.windowing import sliding_windows, uniform_label

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
RECORDINGS = sorted((ROOT / "recordings").glob("*.har.csv.gz"))
DEFAULT_PROFILE = ROOT / "profiles" / "default.toml"
PAYLOAD_FIELDS = {
    "schema",
    "device",
    "boot",
    "seq",
    "window",
    "label",
    "confidence",
    "probs",
    "smoothed",
    "model",
    "latency_ms",
    "ts",
}
"""Fields every har.prediction/1 message carries."""


def default_entry() -> ModelEntry:
    from agent.wiring import pick_model

    return pick_model(load_manifest(MODELS), "")


def reference_predictions(recording: Path, entry: ModelEntry) -> tuple[list[int], list[str | None]]:
    """Classify every window of a recording directly with ONNX Runtime (no agent pipeline)."""
    header, chunk = read_recording(recording)
    cols = [header.channel_names.index(c) for c in entry.input.channels]
    spec = entry.input
    if abs(header.sample_rate_hz - spec.rate_hz) > 1e-9:
        # a lower-resolution member: the agent's own resampling rule, on the whole stream
        chunk = Resampler(header.sample_rate_hz, spec.rate_hz).push(chunk)
    values = chunk.values[:, cols]
    wins = sliding_windows(values, spec.length, spec.hop)
    engine = OrtEngine(MODELS / entry.file, entry, SessionSettings())
    preds = []
    for w in wins:
        logits = engine.run(to_model_input(entry.normalization(w), spec.layout))
        preds.append(first_argmax(softmax_values(logits.reshape(-1).tolist())))  # as classify
    labels = chunk.labels or ()
    truths = [
        uniform_label(labels[i * spec.hop : i * spec.hop + spec.length]) if labels else None
        for i in range(len(wins))
    ]
    return preds, truths


def profile_for(
    broker_port: int | None = None, outbox: Path | None = None, **source: Any
) -> Profile:
    """The default profile aimed at a test broker; the disk outbox only when given a path."""
    prof = load_profile(DEFAULT_PROFILE)
    prof = dataclasses.replace(
        prof,
        outbox=dataclasses.replace(
            prof.outbox, enabled=outbox is not None, path=str(outbox) if outbox else ""
        ),
    )
    if broker_port is not None:
        prof = dataclasses.replace(
            prof, mqtt=dataclasses.replace(prof.mqtt, host="127.0.0.1", port=broker_port)
        )
    if source:
        prof = dataclasses.replace(prof, source=dataclasses.replace(prof.source, **source))
    return prof


class Subscriber:
    """A real MQTT client that records (topic, payload, retain) for ``topic``."""

    def __init__(self, port: int, topic: str = "har/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("subscriber did not get its SUBACK")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def predictions(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on("/prediction")]

    def wait_for(self, suffix: str, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(suffix)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.on(suffix)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def error_line(result: Any, exit_code: int = 1) -> str:
    """The one ``har-agent: error:`` line of a CliRunner result, asserting the exit status and
    that nothing escaped as an exception: CliRunner catches an uncaught exception into
    ``result.exception`` and prints no traceback, so checking the text alone cannot see one."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"uncaught {exc!r}"
    assert result.exit_code == exit_code, result.output
    err = result.stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("har-agent: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return str(lines[0])


def one_line_error(result: Any, fragment: str) -> None:
    """:func:`error_line`, and the line names ``fragment``."""
    line = error_line(result)
    assert fragment in line, line


needs_no_i2c_bus_1 = pytest.mark.skipif(
    Path("/dev/i2c-1").exists(),
    reason="this machine has an I2C bus 1: the real smbus2 path would reach a real bus",
)
"""For tests of the real sensor path's refusal on a machine without I2C (on a Pi with I2C
enabled, they would open the real bus, or start a real ``run``)."""
