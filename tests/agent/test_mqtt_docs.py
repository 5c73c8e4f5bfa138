"""docs/mqtt.md shows what the default profile really publishes: its prediction example is a
message of the bundled recording's replay, its status answer has the real fields."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agent.profile import with_device
from agent.publishers import Command, MemoryPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import RECORDINGS, ROOT, profile_for

DOCS = ROOT / "docs" / "mqtt.md"
VARIABLE = {"device", "boot", "ts", "latency_ms"}
"""What differs from run to run, or is the docs' own choice."""


def _replay(device: str, commands: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(topic, body) of every message the default profile publishes replaying the bundled
    recording the profile names (``har-agent replay ... --no-mqtt --fast``), answering
    ``commands`` first."""
    pub = MemoryPublisher()
    pub.commands += [Command(f"har/{device}/cmd", c) for c in commands]
    prof = with_device(profile_for(), device)
    assert prof.source.path.endswith(RECORDINGS[0].name)
    opts = RunOptions(recording=RECORDINGS[0], speed=0.0, loop=False, monitor=False)
    build_agent(prof, options=opts, publisher=pub).run()
    return [(t, json.loads(p)) for t, p, _, _ in pub.messages if p[:1] == b"{"]


@pytest.fixture(scope="module")
def published() -> list[tuple[str, dict[str, Any]]]:
    return _replay("docs-check", [b'{"cmd": "status", "id": "r1"}'])


def test_the_prediction_example_is_a_real_message(
    published: list[tuple[str, dict[str, Any]]],
) -> None:
    text = DOCS.read_text()
    block = re.search(r'```json\n(\{\n  "schema": "har\.prediction/1".*?)```', text, re.S)
    assert block, "docs/mqtt.md shows a prediction"
    shown = json.loads(block.group(1))
    real = next(b for t, b in published if t.endswith("/prediction") and b["seq"] == shown["seq"])
    assert set(shown) == set(real)
    probs = shown.pop("probs")
    assert list(probs) == list(real["probs"])  # the model's label order
    assert probs == pytest.approx(real.pop("probs"), abs=2e-3)  # (rounding, across machines)
    shown_smoothed, real_smoothed = shown.pop("smoothed"), real.pop("smoothed")
    assert shown_smoothed.pop("confidence") == pytest.approx(
        real_smoothed.pop("confidence"), abs=2e-3
    )
    assert shown_smoothed == real_smoothed
    assert shown.pop("confidence") == pytest.approx(real.pop("confidence"), abs=2e-3)
    for key in VARIABLE:
        shown.pop(key), real.pop(key)
    assert shown == real  # the model is the default profile's (the most accurate fp32 member)


def test_the_status_answer_has_the_real_fields(
    published: list[tuple[str, dict[str, Any]]],
) -> None:
    line = re.search(r"^# har/demo/cmd/response (\{.*\})$", DOCS.read_text(), re.M)
    assert line, "docs/mqtt.md shows a status answer"
    shown = json.loads(line.group(1))
    real = next(b for t, b in published if t.endswith("/cmd/response"))
    assert set(shown) == set(real) and set(shown["status"]) == set(real["status"])
    assert shown["status"]["model"] == real["status"]["model"]
