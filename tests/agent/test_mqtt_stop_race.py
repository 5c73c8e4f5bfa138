"""paho 2.2's ``loop_stop()`` checks ``client._thread`` and then joins it, reading the field
again; the network thread clears it when it ends by itself, as it does after ``disconnect()``. A
thread that ended in between made the stop raise AttributeError (``None.join()``) out of the
goodbye, leaving the wake-up socket pair open (review s14, F). The interleaving is injected: the
stopping thread, once ``disconnect()`` was called, lets the network thread end whenever it asks
which thread it is (as paho's ``loop_stop()`` does between its check and its join)."""

from __future__ import annotations

import threading

import pytest

from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings
from agent.payload import Topics
from tests.conftest import Broker

pytestmark = pytest.mark.integration


def test_stop_survives_the_network_thread_ending_by_itself(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = MqttSettings("127.0.0.1", broker.port, "har-agent-s14-race", connect_timeout_s=5)
    link = MqttPublisher(settings, Topics("har", "s14-race"))
    link.start()
    client = link._client
    paho_thread = client._thread
    assert paho_thread is not None and paho_thread.is_alive()
    stopping = threading.current_thread()
    disconnected = threading.Event()
    injected = {"n": 0}
    real_disconnect, real_current_thread = client.disconnect, threading.current_thread

    def disconnect(*args: object, **kwargs: object) -> object:
        rc = real_disconnect(*args, **kwargs)  # type: ignore[arg-type]
        disconnected.set()
        return rc

    def current_thread() -> threading.Thread:
        me = real_current_thread()
        if me is stopping and disconnected.is_set() and not injected["n"]:
            injected["n"] += 1  # (once: join() asks too)
            gate.set()
            paho_thread.join(5)  # the network thread ends here, by itself
        return me

    # the network thread must not end before the stop looks at it (it did once in CI, and the
    # window was then never hit): it waits in its disconnect callback until the injection
    gate = threading.Event()
    real_on_disconnect = client.on_disconnect

    def on_disconnect(*args: object, **kwargs: object) -> None:
        real_on_disconnect(*args, **kwargs)  # type: ignore[misc]
        gate.wait(5)

    client.on_disconnect = on_disconnect
    monkeypatch.setattr(client, "disconnect", disconnect)
    monkeypatch.setattr(threading, "current_thread", current_thread)
    lost = link.stop()
    monkeypatch.undo()
    assert injected["n"] >= 1
    assert lost == 0
    assert not paho_thread.is_alive()
    assert client._sockpairR is None and client._sockpairW is None  # closed by stop()
