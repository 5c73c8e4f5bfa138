"""Helpers for the fault-injection tests and the soak (tests/soak.py): a persistent subscriber that
accounts for every (boot, seq), brokers with persistence, agent profiles written to disk, and the
agent run in a thread or as a ``har-agent run`` process."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.run_stats import RunStats
from agent.wiring import Agent
from tests.agent.helpers import ROOT
from tests.conftest import Broker, start_broker_conf


class SeqSubscriber:
    """A QoS 1 subscriber with a persistent session (the broker queues for it while it is away)
    that keeps one byte per (boot, seq): unique messages, duplicates, and what is missing.

    Constant memory per message, so the soak can run it for hours. The constructor returns once
    the broker has acknowledged the subscription (SUBACK): from then on the session, and with a
    persistent broker what is queued for it, outlives a broker restart."""

    SUBACK_TIMEOUT_S = 30.0

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        topic: str = "har/+/prediction",
        ca_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.seen: dict[str, bytearray] = {}
        self.unique = 0
        self.duplicates = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        if username is not None:
            self.client.username_pw_set(username, password)
        self._subscribed = threading.Event()
        self._refused: list[str] = []
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        where = f"subscriber {client_id!r} to {topic!r} on 127.0.0.1:{port}"
        if not self._subscribed.wait(self.SUBACK_TIMEOUT_S):
            self.close()
            raise TimeoutError(f"{where}: no SUBACK within {self.SUBACK_TIMEOUT_S:g} s")
        if self._refused:
            self.close()
            raise RuntimeError(f"{where}: the broker refused it ({', '.join(self._refused)})")

    def _on_subscribe(
        self, _c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _props: Any
    ) -> None:
        self._refused = [str(rc) for rc in codes if rc.is_failure]
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        boot, seq = str(body["boot"]), int(body["seq"])
        with self._lock:
            bits = self.seen.setdefault(boot, bytearray())
            if seq >= len(bits):
                bits.extend(bytes(seq + 1 - len(bits) + 4096))
            if bits[seq]:
                self.duplicates += 1
            else:
                bits[seq] = 1
                self.unique += 1

    def boots(self, wait_s: float = 0.0) -> list[str]:
        """The boot ids seen; waits up to ``wait_s`` for the first message (the subscriber may
        still be reconnecting to a restarted broker that queued for it)."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                if self.seen or time.monotonic() >= deadline:
                    return list(self.seen)
            time.sleep(0.1)

    def missing(self, boot: str, n: int) -> list[int]:
        """The seqs in 0..n-1 of ``boot`` not received (yet)."""
        with self._lock:
            bits = self.seen.get(boot, bytearray())
            return [s for s in range(n) if s >= len(bits) or not bits[s]]

    def wait_complete(self, boot: str, n: int, timeout: float) -> list[int]:
        """Wait until seqs 0..n-1 of ``boot`` have all arrived; what is still missing."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.missing(boot, n)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def persistent_broker(tmp: Path, port: int, extra: str = "", name: str = "") -> Broker:
    """A broker on ``port`` that keeps sessions and queued messages across its restarts, and
    queues without limit for a persistent subscriber that is away: mosquitto's default
    ``max_queued_messages`` (1000) drops what is over it, and an agent draining its outbox
    after an outage publishes thousands in the second or two the subscriber takes to come
    back (a soak under load counted 135 such "missing" that the broker had acknowledged)."""
    store = tmp / f"store-{name or port}"
    store.mkdir(parents=True, exist_ok=True)
    body = f"persistence true\npersistence_location {store}/\nmax_queued_messages 0\n"
    if not extra:
        body += f"listener {port} 127.0.0.1\nallow_anonymous true\n"
    return start_broker_conf(tmp, port, body + extra, name)


def write_profile(
    path: Path,
    port: int,
    *,
    outbox: Path | None,
    speed: float = 1.0,
    loop: bool = True,
    mqtt: str = "",
    extra: str = "",
) -> Path:
    """The default profile, aimed at ``127.0.0.1:port``, as a file for ``har-agent`` commands;
    ``mqtt`` adds keys to ``[mqtt]``, ``extra`` appends sections."""
    text = (ROOT / "profiles" / "default.toml").read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('host = "localhost"', 'host = "127.0.0.1"')
    text = text.replace("port = 1883", f"port = {port}\n{mqtt}")
    text = text.replace("speed = 1.0", f"speed = {speed}")
    text = text.replace("loop = true", f"loop = {str(loop).lower()}")
    if outbox is not None:
        text += f'\n[outbox]\npath = "{outbox}"\n'
    else:
        text += "\n[outbox]\nenabled = false\n"
    path.write_text(text + extra)
    return path


class AgentThread:
    """``agent.run()`` on a thread of its own; :attr:`stats` once it has returned."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stats: RunStats | None = None
        self._thread = threading.Thread(target=self._run, name="agent under test")
        self._thread.start()

    def _run(self) -> None:
        self.stats = self.agent.run()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def windows(self) -> int:
        """Windows of the finished run (fails if it has not finished)."""
        assert self.stats is not None, "the agent has not returned"
        return self.stats.windows


def spawn_agent(
    profile: Path, stderr: int | IO[Any] = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """``har-agent run --profile PROFILE`` as a process of its own (to be killed, restarted)."""
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--profile", str(profile)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
