"""The retained configuration event's payload (docs/mqtt.md, ``har.config/1``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.config_event import CONFIG_SCHEMA, encode_config
from agent.manifest import load_manifest

MODELS = Path(__file__).resolve().parents[2] / "models"


def order(**over: Any) -> Any:
    """A switch order as the controller makes one (only the fields the event reads)."""
    base = dict(
        previous="wc-w1.00-r128",
        predicted_ms=0.123456,
        budget_ms=1.0,
        limit_ms=0.8,
        contention=1.23456,
        temperature_c=None,
    )
    return SimpleNamespace(**{**base, **over})


@pytest.mark.parametrize(
    ("switch", "mode", "extra"),
    [
        (None, "static", {}),
        (None, "adaptive", {}),
        (
            order(),
            "adaptive",
            dict(
                predicted_ms=0.1235,
                budget_ms=1.0,
                limit_ms=0.8,
                contention=1.235,
                temperature_c=None,
            ),
        ),
        (
            order(temperature_c=71.5, predicted_ms=2.0),
            "adaptive",
            dict(
                predicted_ms=2.0, budget_ms=1.0, limit_ms=0.8, contention=1.235, temperature_c=71.5
            ),
        ),
    ],
)
def test_config_event_fields(switch: Any, mode: str, extra: dict[str, Any]) -> None:
    entry = load_manifest(MODELS).models[0]
    payload = encode_config(
        device="pi-1",
        boot="b00t",
        at="2026-12-04T00:00:00.000Z",
        seq=7,
        entry=entry,
        reason="start" if switch is None else "contention",
        mode=mode,
        order=switch,
    )
    body = json.loads(payload)
    assert body == {
        "schema": CONFIG_SCHEMA,
        "device": "pi-1",
        "boot": "b00t",
        "at": "2026-12-04T00:00:00.000Z",
        "seq": 7,
        "model": entry.id,
        "previous": None if switch is None else "wc-w1.00-r128",
        "reason": "start" if switch is None else "contention",
        "width": entry.width,
        "resolution": entry.resolution,
        "macs": entry.macs,
        **extra,
        "mode": mode,
    }
    assert list(body)[-1] == "mode"  # the order docs/mqtt.md shows


def test_a_non_finite_figure_is_null() -> None:
    """Strict JSON: a NaN prediction reaches subscribers as null, never as invalid JSON."""
    entry = load_manifest(MODELS).models[0]
    payload = encode_config(
        device="d",
        boot="b",
        at="x",
        seq=0,
        entry=entry,
        reason="contention",
        mode="adaptive",
        order=order(predicted_ms=float("nan")),
    )
    assert b"NaN" not in payload and json.loads(payload)["predicted_ms"] is None
