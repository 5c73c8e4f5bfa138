"""Paths from a profile, as messages show them: ``/x/models``, not ``/x/profiles/../models``,
without changing which file a path names when symbolic links are involved; and the unknown
model error's short hint at the bank's ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ModelError
from agent.manifest import known_ids, load_manifest
from agent.profile import load_profile, parse_profile
from tests.agent.helpers import DEFAULT_PROFILE, MODELS, RECORDINGS, ROOT, error_line

MINIMAL = 'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'


def _with_model_dir(folder: Path, model_dir: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.toml"
    path.write_text(MINIMAL + f'[model]\ndir = "{model_dir}"\n')
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../models", "models"),
        ("../../models", "../models"),  # above the tmp folder: still from the profile's folder
        ("./models", "profiles/models"),
        ("models/../bank", "profiles/models/../bank"),  # kept as written (see below)
        ("", "profiles"),
    ],
)
def test_leading_dot_dots_are_applied_to_the_profiles_folder(
    tmp_path: Path, value: str, expected: str
) -> None:
    prof = load_profile(_with_model_dir(tmp_path / "profiles", value))
    got = prof.resolve(prof.model.dir)
    if expected.startswith("../"):
        assert got == tmp_path.parent / expected[3:]
    else:
        assert got == tmp_path / expected
    assert os.path.realpath(got) == os.path.realpath(tmp_path / "profiles" / value)


def test_absolute_and_home_paths_are_kept(tmp_path: Path) -> None:
    prof = parse_profile(MINIMAL, "x.toml", tmp_path)
    assert prof.resolve("/srv/a/../b") == Path("/srv/a/../b")
    assert prof.resolve("~/models") == Path.home() / "models"


def test_a_profile_reached_through_a_symlink_resolves_from_its_real_folder(
    tmp_path: Path,
) -> None:
    """``/etc/har-agent -> /opt/har-agent/etc``: ``..`` from the profile's folder means the real
    folder's parent, as the kernel sees it (a lexical normpath of the link path would not)."""
    real = tmp_path / "opt" / "etc"
    _with_model_dir(real, "../models")
    (tmp_path / "link").symlink_to(real)
    prof = load_profile(tmp_path / "link" / "p.toml")
    assert prof.resolve(prof.model.dir) == tmp_path / "opt" / "models"


def test_a_dot_dot_after_a_symlink_in_the_path_keeps_the_kernels_meaning(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "f").write_text("the kernel's f")
    (tmp_path / "f").write_text("normpath's f")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "b")
    prof = parse_profile(MINIMAL, "x.toml", tmp_path)
    assert prof.resolve("link/../f").read_text() == "the kernel's f"


def test_a_symlink_the_profile_names_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "bank-v3").mkdir()
    (tmp_path / "models").symlink_to(tmp_path / "bank-v3")
    prof = load_profile(_with_model_dir(tmp_path / "profiles", "../models"))
    assert prof.resolve(prof.model.dir) == tmp_path / "models"


def test_messages_show_the_clean_path(tmp_path: Path) -> None:
    """Was ``model 'nope' is not in /tmp/x/profiles/../models/manifest.json (known: <all 29>)``."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "models").symlink_to(MODELS)
    (tmp_path / "recordings").symlink_to(ROOT / "recordings")
    prof = tmp_path / "profiles" / "p.toml"
    prof.write_text(DEFAULT_PROFILE.read_text())
    recording = tmp_path / "recordings" / RECORDINGS[0].name
    args = ["replay", str(recording), "--profile", str(prof), "--no-mqtt", "--model", "nope"]
    res = CliRunner().invoke(app, args)
    line = error_line(res)
    assert "'nope'" in line and f" {tmp_path}/models" in line, line
    assert "/../" not in line
    ids = [m.id for m in load_manifest(MODELS).models]
    assert f"... {len(ids)} in all; see `har-agent models list`)" in line, line
    assert ids[-1] not in line  # not every id: a bank has dozens


def test_the_unknown_model_hint_is_short() -> None:
    manifest = load_manifest(MODELS)
    with pytest.raises(ModelError) as exc:
        manifest.get("nope")
    assert len(str(exc.value)) < 200 + len(str(MODELS))
    assert known_ids(["a", "b"]) == "known: a, b; see `har-agent models list`"
    assert known_ids(["a", "b", "c", "d"]) == (
        "known: a, b, c, ... 4 in all; see `har-agent models list`"
    )
    assert known_ids([]) == "it lists no models"
