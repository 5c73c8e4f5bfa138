"""The MQTT link's connection state, as the events of paho's network thread change it: up or not,
ever up, why the first connection failed while the daemon retries in the background, a broker that
refuses MQTT v5, a stop under way; each change logged once, in one line that says what happens
meanwhile. What a change asks of the link itself (a fresh v3.1.1 client, its retained messages
sent again) is done by the two callables it is given: paho stays in :mod:`agent.mqtt`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.mqtt_connect import refuses_v5
from agent.mqtt_settings import MqttSettings

log = logging.getLogger("agent.mqtt")


class LinkState:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        retry_in_background: bool,
        fall_back: Callable[[], None],
        up: Callable[[bool], None],
    ) -> None:
        """``fall_back()``: go on with MQTT v3.1.1 (a broker that refuses v5);
        ``up(ever_connected)``: the link is up, ``ever_connected`` whether it
        was before this connection (called before that is recorded)."""
        self.settings = settings
        self.retry_in_background = retry_in_background
        self._fall_back = fall_back
        self._up = up
        self.start_failure: str | None = None
        """Why the first connection failed when :meth:`~agent.mqtt.MqttPublisher.start` went on
        in the background."""
        self.connected = False
        self.ever_connected = False
        self.stopping = False

    def apply(self, kind: str, detail: str, *, v5: bool) -> None:
        """One event of paho's thread (``connected``, ``refused``, ``disconnected``) and its
        detail; ``v5``: whether the link's client speaks MQTT v5."""
        s = self.settings
        if kind == "refused" and not self.connected and v5 and refuses_v5(detail):
            self._fall_back()  # (before or after a working v5 session: MqttPublisher says how)
            return
        if kind == "connected" and not self.connected:
            self.connected = True
            self._up(self.ever_connected)
            self.ever_connected = True
            if self.start_failure is not None:
                self.start_failure = None
                log.info("connected to the MQTT broker at %s at last", s.address)
            else:
                log.info("reconnected to the MQTT broker at %s", s.address)
        elif kind in ("disconnected", "refused") and self.connected:
            self.connected = False
            if self.stopping:  # e.g. Ctrl-C reached the broker too: not worth a warning
                log.info("the MQTT broker went away while stopping (%s)", detail)
                return
            log.warning(
                "lost the MQTT broker at %s (%s); retrying every %d-%d s, messages queue",
                s.address,
                detail,
                s.reconnect_min_s,
                s.reconnect_max_s,
            )
