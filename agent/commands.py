"""The command topic (``<prefix>/<device>/cmd``): parse, validate and answer commands.

Pure logic: bytes in, a reply (bytes) out. Version 1 knows:

- ``{"cmd": "ping"}``, ``{"cmd": "status"}`` (the agent's status snapshot) and
  ``{"cmd": "metrics"}`` (the metrics topic's body: status, resources, energy, outbox);
- ``{"cmd": "force", "model": "<bank member id>"}`` pins a configuration, ``{"cmd": "release"}``
  lets the policy choose again, ``{"cmd": "mode", "mode": "adaptive" | "static"}``.

An optional ``"id"`` (string or integer) is echoed in the reply. Anything else is rejected with a
reason. A model is named by its bank id (checked against the policy's candidates), never by a
path: no command can name a file or run code. At most :data:`MAX_COMMANDS_PER_STEP` commands are
answered per pipeline step (what may wait: :mod:`agent.mqtt_inbox`; sizes:
:mod:`agent.mqtt_settings`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from agent.strict_json import strict_json

MAX_COMMAND_BYTES = 4096
MAX_COMMANDS_PER_STEP = 10
"""Commands answered per pipeline step (one chunk of samples, 0.2 s at 50 Hz in real time);
the rest wait for the next step, so a flood of commands cannot stall classification nor hold the
step past the systemd watchdog. 10 per step is 50 per second in real time, far above what any
client asks, and each is cheap (``status``/``metrics`` build one dictionary). It also bounds the
replies waiting for their PUBACK (:data:`agent.mqtt.MAX_REPLIES_IN_FLIGHT`): half of paho's
in-flight window, so that at most that many replies are ever ahead of a prediction."""
COMMANDS = ("ping", "status", "metrics", "force", "release", "mode")
_FIELDS: dict[str, set[str]] = {
    "ping": set(),
    "status": set(),
    "metrics": set(),
    "force": {"model"},
    "release": set(),
    "mode": {"mode"},
}
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # fullmatch: "$" allows a "\n"
MODES = ("adaptive", "static")


class Control(Protocol):
    """What the commands may change (the adaptive controller)."""

    def force(self, model_id: str | None) -> None:
        """Pin ``model_id`` (``None`` releases); KeyError for a member it does not know."""

    def set_mode(self, mode: str) -> None: ...


def _apply(cmd: str, body: dict[str, Any], control: Control | None) -> None:
    if control is None:
        raise ValueError(
            f'{cmd!r} needs the adaptive runtime (policy.mode = "adaptive" in the profile, '
            "or har-agent run --policy adaptive)"
        )
    if cmd == "force":
        model = body.get("model")
        if not isinstance(model, str) or not _MODEL_ID.fullmatch(model):
            raise ValueError("'model' must be a bank member id, e.g. \"wc-w0.50-r064\"")
        try:
            control.force(model)
        except KeyError:
            raise ValueError(
                f"model {model!r} is not one of the policy's candidates "
                "(the 'status' command lists those it may pin under adaptive.pinnable)"
            ) from None
    elif cmd == "release":
        control.force(None)
    elif cmd == "mode":
        mode = body.get("mode")
        if mode not in MODES:
            got = "it is missing" if mode is None else f"got {mode!r}"
            raise ValueError(f"'mode' must be one of {', '.join(MODES)} ({got})")
        control.set_mode(str(mode))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: ``{"cmd": "ping", "cmd": "status"}`` is ambiguous
    (which one did the sender mean?), not last-one-wins."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise ValueError(f"duplicate key {key!r} in the command")
        body[key] = value
    return body


def _no_constants(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (Python's json reads them)."""
    raise ValueError(f"not JSON: {name} is not a JSON value")


def handle_command(
    payload: bytes,
    status: Callable[[], dict[str, Any]],
    control: Control | None = None,
    metrics: Callable[[], dict[str, Any]] | None = None,
) -> bytes:
    """Answer one command message. ``status`` gives the agent's status snapshot, ``metrics``
    the metrics body; ``control`` is the adaptive controller, ``None`` when the agent runs one
    member statically."""
    reply: dict[str, Any]
    request_id: Any = None
    try:
        if len(payload) > MAX_COMMAND_BYTES:
            raise ValueError(f"command larger than {MAX_COMMAND_BYTES} bytes")
        try:
            body = json.loads(
                payload.decode("utf-8"),
                object_pairs_hook=_no_duplicate_keys,
                parse_constant=_no_constants,
            )
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not UTF-8 text (byte {exc.start} is 0x{payload[exc.start]:02x})"
            ) from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("a command must be a JSON object")
        request_id = body.get("id")
        if request_id is not None and (
            not isinstance(request_id, str | int) or isinstance(request_id, bool)
        ):
            bad_id, request_id = request_id, None  # not echoed: it is not an id
            raise ValueError(f"'id' must be a string or an integer (got {json.dumps(bad_id)[:40]})")
        cmd = body.get("cmd")
        if cmd is None:  # absent, or null
            raise ValueError(f"missing 'cmd' (one of: {', '.join(COMMANDS)})")
        if not isinstance(cmd, str):
            raise ValueError(f"'cmd' must be a string (got {json.dumps(cmd)[:40]})")
        if cmd not in COMMANDS:
            raise ValueError(f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
        extra = set(body) - {"cmd", "id"} - _FIELDS[cmd]
        if extra:
            raise ValueError(f"unexpected field(s) {sorted(extra)} for {cmd!r}")
        if cmd in ("force", "release", "mode"):
            _apply(cmd, body, control)
        reply = {"ok": True, "cmd": cmd}
        if cmd == "metrics":
            reply["metrics"] = metrics() if metrics is not None else status()
        elif cmd != "ping":
            reply["status"] = status()
    except (ValueError, UnicodeDecodeError) as exc:
        reply = {"ok": False, "error": str(exc)}
    except RecursionError:  # json.loads on deeply nested arrays: a few KB is enough
        reply = {"ok": False, "error": "command nested too deeply"}
    if request_id is not None:
        reply["id"] = request_id
    return strict_json(reply)
