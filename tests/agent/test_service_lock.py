"""The service's dependency lock (``requirements/agent.lock``) and the locked install that
``har-agent service install`` runs.

The static tests read the lock against pyproject.toml. Two others reach PyPI: one fetches the
locked files for a Raspberry Pi (aarch64, CPython 3.11, the interpreter of Raspberry Pi OS
bookworm) and checks every hash; one runs the installer's own steps into a folder and starts the
installed agent. Where PyPI cannot be reached they skip and say why, except where
``HAR_AGENT_REQUIRE_PYPI=1`` (``scripts/test.sh``, so CI: it has just installed from PyPI): there
that is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from agent.service import LOCK, plan_install

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REQUIRE_ENV = "HAR_AGENT_REQUIRE_PYPI"
NETWORK_ERRORS = (
    "Could not fetch URL",
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Read timed out",
    "ConnectTimeoutError",
)


def _entries(text: str) -> list[tuple[Requirement, list[str]]]:
    """The lock's requirements with their hashes (continuation lines joined, comments dropped)."""
    lines = [ln.split("#", 1)[0].rstrip() for ln in text.splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        spec, *hashes = (part.strip() for part in line.split("--hash="))
        out.append((Requirement(spec), hashes))
    return out


LOCKED = _entries((ROOT / LOCK).read_text(encoding="utf-8"))


def _env(python: str, machine: str = "x86_64") -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def _pins(env: dict[str, str]) -> dict[str, Version]:
    """What the lock installs on ``env``: name -> version (a name locked twice fails)."""
    pins: dict[str, Version] = {}
    for req, _hashes in LOCKED:
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} is locked twice for {env['python_version']}"
        (spec,) = req.specifier
        assert spec.operator == "==", f"{req}: not pinned"
        pins[name] = Version(spec.version)
    return pins


PYTHONS = ("3.11", "3.12", "3.13")


def test_every_locked_requirement_is_pinned_with_sha256_hashes() -> None:
    assert LOCKED, "the lock is empty"
    for req, hashes in LOCKED:
        assert hashes, f"{req}: no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (req, hashes)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_satisfies_pyproject_on_each_python(python: str, machine: str) -> None:
    """Every runtime dependency and the build backend, at a version pyproject.toml accepts."""
    env = _env(python, machine)
    pins = _pins(env)
    wanted = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} ({text}) is not in {LOCK}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK} pins {name}=={pins[name]}, pyproject.toml asks for {text}: "
            "regenerate the lock (requirements/README.md)"
        )


def _no_pypi(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: this check must run here)")
    pytest.skip(reason)


def _need_pypi(tmp: Path) -> None:
    """Fetch the lock's smallest file past pip's cache: without PyPI, skip (or fail if required)."""
    (pin,) = [f"{r.name}{r.specifier}" for r, _h in LOCKED if r.name == "smbus2"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-cache-dir"]
    try:
        done = subprocess.run(
            [*cmd, "--disable-pip-version-check", "-d", str(tmp), pin],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        _no_pypi("PyPI did not answer in 120 s")
        return
    if done.returncode != 0:
        last = (done.stdout + done.stderr).strip().splitlines()
        _no_pypi(f"PyPI cannot be reached ({last[-1] if last else done.returncode})")


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}"


def test_the_locked_files_exist_for_a_raspberry_pi_and_match_their_hashes(tmp_path: Path) -> None:
    """Wheels only (a Pi should not compile numpy), for aarch64 with glibc 2.36 (bookworm).
    pip evaluates the lock's markers for the Python running it, not for ``--python-version``:
    the lines a Pi would install (CPython 3.11, aarch64) are picked here, hashes and all."""
    env = _env("3.11", "aarch64")
    lines = [
        f"{req.name}{req.specifier} " + " ".join(f"--hash={h}" for h in hashes)
        for req, hashes in LOCKED
        if req.marker is None or req.marker.evaluate(env)
    ]
    pi_lock = tmp_path / "pi.lock"
    pi_lock.write_text("\n".join(lines) + "\n")
    platforms = ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64"]
    _need_pypi(tmp_path / "probe")
    _pip(
        [
            "download",
            "-q",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "--implementation",
            "cp",
            "--python-version",
            "3.11",
            *[a for p in platforms for a in ("--platform", p)],
            "-d",
            str(tmp_path / "wheels"),
            "-r",
            str(pi_lock),
        ]
    )
    got = {
        canonicalize_name(w.name.split("-")[0]): Version(w.name.split("-")[1])
        for w in (tmp_path / "wheels").glob("*.whl")
    }
    assert got == _pins(env)


def test_service_install_puts_the_locked_versions_and_the_agent_into_its_venv(
    tmp_path: Path,
) -> None:
    """The installer's own steps (``--root``: no user, no systemctl): the venv holds exactly the
    lock's versions, and the installed agent runs from its copy."""
    _need_pypi(tmp_path / "probe")
    root = tmp_path / "root"
    steps = plan_install(
        source=ROOT, profile=ROOT / "profiles" / "pi4.toml", root=root, system=False, venv=True
    )
    for step in steps:
        step.action()
    venv = root / "opt" / "har-agent" / ".venv"
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        canonicalize_name(n): Version(v)
        for n, v in (ln.split("==") for ln in freeze.split() if "==" in ln)
    }
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    for name, version in _pins(_env(py, os.uname().machine)).items():
        assert installed.get(name) == version, f"{name}: {installed.get(name)} != {version}"
    assert installed["har-agent"] == Version(PYPROJECT["project"]["version"])
    ran = subprocess.run(
        [
            str(venv / "bin" / "har-agent"),
            "models",
            "list",
            "--dir",
            str(root / "opt/har-agent/models"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert "wc-w1.00-r128" in ran.stdout
    # the agent runs from the installed copy, not from this checkout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import agent; print(agent.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(root / "opt" / "har-agent")), where


def test_a_source_tree_without_the_lock_is_refused(tmp_path: Path) -> None:
    from agent.service import ServiceError

    src = tmp_path / "src"
    (src / "systemd").mkdir(parents=True)
    (src / "systemd" / "har-agent.service").write_text("[Unit]\n")
    prof = tmp_path / "p.toml"
    prof.write_text("")
    with pytest.raises(ServiceError, match=r"agent\.lock: the dependency lock is missing"):
        plan_install(source=src, profile=prof, root=tmp_path / "r", system=False, venv=True)


def test_a_failing_install_command_names_pips_error_not_its_last_detail() -> None:
    """pip ends a hash mismatch with the file's expected and actual hashes; the one line a user
    sees is pip's ERROR line."""
    from agent.service import ServiceError, _run

    script = "import sys; print('ERROR: THESE PACKAGES DO NOT MATCH THE HASHES', file=sys.stderr);"
    script += "print('    Got        3243630f', file=sys.stderr); sys.exit(1)"
    with pytest.raises(
        ServiceError, match=r"failed: ERROR: THESE PACKAGES DO NOT MATCH THE HASHES$"
    ):
        _run([sys.executable, "-c", script])
    with pytest.raises(ServiceError, match=r"failed: no error line$"):
        _run([sys.executable, "-c", "import sys; print('no error line'); sys.exit(3)"])
