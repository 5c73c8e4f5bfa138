"""``har-agent service install``: put the code, the model bank, a config, the system user and the
systemd unit in place, so that ``systemctl enable --now har-agent`` runs the agent hardened.

Every step is planned first (a list of :class:`Step`), so ``--dry-run`` prints exactly what would
happen. ``root`` relocates every path (packaging, tests); ``system=False`` skips the commands that
change the running system (useradd, systemctl).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError
from agent.profile import PATH_KEYS, Profile, load_profile, parse_profile, path_values

USER = "har-agent"
COPIED = (
    "agent",
    "models",
    "recordings",
    "profiles",
    "systemd",
    "requirements",
    "pyproject.toml",
    "README.md",
)
LOCK = Path("requirements") / "agent.lock"
"""The service's dependencies, each pinned with the sha256 of every file PyPI has for it
(``uv pip compile --universal --generate-hashes``, see requirements/README.md)."""


class ServiceError(AgentError):
    """The service could not be installed."""


@dataclass(frozen=True)
class Step:
    description: str
    action: Callable[[], None]


def _no_write_for_others(root: Path) -> None:
    """Clear the group and other write bits below ``root``: the service runs this code as root's
    copy, and a checkout's group- or world-writable file would let another user change it."""
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            path.chmod(stat.S_IMODE(st.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ServiceError(f"{cmd[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        errors = [ln for ln in detail if ln.startswith("ERROR:")]  # pip's own verdict, if any
        why = (errors or detail or [str(exc)])[-1]
        raise ServiceError(f"'{' '.join(cmd)}' failed: {why}") from exc


def _exists(kind: str, name: str) -> bool:
    return subprocess.run(["getent", kind, name], capture_output=True).returncode == 0


PATH_NAMES = tuple(dict.fromkeys(key.split(".")[1] for key in PATH_KEYS))
"""The profile keys that hold file paths, as written in their tables (``path`` is both
``source.path`` and ``outbox.path``; relative ones resolve against the profile's folder)."""

_PATH_LINE = re.compile(
    r"^(?P<head>\s*(?P<key>" + "|".join(PATH_NAMES) + r")\s*=\s*)"
    r"(?:\"(?P<basic>(?:[^\"\\]|\\.)*)\"|'(?P<literal>[^']*)')(?P<tail>.*)$"
)


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string (JSON's escapes are TOML's: quotes, backslashes and
    control characters are escaped, so any path stays valid TOML)."""
    return json.dumps(value)


def rewrite_profile(text: str, prefix: Path, profile_dir: Path, source: Path) -> str:
    """The profile as installed in /etc/har-agent: every relative path made absolute (it was
    relative to the profile's folder, which is no longer beside it). A path into a folder the
    installer copies (``COPIED``) points at the installed copy under ``prefix``; any other path
    keeps its absolute place on this machine. ``~`` paths are left as they are
    (:func:`unreachable_paths` then refuses them)."""
    src = source.resolve()
    base = profile_dir.resolve()

    def fix(line: str) -> str:
        m = _PATH_LINE.match(line)
        if m is None:
            return line
        if m["basic"] is not None:
            try:
                value = json.loads(f'"{m["basic"]}"')
            except json.JSONDecodeError:  # a TOML escape JSON lacks: leave it to the check
                return line
        else:
            value = m["literal"]
        if not value or value.startswith("~") or Path(value).is_absolute():
            return line
        target = Path(os.path.normpath(base / value))
        if target.is_relative_to(src):
            inside = target.relative_to(src)
            if inside.parts and inside.parts[0] in COPIED:
                target = prefix / inside
        return f"{m['head']}{_toml_string(str(target))}{m['tail']}"

    return "\n".join(fix(line) for line in text.split("\n"))


HIDDEN_FROM_SERVICE = ("~", "/home", "/root", "/run/user")
"""Where the service cannot look: its user has no home, and the unit has ``ProtectHome=yes``."""


def unreachable_paths(p: Profile) -> list[str]:
    """``key = path`` for each path of ``p`` the installed service could not open: still
    relative (nothing sits beside /etc/har-agent/profile.toml), or under a home folder."""
    bad = []
    for key, value in path_values(p).items():
        if not value:
            continue
        hidden = any(
            value == h or value.startswith(h.rstrip("/") + "/") for h in HIDDEN_FROM_SERVICE
        )
        if hidden or not Path(value).is_absolute():
            bad.append(f"{key} = {value}")
    return bad


def installed_profile(profile: Path, prefix: Path, source: Path, etc: Path) -> str:
    """The text ``profile`` is installed as, checked before anything is installed: a profile
    the service could not load or whose paths it could not open is refused naming ``profile``
    (the user's file, not the copy)."""
    try:
        text = profile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{profile}: cannot read profile ({exc})") from exc
    load_profile(profile)  # the user's file as it is: its own errors, with its own name
    installed = rewrite_profile(text, prefix, profile.resolve().parent, source)
    bad = unreachable_paths(parse_profile(installed, str(profile), etc))
    if bad:
        raise ServiceError(
            f"{profile}: the service could not open {'; '.join(bad)}: it runs as its "
            "own user with no home (ProtectHome=yes); use absolute paths outside /home, "
            'each written as key = "path" on its own line in its table'
        )
    return installed


def _present(path: Path) -> bool | None:
    """Whether ``path`` exists; None when its folder cannot be searched (``/etc/har-agent`` is
    0750 and the service group's after an install, so a dry run without root cannot tell)."""
    if path.parent.is_dir() and not os.access(path.parent, os.X_OK):
        return None
    try:
        return path.exists()
    except PermissionError:
        return None


def plan_install(
    *,
    source: Path,
    profile: Path,
    prefix: Path = Path("/opt/har-agent"),
    root: Path = Path("/"),
    system: bool = True,
    venv: bool = True,
    group: str | None = None,
) -> list[Step]:
    """``group`` owns the configuration (default: the service's group when ``system``): systemd
    does not hand ``ConfigurationDirectory=`` to ``User=``, so without it the service could not
    read its own profile."""
    if group is None and system:
        group = USER

    def at(p: Path) -> Path:
        return root / p.relative_to("/")

    dest, etc = at(prefix), at(Path("/etc/har-agent"))
    unit_dst = at(Path("/etc/systemd/system/har-agent.service"))
    unit_src = source / "systemd" / "har-agent.service"
    if not unit_src.is_file():
        raise ServiceError(f"{unit_src}: the unit file is missing from the source tree")
    if not profile.is_file():
        raise ServiceError(f"{profile}: no such profile")
    steps: list[Step] = []

    if system:

        def user() -> None:
            if not _exists("group", "i2c"):
                _run(["groupadd", "--system", "i2c"])
            if not _exists("passwd", USER):
                _run(
                    [
                        "useradd",
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--home-dir",
                        "/nonexistent",
                        "--shell",
                        "/usr/sbin/nologin",
                        USER,
                    ]
                )
            _run(["usermod", "--append", "--groups", "i2c", USER])

        steps.append(Step(f"create the system user {USER} (member of i2c)", user))

    def copy() -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            src = source / name
            if src.is_dir():
                shutil.copytree(
                    src,
                    dest / name,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            elif src.is_file():
                shutil.copy2(src, dest / name)
        _no_write_for_others(dest)

    steps.append(Step(f"copy the agent, models and profiles to {dest}", copy))

    if venv:
        if not (source / LOCK).is_file():
            raise ServiceError(
                f"{source / LOCK}: the dependency lock is missing from the source tree"
            )

        def install_venv() -> None:
            py = str(dest / ".venv" / "bin" / "python")
            _run([sys.executable, "-m", "venv", str(dest / ".venv")])
            # the exact files the lock names (a changed or substituted file fails its hash), then
            # the agent itself from the copy, with nothing more from the network
            pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            _run([*pip, "--require-hashes", "--only-binary", ":all:", "-r", str(dest / LOCK)])
            _run([*pip, "--no-deps", "--no-build-isolation", "--no-index", str(dest)])

        steps.append(
            Step(
                f"create {dest / '.venv'}, install the locked dependencies ({LOCK}) and "
                "har-agent into it",
                install_venv,
            )
        )

    target = etc / "profile.toml"
    keep = _present(target)  # never overwrite the user's configuration (None: cannot tell)
    # a profile that is kept is not installed, so it is not checked either
    installed = None if keep else installed_profile(profile, prefix, source, etc)

    def config() -> None:
        etc.mkdir(parents=True, exist_ok=True, mode=0o750)
        if not target.exists():
            text = installed or installed_profile(profile, prefix, source, etc)
            target.write_text(text)
            target.chmod(0o640)
        if group is not None:  # readable by the service, writable by root alone
            for path in (etc, target):
                try:
                    shutil.chown(path, group=group)
                except (LookupError, OSError) as exc:
                    raise ServiceError(f"{path}: cannot give it to group {group} ({exc})") from exc
            etc.chmod(0o750)
            target.chmod(target.stat().st_mode & 0o7777 | 0o040)  # group read, nothing wider

    readable = f", readable by group {group}" if group else ""
    if keep:
        what = (
            f"keep {target} as it is{readable} ({profile} is neither installed nor checked: "
            f"remove {target} first to install it)"
        )
    elif keep is None:  # a dry run without root: the service's group owns /etc/har-agent
        what = f"write {target} from {profile}{readable} (kept if it exists: {etc} needs root)"
    else:
        what = f"write {target} from {profile}{readable}"
    steps.append(Step(what, config))

    def unit() -> None:
        unit_dst.parent.mkdir(parents=True, exist_ok=True)
        text = unit_src.read_text(encoding="utf-8").replace("/opt/har-agent", str(prefix))
        unit_dst.write_text(text)
        unit_dst.chmod(0o644)

    steps.append(Step(f"install the unit {unit_dst}", unit))
    if system:
        steps.append(Step("systemctl daemon-reload", lambda: _run(["systemctl", "daemon-reload"])))
    return steps
