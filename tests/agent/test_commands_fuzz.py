"""Fuzzed MQTT commands: every reply is strict JSON (no NaN or Infinity, which Python's json
writes and reads but JSON does not have), and an id is a string or an integer, never a bool."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from agent.commands import handle_command


def _strict(reply: bytes) -> dict[str, Any]:
    """The reply parsed as strict JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the reply holds {name}, which is not JSON: {reply!r}")

    body = json.loads(reply, parse_constant=refuse)
    assert isinstance(body, dict)
    return body


def _status() -> dict[str, Any]:
    return {"windows": 3}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"cmd": "ping", "id": NaN}', "NaN is not a JSON value"),
        (b'{"cmd": "ping", "id": Infinity}', "Infinity is not a JSON value"),
        (b'{"cmd": "ping", "id": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"cmd": "mode", "mode": NaN}', "NaN is not a JSON value"),
        (b'{"cmd": "ping", "id": [1, NaN]}', "NaN is not a JSON value"),
        (b'{"cmd": "ping", "id": true}', "'id' must be a string or an integer (got true)"),
        (b'{"cmd": "ping", "id": false}', "'id' must be a string or an integer (got false)"),
        (b'{"cmd": "ping", "id": 1.5}', "'id' must be a string or an integer"),
        (b'{"cmd": "force", "model": "wc-w0.50-r064\\n"}', "'model' must be a bank member id"),
    ],
)
def test_bad_commands_get_a_strict_json_refusal(payload: bytes, fragment: str) -> None:
    reply = _strict(handle_command(payload, _status, control=_Control()))
    assert reply["ok"] is False
    assert fragment in reply["error"], reply
    assert "id" not in reply  # a refused id is not echoed (it is not a valid id)


@pytest.mark.parametrize("request_id", ["r1", 7, -1, 0, 10**30, ""])
def test_good_ids_are_echoed(request_id: Any) -> None:
    payload = json.dumps({"cmd": "ping", "id": request_id}).encode()
    reply = _strict(handle_command(payload, _status))
    assert reply == {"ok": True, "cmd": "ping", "id": request_id}


def test_a_nan_in_the_status_becomes_null() -> None:
    def status() -> dict[str, Any]:
        return {"windows": 3, "temperature_c": math.nan, "load": [1.0, math.inf], "x": -math.inf}

    reply = _strict(handle_command(b'{"cmd": "status", "id": 2}', status))
    assert reply == {
        "ok": True,
        "cmd": "status",
        "status": {"windows": 3, "temperature_c": None, "load": [1.0, None], "x": None},
        "id": 2,
    }
    reply = _strict(handle_command(b'{"cmd": "metrics"}', _status, metrics=status))
    assert reply["metrics"]["temperature_c"] is None


class _Control:
    def __init__(self) -> None:
        self.forced: list[str | None] = []

    def force(self, model_id: str | None) -> None:
        if model_id not in (None, "wc-w0.50-r064"):
            raise KeyError(model_id)
        self.forced.append(model_id)

    def set_mode(self, mode: str) -> None:
        pass


def test_a_model_id_with_a_trailing_newline_is_not_forced() -> None:
    control = _Control()
    ok = _strict(handle_command(b'{"cmd": "force", "model": "wc-w0.50-r064"}', _status, control))
    assert ok["ok"] is True and control.forced == ["wc-w0.50-r064"]
    bad = handle_command(b'{"cmd": "force", "model": "wc-w0.50-r064\\n"}', _status, control)
    assert _strict(bad)["ok"] is False and control.forced == ["wc-w0.50-r064"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"{}", "missing 'cmd' (one of: ping, status, metrics, force, release, mode)"),
        (b'{"cmd": null}', "missing 'cmd' (one of: ping, status, metrics, force, release, mode)"),
        (b'{"cmd": 5}', "'cmd' must be a string (got 5)"),
        (b'{"cmd": ["ping"]}', "'cmd' must be a string (got [\"ping\"])"),
        (b'{"cmd": true}', "'cmd' must be a string (got true)"),
        (b'{"cmd": "reboot"}', "unknown command 'reboot' (known: ping, status, metrics, force, "),
    ],
)
def test_a_missing_or_non_string_cmd_is_named_not_shown_as_a_python_repr(
    payload: bytes, error: str
) -> None:
    """Was ``unknown command None (known: ...)``: Python's repr of what the sender never wrote."""
    reply = _strict(handle_command(payload, _status))
    assert reply["ok"] is False
    assert reply["error"].startswith(error), reply
    assert "None" not in reply["error"] and "True" not in reply["error"]
