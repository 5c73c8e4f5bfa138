"""A recording's self-description (docs/recording-format.md): sample rate, channels with units
and full scale, start time, source, label vocabulary. Parsed strictly: every field of its JSON
type (a boolean is not a number, a string is not a boolean nor a list), nesting bounded, and each
refusal names the field."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.errors import RecordingError

MAX_RATE_HZ = 100_000.0


@dataclass(frozen=True)
class Channel:
    """One signal column: its name, its physical unit (``g``, ``rad/s``, ...) and, for a sensor
    channel, the full-scale value the sensor clips at (samples there are saturated)."""

    name: str
    unit: str
    full_scale: float | None = None


def _channel_json(c: Channel) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "unit": c.unit}
    if c.full_scale is not None:
        out["full_scale"] = c.full_scale
    return out


MAX_HEADER_DEPTH = 32
"""How deeply the header's JSON may nest (``source`` and ``meta`` are free-form objects)."""


class _BadField(Exception):
    """A header field of the wrong type or value; the message names the field."""


def _kind(value: Any) -> str:
    """What a JSON value is, for messages (``a string ('50')``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float | str):
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"a {'string' if isinstance(value, str) else 'number'} ({text})"
    return "a list" if isinstance(value, list) else "an object"


def _number(value: Any, what: str) -> float:
    """A JSON number (not a boolean) as a float; a huge integer becomes inf (refused later)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadField(f"{what} must be a number, not {_kind(value)}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_HEADER_DEPTH:
                stack.extend(
                    (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _channel_from(raw: Any, i: int) -> Channel:
    if not isinstance(raw, dict):
        raise _BadField(
            f'channels[{i}] must be an object {{"name": ..., "unit": ...}}, not {_kind(raw)}'
        )
    name, unit = raw.get("name"), raw.get("unit")
    if not isinstance(name, str) or not name:
        raise _BadField(f"channels[{i}].name must be a non-empty string, not {_kind(name)}")
    if not isinstance(unit, str):
        raise _BadField(f"channel {name!r}: unit must be a string, not {_kind(unit)}")
    fs = raw.get("full_scale")
    if fs is None:
        return Channel(name, unit)
    scale = _number(fs, f"channel {name!r}: full_scale")
    if not (math.isfinite(scale) and scale > 0):
        raise _BadField(f"channel {name!r}: full_scale must be a positive number")
    return Channel(name, unit, scale)


@dataclass(frozen=True)
class RecordingHeader:
    """What a recording says about itself."""

    sample_rate_hz: float
    channels: tuple[Channel, ...]
    start_time: str
    source: dict[str, Any] = field(default_factory=dict)
    labelled: bool = False
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    def to_json(self) -> str:
        return json.dumps(
            {
                "sample_rate_hz": self.sample_rate_hz,
                "channels": [_channel_json(c) for c in self.channels],
                "start_time": self.start_time,
                "source": self.source,
                "labelled": self.labelled,
                "labels": list(self.labels),
                "meta": self.meta,
            },
            sort_keys=True,
        )

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> RecordingHeader:
        """The header from its parsed JSON, every field of its JSON type (a boolean is not a
        number, a string is not a boolean nor a list); :class:`_BadField` names the field."""
        for key in ("sample_rate_hz", "channels", "start_time"):
            if key not in raw:
                raise _BadField(f"{key} is missing (required)")
        chans = raw["channels"]
        if not isinstance(chans, list):
            raise _BadField(f"channels must be a list of channel objects, not {_kind(chans)}")
        start = raw["start_time"]
        if not isinstance(start, str):
            raise _BadField(f"start_time must be an ISO 8601 string, not {_kind(start)}")
        labelled = raw.get("labelled", False)
        if not isinstance(labelled, bool):
            raise _BadField(f"labelled must be true or false, not {_kind(labelled)}")
        labels = raw.get("labels", [])
        if not isinstance(labels, list):
            raise _BadField(f"labels must be a list of label names, not {_kind(labels)}")
        for i, name in enumerate(labels):
            if not isinstance(name, str) or not name:
                raise _BadField(f"labels[{i}] must be a non-empty string, not {_kind(name)}")
        objects = {key: raw.get(key, {}) for key in ("source", "meta")}
        for key, value in objects.items():
            if not isinstance(value, dict):
                raise _BadField(f"{key} must be a JSON object, not {_kind(value)}")
        return cls(
            sample_rate_hz=_number(raw["sample_rate_hz"], "sample_rate_hz"),
            channels=tuple(_channel_from(c, i) for i, c in enumerate(chans)),
            start_time=start,
            source=dict(objects["source"]),
            labelled=labelled,
            labels=tuple(labels),
            meta=dict(objects["meta"]),
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> RecordingHeader:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RecordingError(f"{where}: malformed recording header ({exc})") from None
        except RecursionError:
            raise RecordingError(
                f"{where}: malformed recording header (nested more than {MAX_HEADER_DEPTH} deep)"
            ) from None
        if not isinstance(raw, dict):
            raise RecordingError(
                f"{where}: malformed recording header (a JSON object is expected, not {_kind(raw)})"
            )
        if _depth(raw) > MAX_HEADER_DEPTH:
            raise RecordingError(
                f"{where}: malformed recording header (nested more than {MAX_HEADER_DEPTH} deep)"
            )
        try:
            header = cls._from_dict(raw)
        except _BadField as exc:
            raise RecordingError(f"{where}: recording header: {exc}") from None
        if not (math.isfinite(header.sample_rate_hz) and 0 < header.sample_rate_hz <= MAX_RATE_HZ):
            raise RecordingError(
                f"{where}: sample_rate_hz must be a positive number up to {MAX_RATE_HZ:g}"
            )
        if not header.channels:
            raise RecordingError(f"{where}: the header names no channels")
        try:
            datetime.fromisoformat(header.start_time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise RecordingError(
                f"{where}: start_time {header.start_time!r} is not ISO 8601"
            ) from exc
        if len(set(header.channel_names)) != len(header.channels):
            raise RecordingError(f"{where}: duplicate channel names in header")
        return header
