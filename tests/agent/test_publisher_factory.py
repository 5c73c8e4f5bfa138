"""publisher_factory: what it says at start about the link a profile asks for, and which outbox
file it opens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.profile import parse_profile
from agent.publisher_factory import mqtt_link


@pytest.mark.parametrize(
    ("host", "tls", "warned"),
    [
        ("localhost", False, False),
        ("127.0.0.1", False, False),
        ("127.3.4.5", False, False),
        ("::1", False, False),
        ("192.168.1.10", False, True),
        ("broker.lan", False, True),
        ("broker.lan", True, False),
    ],
)
def test_a_password_in_clear_text_over_the_network_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str, tls: bool, warned: bool
) -> None:
    creds = tmp_path / "mqtt.toml"
    creds.write_text('username = "har"\npassword = "s3cret"\n')
    creds.chmod(0o600)
    text = (
        'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'
        f'[mqtt]\nhost = "{host}"\ntls = {str(tls).lower()}\ncredentials_file = "mqtt.toml"\n'
    )
    profile = parse_profile(text, "p.toml", tmp_path)
    with caplog.at_level(logging.WARNING, logger="agent.publisher_factory"):
        link = mqtt_link(profile)
    assert link.settings.credentials is not None
    said = [r.getMessage() for r in caplog.records if "clear text" in r.getMessage()]
    assert len(said) == int(warned)
    if warned:
        assert f"goes to {host} in clear text" in said[0] and "mqtt.tls = true" in said[0]
        assert "s3cret" not in said[0]


def test_broker_option_with_an_explicit_outbox_path_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """``outbox.path`` was used as is with ``--broker``: a backlog queued for the profile's broker
    was drained into the other one. Now, as for the default file, the other broker's outbox sits
    beside it (``NAME@HOST_PORT.EXT``); the profile's own broker keeps the file as named."""
    import dataclasses

    from agent.profile import with_broker
    from agent.publisher_factory import outbox_path

    base = parse_profile(
        'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'
        '[mqtt]\nhost = "broker.lan"\nport = 1883\n[outbox]\npath = "spool/o.db"\n',
        "p.toml",
        tmp_path,
    )
    own = outbox_path(base, {})
    assert own == tmp_path / "spool" / "o.db"
    assert outbox_path(with_broker(base, "broker.lan:1883"), {}) == own  # the same broker
    assert outbox_path(with_broker(base, "pi.local"), {}) == own.with_name("o@pi.local_1883.db")
    assert outbox_path(with_broker(base, "[::1]:18830"), {}) == own.with_name("o@__1_18830.db")
    bare = dataclasses.replace(base, outbox=dataclasses.replace(base.outbox, path="/srv/spool"))
    assert outbox_path(with_broker(bare, "pi.local:8883"), {}) == Path("/srv/spool@pi.local_8883")


def test_the_outbox_line_names_the_broker_and_brackets_an_ipv6_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--broker '[::1]:18830'`` showed as ``::1:18830``: which part is the port?"""
    from agent.forwarder import OutboxPublisher
    from agent.profile import with_broker
    from agent.publisher_factory import make_publisher

    base = parse_profile(
        'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'
        '[outbox]\npath = "o.db"\nmax_mb = 1\n',
        "p.toml",
        tmp_path,
    )
    for spec, where in (("[::1]:18830", "[::1]:18830"), ("127.0.0.1:18831", "127.0.0.1:18831")):
        with caplog.at_level(logging.INFO, logger="agent.publisher_factory"):
            pub = make_publisher(with_broker(base, spec), use_outbox=True)
        assert isinstance(pub, OutboxPublisher)
        pub.outbox.close()
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox ")]
        assert said[-1].startswith(f"outbox {pub.outbox.path} for the MQTT broker at {where} ("), (
            said
        )
    assert sorted(p.name for p in tmp_path.glob("o@*.db")) == [
        "o@127.0.0.1_18831.db",
        "o@__1_18830.db",
    ]


@pytest.mark.parametrize("key", ["ca_file", "client_cert", "client_key"])
def test_a_missing_tls_file_names_the_profile_and_its_key(tmp_path: Path, key: str) -> None:
    """As every profile error does (docs/profiles.md): the file, the key, what is wrong."""
    from agent.errors import ConfigError

    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("not checked here\n")
    files = {"ca_file": "ca.pem", "client_cert": "client.pem", "client_key": "client.key"}
    files[key] = "gone.pem"
    lines = "".join(f'{k} = "{v}"\n' for k, v in files.items())
    text = (
        'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'
        f'[mqtt]\nhost = "broker.lan"\ntls = true\n{lines}'
    )
    profile = parse_profile(text, "/etc/har-agent/profile.toml", tmp_path)
    with pytest.raises(ConfigError) as err:
        mqtt_link(profile)
    where = "/etc/har-agent/profile.toml"
    assert str(err.value) == f"{where}: mqtt.{key} = gone.pem: no such file ({tmp_path}/gone.pem)"


@pytest.mark.parametrize(
    ("host", "shown"),
    [("::1", "[::1]:18830"), ("127.0.0.1", "127.0.0.1:18830"), ("broker.lan", "broker.lan:18830")],
)
def test_the_broker_is_named_as_broker_takes_it(host: str, shown: str) -> None:
    """Every log line and error names the broker by ``MqttSettings.address``: an IPv6 address in
    brackets (``::1:18830`` does not say which part is the port)."""
    from agent.mqtt_settings import MqttSettings

    assert MqttSettings(host, 18830, "c").address == shown


def test_an_unreachable_ipv6_broker_is_named_in_brackets() -> None:
    import socket

    from agent.errors import PublishError
    from agent.mqtt import MqttPublisher
    from agent.mqtt_settings import MqttSettings
    from agent.payload import Topics

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]  # closed once the block ends
    except OSError:
        pytest.skip("no IPv6 loopback here")
    link = MqttPublisher(MqttSettings("::1", port, "c", connect_timeout_s=2), Topics("har", "t"))
    with pytest.raises(PublishError, match=rf"MQTT broker at \[::1\]:{port}"):
        link.start()
