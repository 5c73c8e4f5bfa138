"""`har-agent service install`, relocated below a temporary root (no useradd, no systemctl)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import AgentError
from agent.manifest import load_manifest
from agent.profile import load_profile
from agent.service import Step, plan_install, rewrite_profile

ROOT = Path(__file__).resolve().parents[2]


def test_install_below_a_root(tmp_path: Path) -> None:
    prefix = Path("/opt/har-agent")
    steps = plan_install(
        source=ROOT,
        profile=ROOT / "profiles" / "default.toml",
        prefix=prefix,
        root=tmp_path,
        system=False,
        venv=False,
    )
    for step in steps:
        step.action()
    installed = tmp_path / "opt/har-agent"
    assert (installed / "agent" / "cli.py").is_file()
    assert (installed / "models" / "manifest.json").is_file()
    conf = tmp_path / "etc/har-agent/profile.toml"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    text = conf.read_text()
    assert '"/opt/har-agent/models"' in text and '"../' not in text
    # the installed profile, read where it would live, points at the installed bank
    relocated = tmp_path / "check.toml"
    relocated.write_text(text.replace('"/opt/har-agent/', f'"{installed}/'))
    prof = load_profile(relocated)
    assert load_manifest(prof.resolve(prof.model.dir)).models
    unit = tmp_path / "etc/systemd/system/har-agent.service"
    assert "ExecStart=/opt/har-agent/.venv/bin/har-agent run" in unit.read_text()
    # a second install keeps the user's configuration
    conf.write_text("# edited by the user\n" + text)
    for step in steps:
        step.action()
    assert conf.read_text().startswith("# edited by the user")


def test_installed_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    prefix = tmp_path / "prefix"
    staged = tmp_path / "root"
    steps = plan_install(
        source=ROOT,
        profile=ROOT / "profiles" / "pi4.toml",
        prefix=prefix,
        root=staged,
        system=False,
        venv=False,
    )
    for step in steps:
        step.action()  # everything lands below `staged`, nothing in the real /etc
    shutil.copytree(staged / prefix.relative_to("/"), prefix)
    (prefix / ".venv/bin").mkdir(parents=True)
    exe = prefix / ".venv/bin/har-agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "har-agent.service"
    unit.write_text(
        (ROOT / "systemd/har-agent.service").read_text().replace("/opt/har-agent", str(prefix))
    )
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_rewrite_profile_makes_every_path_absolute(tmp_path: Path) -> None:
    """Relative paths resolve against the profile's folder, which /etc/har-agent is not: each
    becomes absolute, pointing into the installed tree where it pointed into the source tree."""
    src = tmp_path / "src"
    text = "\n".join(
        [
            "[model]",
            'dir = "../models"',
            "[source]",
            'path = "../recordings/a.har.csv.gz"  # a comment stays',
            "[policy]",
            'latency_table = "pi4-latency.json"',
            "[mqtt]",
            'credentials_file = "/etc/har-agent/creds.toml"',
            'ca_file = "../../elsewhere/ca.pem"',
            'client_key = ""',
            'host = "../not-a-path"',
            "client_cert = '../certs/c.pem'",
            'path = "~/rec.har.csv"',
            'latency_table = "../build/lat.json"',
        ]
    )
    got = rewrite_profile(text, Path("/opt/h"), src / "profiles", src).split("\n")
    assert got[1] == 'dir = "/opt/h/models"'
    assert got[3] == 'path = "/opt/h/recordings/a.har.csv.gz"  # a comment stays'
    assert got[5] == 'latency_table = "/opt/h/profiles/pi4-latency.json"'
    assert got[7] == 'credentials_file = "/etc/har-agent/creds.toml"'  # absolute: kept
    assert got[8] == f'ca_file = "{tmp_path / "elsewhere" / "ca.pem"}"'  # outside the tree
    assert got[9:11] == ['client_key = ""', 'host = "../not-a-path"']  # empty; not a path key
    assert got[11] == f'client_cert = "{src / "certs" / "c.pem"}"'  # single quotes too
    assert got[12] == 'path = "~/rec.har.csv"'  # the loader expands ~: left alone
    # a folder of the checkout that the installer does not copy: the file stays where it is
    assert got[13] == f'latency_table = "{src / "build" / "lat.json"}"'


def _source_tree(tmp_path: Path) -> Path:
    """A checkout to install from: the real code and models, an empty profiles folder."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("agent", "systemd", "models", "recordings"):
        (src / name).symlink_to(ROOT / name)
    (src / "profiles").mkdir()
    return src


def test_a_path_the_rewrite_cannot_reach_stops_the_install(tmp_path: Path) -> None:
    """A dotted key (valid TOML the line rewrite does not know) would stay relative and point
    into /etc/har-agent: the install stops, naming it, and leaves no profile behind."""
    src = _source_tree(tmp_path)
    prof = src / "profiles" / "dotted.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    text = text.replace('name = "default"', 'name = "default"\npolicy.latency_table = "lat.json"')
    prof.write_text(text)
    root = tmp_path / "root"
    with pytest.raises(AgentError, match=r"could not open policy\.latency_table = lat\.json"):
        plan_install(source=src, profile=prof, root=root, system=False, venv=False)
    assert not root.exists()  # refused before the first step


def test_installed_profile_loads_with_every_path_in_place(tmp_path: Path) -> None:
    """The pi4 profile with a latency table beside it (as its comment suggests), installed
    under a root: the profile in /etc loads and names files that exist in the installed tree."""
    import shutil

    from agent.profile import load_profile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "profiles", src / "profiles")
    for name in ("agent", "systemd"):
        (src / name).symlink_to(ROOT / name)
    (src / "models").symlink_to(ROOT / "models")
    (src / "recordings").symlink_to(ROOT / "recordings")
    prof = src / "profiles" / "pi4.toml"
    (src / "profiles" / "pi4-latency.json").write_text("{}")
    text = prof.read_text()
    assert 'latency_table = ""' in text
    prof.write_text(text.replace('latency_table = ""', 'latency_table = "pi4-latency.json"'))
    root = tmp_path / "root"
    steps = plan_install(source=src, profile=prof, root=root, system=False, venv=False)
    for step in steps:
        if "systemctl" not in step.description:
            step.action()
    installed = root / "etc" / "har-agent" / "profile.toml"
    text = installed.read_text()
    assert 'latency_table = "/opt/har-agent/profiles/pi4-latency.json"' in text
    assert '"../' not in text
    for line in text.splitlines():
        if line.strip().startswith(("dir =", "latency_table =")):
            path = Path(line.split('"')[1])
            assert (root / path.relative_to("/")).exists(), line
    assert load_profile(installed).name


def test_missing_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="no such profile"):
        plan_install(source=ROOT, profile=tmp_path / "none.toml", root=tmp_path, system=False)


def test_cli_dry_run_lists_steps() -> None:
    result = CliRunner().invoke(
        app, ["service", "install", "--dry-run", "--profile", str(ROOT / "profiles" / "pi4.toml")]
    )
    assert result.exit_code == 0, result.output
    assert "[1/6] create the system user har-agent" in result.stdout
    assert "systemctl daemon-reload" in result.stdout


def _staged_install(root: Path, group: str) -> list[Step]:
    """The default profile's install below ``root``, its configuration given to ``group``."""
    profile = ROOT / "profiles" / "default.toml"
    return plan_install(
        source=ROOT, profile=profile, root=root, system=False, venv=False, group=group
    )


def test_configuration_is_given_to_the_service_group(tmp_path: Path) -> None:
    """systemd does not hand ConfigurationDirectory= to User=: the install must give the profile
    to the service's group, or the service cannot read it (tested with this process's group)."""
    import grp
    import os

    # as root, a group other than ours shows the ownership really changed
    gid = grp.getgrnam("daemon").gr_gid if os.geteuid() == 0 else os.getgid()
    mine = grp.getgrgid(gid).gr_name
    steps = _staged_install(tmp_path, group=mine)
    conf = tmp_path / "etc/har-agent/profile.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text("# the user's own, owner-only\n")
    conf.chmod(0o600)
    for step in steps:
        step.action()
    assert conf.read_text() == "# the user's own, owner-only\n"  # kept
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert conf.stat().st_gid == gid and conf.parent.stat().st_gid == gid
    assert oct(conf.parent.stat().st_mode & 0o777) == "0o750"


def test_unknown_group_is_one_clear_error(tmp_path: Path) -> None:
    steps = _staged_install(tmp_path, group="no-such-group-har")
    with pytest.raises(AgentError, match="cannot give it to group no-such-group-har"):
        for step in steps:
            step.action()


def test_paths_with_quotes_stay_valid_toml(tmp_path: Path) -> None:
    src = tmp_path / "o'brien's \"src\""
    text = "\n".join(['path = "../rec/Bob\'s.csv"', "dir = '../models'"])
    got = rewrite_profile(text, Path("/opt/h"), src / "profiles", src)
    import tomllib

    parsed = tomllib.loads(got)
    assert parsed == {"path": str(src / "rec" / "Bob's.csv"), "dir": "/opt/h/models"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('path = "~/rec.har.csv"', "source.path = ~/rec.har.csv"),
        ('path = "/home/pi/rec.har.csv"', "source.path = /home/pi/rec.har.csv"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_an_install_the_service_could_not_use_leaves_no_profile(
    tmp_path: Path, line: str, message: str
) -> None:
    """A path the service cannot open (a home folder: ProtectHome=yes, no home of its own), or a
    profile that is not even valid: the install is refused before its first step (no user, no
    copy, no venv, no /etc profile a re-run would keep), naming the user's file."""
    src = _source_tree(tmp_path)
    prof = src / "profiles" / "p.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    if "=" in line:
        text = re.sub(r'(?m)^path = "[^"]*"', line, text, count=1)
    else:
        text += line + "\n"
    prof.write_text(text)
    root = tmp_path / "root"
    with pytest.raises(AgentError, match=re.escape(message)) as refused:
        plan_install(source=src, profile=prof, root=root, system=False, venv=False)
    assert str(refused.value).startswith(f"{prof}: ")
    assert not root.exists()


def test_a_bad_profile_fails_the_dry_run_too(tmp_path: Path) -> None:
    """``--dry-run`` is where a user checks an install: a profile the service would refuse is one
    line and exit 1 there as well, before any step is listed."""
    prof = tmp_path / "bad.toml"
    prof.write_text(
        (ROOT / "profiles" / "pi4.toml").read_text().replace("[mqtt]", '[mqtt]\nhots = "a"', 1)
    )
    result = CliRunner().invoke(app, ["service", "install", "--dry-run", "--profile", str(prof)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"har-agent: error: {prof}: unknown key 'mqtt.hots'")


def test_an_existing_configuration_is_kept_and_the_step_says_so(tmp_path: Path) -> None:
    conf = tmp_path / "etc/har-agent/profile.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text("# the user's own\n")
    profile = ROOT / "profiles" / "pi4.toml"
    steps = plan_install(source=ROOT, profile=profile, root=tmp_path, system=False, venv=False)
    (step,) = [s for s in steps if "profile.toml" in s.description]
    assert step.description == (
        f"keep {conf} as it is ({profile} is neither installed nor checked: remove {conf} first "
        "to install it)"
    )
    step.action()
    assert conf.read_text() == "# the user's own\n"


def test_installed_files_are_not_writable_by_group_or_others(tmp_path: Path) -> None:
    """A checkout's group- or world-writable file must not become writable code the service
    runs: the copy drops those bits (symlinks are left alone)."""
    import os
    import stat

    source = tmp_path / "src"
    for name in ("agent", "profiles", "systemd"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    loose = source / "agent" / "cli.py"
    loose.chmod(0o666)
    (source / "agent").chmod(0o777)
    (source / "profiles" / "default.toml").chmod(0o664)
    os.symlink("cli.py", source / "agent" / "alias.py")
    old = os.umask(0)
    try:
        steps = plan_install(
            source=source,
            profile=source / "profiles" / "default.toml",
            prefix=Path("/opt/har-agent"),
            root=tmp_path / "root",
            system=False,
            venv=False,
        )
        for step in steps:
            if step.description.startswith("copy"):
                step.action()
    finally:
        os.umask(old)
    installed = tmp_path / "root/opt/har-agent"
    assert (installed / "agent" / "cli.py").is_file()
    writable = [
        p
        for p in [installed, *installed.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ]
    assert writable == []
    assert stat.S_IMODE((installed / "agent" / "cli.py").stat().st_mode) == 0o644


def test_a_kept_configuration_is_not_checked_either(tmp_path: Path) -> None:
    """An upgrade with /etc/har-agent/profile.toml in place does not install --profile, so a path
    the service could not open in it is no reason to refuse the upgrade."""
    conf = tmp_path / "etc/har-agent/profile.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text("# the user's own\n")
    prof = tmp_path / "mine.toml"
    text = (ROOT / "profiles" / "default.toml").read_text()
    prof.write_text(re.sub(r'(?m)^path = "[^"]*"', 'path = "~/rec.har.csv"', text, count=1))
    steps = plan_install(source=ROOT, profile=prof, root=tmp_path, system=False, venv=False)
    assert any(s.description.startswith(f"keep {conf}") for s in steps)
    conf.unlink()  # without the kept one, the same profile is refused
    with pytest.raises(AgentError, match="could not open source.path"):
        plan_install(source=ROOT, profile=prof, root=tmp_path, system=False, venv=False)


def test_a_dry_run_without_root_cannot_see_into_the_configuration_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an install /etc/har-agent is 0750 and the service group's: a user's dry run cannot
    tell whether a profile is there, and says so instead of a PermissionError traceback."""
    import os

    etc = tmp_path / "etc/har-agent"
    etc.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **k: False if Path(p) == etc else real_access(p, m, **k)
    )
    profile = ROOT / "profiles" / "pi4.toml"
    steps = plan_install(source=ROOT, profile=profile, root=tmp_path, system=False, venv=False)
    (step,) = [s for s in steps if "profile.toml" in s.description]
    assert step.description.endswith(f"(kept if it exists: {etc} needs root)")
    result = CliRunner().invoke(
        app, ["service", "install", "--dry-run", "--profile", str(profile), "--root", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "needs root" in result.output
