"""One agent per device id: on this machine by an abstract socket, across machines by the
broker's "session taken over"."""

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.instance import DeviceInUse, claim_device
from agent.publisher_factory import mqtt_link
from tests.agent.helpers import DEFAULT_PROFILE, profile_for


def test_a_device_can_be_claimed_once_at_a_time() -> None:
    first = claim_device("test-claim")
    assert isinstance(first, socket.socket)
    with pytest.raises(DeviceInUse, match="already running as device 'test-claim'"):
        claim_device("test-claim")
    other = claim_device("test-claim-2")  # another device id is another name
    assert other is not None
    first.close()
    again = claim_device("test-claim")  # freed with the socket (or the process)
    assert again is not None
    again.close()
    other.close()


def test_run_refuses_a_second_agent_as_the_same_device(tmp_path: Path) -> None:
    device = "demo"  # the default profile's
    assert f'id = "{device}"' in DEFAULT_PROFILE.read_text()
    held = claim_device(device)  # as a running agent (the service, demo.sh) holds it
    assert held is not None
    try:
        result = CliRunner().invoke(app, ["run", "--profile", str(DEFAULT_PROFILE)])
    finally:
        held.close()
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("har-agent: error: another har-agent is already running as")


def test_the_broker_dropping_a_duplicate_client_id_is_named() -> None:
    """Two agents with one device id on two machines: each connection takes the client id from
    the other. An MQTT v5 broker says so (DISCONNECT, reason 0x8E; mosquitto since 2.0.15,
    Debian 12 ships 2.0.11, which just closes the connection): the agent names the cause
    instead of logging a bare reconnect loop."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    link = mqtt_link(profile_for(1883))
    rc = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    assert str(rc) == "Session taken over"

    class Flags:
        is_disconnect_packet_from_server = True

    link._on_disconnect(link._client, None, Flags(), rc, None)
    kind, detail = link._events.get_nowait()
    assert kind == "disconnected"
    assert detail == (
        "session taken over: another client connected as 'har-agent-demo'; "
        "is another agent running with this device id?"
    )


def test_stopping_without_the_broker_counts_only_unacknowledged_messages() -> None:
    """The link dropped at the end of a replay: messages whose PUBACK had already arrived are
    delivered, not lost (stop() used to count them without draining the acknowledgements)."""
    link = mqtt_link(profile_for(1883))
    link._acks.pending.update({1, 2, 3})
    link._acks.put((1, 0, "Success"))
    link._acks.put((2, 0, "Success"))
    assert not link.connected
    assert link.stop() == 1
