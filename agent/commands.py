"""The command topic (``<prefix>/<device>/cmd``): parse, validate and answer commands.

Pure logic: bytes in, a reply (bytes) out. Version 1 knows ``ping`` and ``status``; anything else
is rejected with a reason. No command can name a file or run code.
"""

from __future__ import annotations

import json
from typing import Any

MAX_COMMAND_BYTES = 4096
COMMANDS = ("ping", "status")


def handle_command(payload: bytes, status: dict[str, Any]) -> bytes:
    """Answer one command message; ``status`` is the agent's current status snapshot."""
    reply: dict[str, Any]
    request_id: Any = None
    try:
        if len(payload) > MAX_COMMAND_BYTES:
            raise ValueError(f"command larger than {MAX_COMMAND_BYTES} bytes")
        body = json.loads(payload.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError("a command must be a JSON object")
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str | int):
            raise ValueError("'id' must be a string or an integer")
        cmd = body.get("cmd")
        if cmd not in COMMANDS:
            raise ValueError(f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
        extra = set(body) - {"cmd", "id"}
        if extra:
            raise ValueError(f"unexpected field(s) {sorted(extra)} for {cmd!r}")
        reply = {"ok": True, "cmd": cmd}
        if cmd == "status":
            reply["status"] = status
    except (ValueError, UnicodeDecodeError) as exc:
        reply = {"ok": False, "error": str(exc)}
    if request_id is not None:
        reply["id"] = request_id
    return json.dumps(reply, separators=(",", ":")).encode("utf-8")
