"""A model id the bank does not hold says so, and where the id came from: ``--force``,
``--model``, or the profile's file and key (as every other profile error does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError
from agent.manifest import load_manifest
from agent.model_choice import chosen_model_id
from agent.profile import load_profile
from tests.agent.helpers import DEFAULT_PROFILE, MODELS, RECORDINGS, ROOT, error_line

runner = CliRunner()
BANK = load_manifest(MODELS)


def _profile(tmp_path: Path, extra: str = "", model_id: str = "") -> Path:
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "choice-{os.getpid()}"')
    text = text.replace('\nid = ""', f'\nid = "{model_id}"')
    prof.write_text(text + extra)
    return prof


def _args(command: str, prof: Path, *extra: str) -> list[str]:
    args = [command, "--profile", str(prof), *extra]
    if command == "replay":
        args += [str(RECORDINGS[0]), "--no-mqtt"]
    return args


@pytest.mark.parametrize(
    ("command", "extra"), [("run", ()), ("replay", ()), ("replay", ("--fast",))]
)
def test_force_of_an_id_not_in_the_bank_says_unknown_model(
    tmp_path: Path, command: str, extra: tuple[str, ...]
) -> None:
    """Was: "--force 'nonexistent': not one of the policy's candidates (...)"."""
    res = runner.invoke(app, _args(command, _profile(tmp_path), "--force", "nonexistent", *extra))
    line = error_line(res)
    assert f"--force: unknown model 'nonexistent' in {MODELS} (known: " in line, line
    assert line.endswith("see `har-agent models list`)"), line
    assert "candidates" not in line


def test_force_of_a_member_that_is_not_a_candidate_keeps_the_candidates_message(
    tmp_path: Path,
) -> None:
    prof = _profile(tmp_path, '\n[policy]\ncandidates = ["wc-w1.00-r128", "wc-w0.50-r128"]\n')
    res = runner.invoke(app, _args("replay", prof, "--force", "cnn1d-base"))
    line = error_line(res)
    assert "--force 'cnn1d-base': not one of the policy's candidates" in line, line
    assert f"({prof}: policy.candidates, members with a latency figure)" in line, line


def test_an_unknown_candidate_names_the_profile_file(tmp_path: Path) -> None:
    prof = _profile(tmp_path, '\n[policy]\ncandidates = ["wc-w1.00-r128", "nope"]\n')
    res = runner.invoke(app, _args("replay", prof, "--policy", "adaptive"))
    assert f"{prof}: policy.candidates names members not in the bank: nope" in error_line(res)


def test_the_profiles_model_id_is_checked_naming_the_file_and_key(tmp_path: Path) -> None:
    prof = _profile(tmp_path, model_id="nope")
    with pytest.raises(ConfigError) as exc:
        chosen_model_id(load_profile(prof), BANK, None)
    assert str(exc.value).startswith(f"{prof}: model.id: unknown model 'nope' in {MODELS} (")
    assert str(exc.value).endswith("see `har-agent models list`)")


def test_the_model_option_is_checked_and_wins_over_the_profile(tmp_path: Path) -> None:
    prof = load_profile(_profile(tmp_path, model_id="nope"))
    assert chosen_model_id(prof, BANK, "cnn1d-base") == "cnn1d-base"
    with pytest.raises(ConfigError, match=r"^--model: unknown model 'x' in "):
        chosen_model_id(prof, BANK, "x")


def test_no_id_named_leaves_the_choice_to_the_default(tmp_path: Path) -> None:
    assert chosen_model_id(load_profile(_profile(tmp_path)), BANK, None) == ""
    named = load_profile(_profile(tmp_path, model_id="cnn1d-base"))
    assert chosen_model_id(named, BANK, None) == "cnn1d-base"


@pytest.mark.parametrize("extra", [(), ("--fast",)])
def test_a_replay_with_an_unknown_profile_model_id_names_the_file_and_key(
    tmp_path: Path, extra: tuple[str, ...]
) -> None:
    prof = _profile(tmp_path, model_id="nope")
    line = error_line(runner.invoke(app, _args("replay", prof, *extra)))
    assert f"{prof}: model.id: unknown model 'nope'" in line, line


def _with(entry_id: str, accuracy: object, macs: int, family: str = "width-resolution") -> object:
    import dataclasses

    base = BANK.get("wc-w0.50-r064")
    return dataclasses.replace(
        base, id=entry_id, family=family, macs=macs, metrics={**base.metrics, "accuracy": accuracy}
    )


@pytest.mark.parametrize(
    ("members", "chosen"),
    [
        ([("a", 0.97, 8_000_000), ("b", 0.97, 2_000_000), ("c", 0.96, 100)], "b"),  # the cheaper
        ([("b", 0.97, 2_000_000), ("a", 0.97, 8_000_000)], "b"),  # whatever the order
        ([("a", 0.98, 8_000_000), ("b", 0.97, 2_000_000)], "a"),  # accuracy first
        ([("a", "n/a", 10), ("b", 0.5, 10_000)], "b"),  # a non-number counts as 0
        ([("q", 0.99, 10, "int8"), ("a", 0.97, 10)], "a"),  # int8 only when named
    ],
)
def test_the_default_member_is_the_most_accurate_and_of_equals_the_cheapest(
    members: list[tuple], chosen: str
) -> None:
    from agent.manifest import Manifest
    from agent.wiring import pick_model

    bank = Manifest(MODELS, tuple(_with(*m) for m in members))  # type: ignore[arg-type]
    assert pick_model(bank, "").id == chosen
