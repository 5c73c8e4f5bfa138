import os
from pathlib import Path

import pytest

from agent.credentials import load_credentials
from agent.errors import ConfigError


def _file(tmp_path: Path, text: str, mode: int) -> Path:
    p = tmp_path / "mqtt.toml"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_good_file(tmp_path: Path) -> None:
    c = load_credentials(_file(tmp_path, 'username = "har"\npassword = "s3cret"\n', 0o600))
    assert (c.username, c.password) == ("har", "s3cret")
    assert "s3cret" not in repr(c)


@pytest.mark.parametrize(
    ("text", "mode", "match"),
    [
        ('username = "a"\npassword = "b"\n', 0o644, "readable or writable by others"),
        ('username = "a"\npassword = "b"\n', 0o602, "readable or writable by others"),
        ('username = "a"\npassword = "b"\n', 0o620, "writable by its group"),
        ('username = "a"\n', 0o600, "needs a username and a password"),
        ('username = ""\npassword = "b"\n', 0o600, "needs a username and a password"),
        ('username = "a"\npassword = "b"\nhost = "x"\n', 0o600, "unknown key"),
        ("username = \n", 0o600, "unreadable credentials file"),
    ],
)
def test_refused(tmp_path: Path, text: str, mode: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_credentials(_file(tmp_path, text, mode))


def test_group_readable_is_allowed(tmp_path: Path) -> None:
    """What `service install` writes: root-owned, 0640, the service's group may read it."""
    c = load_credentials(_file(tmp_path, 'username = "har"\npassword = "p"\n', 0o640))
    assert c.username == "har"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    p = _file(tmp_path, 'username = "a"\npassword = "b"\n', 0o600)
    os.chown(p, 12345, -1)
    with pytest.raises(ConfigError, match="belongs to user id 12345, not to this user"):
        load_credentials(p)


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the credentials file"):
        load_credentials(tmp_path / "none.toml")
