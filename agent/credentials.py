"""MQTT credentials: read from a file that only its owner (and group) may read, that only its
owner may write, and that belongs to the user running the agent or to root; never from the
profile or the command line. The file is TOML::

    username = "har-agent"
    password = "..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.errors import ConfigError
from agent.regular_file import NotRegular, open_regular_fd


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, password='***')"


def load_credentials(path: Path) -> Credentials:
    # opened first, its status read from the descriptor: what is checked is what is read (a FIFO
    # swapped in after a stat would block the read)
    try:
        fd, st = open_regular_fd(path)
    except NotRegular:
        raise ConfigError(f"{path}: the credentials file is not a regular file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the credentials file ({exc.strerror})") from exc
    with os.fdopen(fd, encoding="utf-8") as fh:  # universal newlines, as read_text had
        return _checked(path, st, fh)


def _checked(path: Path, st: os.stat_result, fh: IO[str]) -> Credentials:
    """The credentials in the open file ``fh`` whose status is ``st``, if the file is safe."""
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        raise ConfigError(
            f"{path}: the credentials file is readable or writable by others, or writable by "
            f"its group (mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path} "
            f"(640 for a group that runs the agent)"
        )
    if st.st_uid not in (0, os.geteuid()):  # another user could rewrite it
        raise ConfigError(
            f"{path}: the credentials file belongs to user id {st.st_uid}, not to this user "
            f"({os.geteuid()}) or root; run: chown root {path} (readable by the agent's group, "
            "not writable by the agent)"
        )
    try:
        raw = tomllib.loads(fh.read())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable credentials file ({exc})") from exc
    except RecursionError:
        raise ConfigError(f"{path}: unreadable credentials file (nested too deeply)") from None
    extra = set(raw) - {"username", "password"}
    if extra:
        raise ConfigError(f"{path}: unknown key(s) {sorted(extra)} in the credentials file")
    user, pw = raw.get("username"), raw.get("password")
    if not isinstance(user, str) or not user or not isinstance(pw, str):
        raise ConfigError(f"{path}: the credentials file needs a username and a password string")
    return Credentials(user, pw)
