"""mqtt_link: what it says at start about the link a profile asks for."""

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
