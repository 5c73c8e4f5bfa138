"""The retained configuration event (docs/mqtt.md, schema ``har.config/1``): which member runs
now, why, and, after a switch, the figures the policy decided on. Pure: values in, bytes out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.strict_json import strict_json

if TYPE_CHECKING:  # (types only: the event needs none of their modules at run time)
    from agent.adaptive import SwitchOrder
    from agent.manifest import ModelEntry

CONFIG_SCHEMA = "har.config/1"


def encode_config(
    *,
    device: str,
    boot: str,
    at: str,
    seq: int,
    entry: ModelEntry,
    reason: str,
    mode: str,
    order: SwitchOrder | None = None,
) -> bytes:
    """The event's payload. ``at``: ISO time of the event; ``seq``: the next prediction's
    sequence number; ``mode``: ``adaptive`` or ``static`` (a run without the adaptive runtime,
    ``-m ID`` or ``policy.mode = "static"``, is static for good); ``order``: the switch that
    caused the event (``None`` at start)."""
    body: dict[str, Any] = {
        "schema": CONFIG_SCHEMA,
        "device": device,
        "boot": boot,
        "at": at,
        "seq": seq,
        "model": entry.id,
        "previous": order.previous if order else None,
        "reason": reason,
        "width": entry.width,
        "resolution": entry.resolution,
        "macs": entry.macs,
    }
    if order is not None:
        body["predicted_ms"] = round(order.predicted_ms, 4)
        body["budget_ms"] = round(order.budget_ms, 4)
        body["limit_ms"] = round(order.limit_ms, 4)
        body["contention"] = round(order.contention, 3)
        body["temperature_c"] = order.temperature_c
    body["mode"] = mode
    return strict_json(body)
