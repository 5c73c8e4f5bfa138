"""JSON the agent publishes (command replies, config, metrics): always valid JSON. Python's json
writes NaN and Infinity, which are not JSON and break consumers (jq, JavaScript, Home
Assistant); a non-finite figure is written as null instead."""

from __future__ import annotations

import json
import math
from typing import Any


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def strict_json(body: Any) -> bytes:
    """Compact UTF-8 JSON of ``body``, non-finite floats as null."""
    try:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(body), separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")
