"""Options of ``replay`` (and ``run``) that contradict each other are refused with one line,
not settled silently (``-m`` used to switch ``--force`` and ``--policy adaptive`` off)."""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError
from agent.publishers import MemoryPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import DEFAULT_PROFILE, RECORDINGS, ROOT, one_line_error, profile_for
from tests.conftest import closed_port

runner = CliRunner()
SMALL = "wc-w0.10-r032"
MID = "wc-w0.50-r064"


def _replay(*extra: str) -> Any:
    """A replay to stdout, unpaced (``--speed 0`` unless the test sets the pace itself)."""
    pace = [] if {"--fast", "--speed"} & set(extra) else ["--speed", "0"]
    return runner.invoke(app, ["replay", str(RECORDINGS[0]), "--no-mqtt", *pace, *extra])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["-m", SMALL, "--force", MID],
            f"-m {SMALL} and --force {MID} name different members: use one",
        ),
        (["--model", SMALL, "--force", SMALL], f"-m and --force both name {SMALL}: use one"),
        (
            ["-m", SMALL, "--policy", "adaptive"],
            "-m runs one member alone (static); it cannot be combined with --policy adaptive",
        ),
        (
            ["--force", MID, "--policy", "static"],
            "--force pins a member in the adaptive runtime; it cannot be combined with "
            "--policy static (-m ID runs one member alone)",
        ),
        (["--fast", "--speed", "2"], "--fast and --speed both set the pace: use one"),
        (["--fast", "--speed", "0"], "--fast and --speed both set the pace: use one"),
        (["--homeassistant"], "--homeassistant announces the replay on the MQTT broker"),
    ],
)
def test_replay_refuses_options_that_contradict_each_other(args: list[str], fragment: str) -> None:
    one_line_error(_replay(*args), fragment)


def test_run_refuses_force_with_a_static_policy(tmp_path: Path) -> None:
    """(The profile would run briefly and end on the closed port, were the options let by.)"""
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('id = "demo"', f'id = "conflict-{os.getpid()}"')
    text = text.replace("speed = 1.0", "speed = 0").replace("loop = true", "loop = false")
    with closed_port() as port:
        text = text.replace("port = 1883", f"port = {port}") + "\n[outbox]\nenabled = false\n"
        prof.write_text(text)
        res = runner.invoke(app, ["run", "-p", str(prof), "--force", MID, "--policy", "static"])
    one_line_error(
        res,
        "--force pins a member in the adaptive runtime; it cannot be combined with "
        "--policy static (model.id in the profile runs one member alone)",
    )


def test_the_wiring_refuses_a_model_with_the_adaptive_runtime() -> None:
    """The same rule where the agent is built (RunOptions are the CLI's flags)."""
    prof = profile_for()
    for opts in (
        RunOptions(model_id=SMALL, force_model=MID),
        RunOptions(model_id=SMALL, policy_mode="adaptive"),
    ):
        with pytest.raises(ConfigError, match="-m"):
            build_agent(prof, options=opts, publisher=MemoryPublisher())


def _configs(stdout: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.split(" ", 1)[1])
        for line in stdout.splitlines()
        if line.startswith("har/demo/config ")
    ]


def test_what_still_combines(tmp_path: Path) -> None:
    """-m on a profile whose policy is adaptive runs that member alone (the command line
    overrides the profile); -m with --policy static, and --force with --policy adaptive, agree."""
    prof = tmp_path / "adaptive.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text + '\n[policy]\nmode = "adaptive"\n')
    for args, model, mode in (
        (["-p", str(prof), "-m", SMALL], SMALL, "static"),
        (["-m", SMALL, "--policy", "static"], SMALL, "static"),
        (["--force", MID, "--policy", "adaptive"], MID, "adaptive"),
        (["--fast"], None, None),
    ):
        res = _replay(*args)
        assert res.exit_code == 0, (args, res.output)
        configs = _configs(res.stdout)
        assert configs, args
        if model is not None:
            assert configs[0]["model"] == model, args
            assert configs[0]["mode"] == mode, (args, configs[0])


def test_timing_implies_fast(tmp_path: Path, monkeypatch: Any) -> None:
    """--timing measures the agent's own time per window: the pacing sleep counted as
    recording decode ('overhead / raw inference 18701.9 %'), and at speed 1 it took minutes.
    It now replays unpaced, one hop per chunk, as --fast does, whatever the profile's pace."""
    import agent.wiring
    from agent.errors import AgentError

    seen: list[tuple[float | None, int | None, bool]] = []

    def capture(profile: Any, *, options: Any, **_: Any) -> Any:
        seen.append((options.speed, options.chunk_samples, options.record_timings))
        raise AgentError("stop here")

    monkeypatch.setattr(agent.wiring, "build_agent", capture)
    prof = tmp_path / "p.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace("speed = 1.0", "speed = 5.0"))
    for extra in (["--fast"], ["--timing"], ["--timing", "--fast"], ["--timing", "--speed", "0"]):
        runner.invoke(app, ["replay", str(RECORDINGS[0]), "--no-mqtt", "-p", str(prof), *extra])
    fast, *timed = seen
    assert fast[0] == 0.0 and fast[1] is not None and not fast[2]
    assert timed == [(0.0, fast[1], True)] * 3


def test_timing_refuses_a_pace() -> None:
    res = _replay("--timing", "--speed", "2")
    one_line_error(res, "--timing measures an unpaced replay (it implies --fast): drop --speed 2")


def test_timing_help_says_it_implies_fast() -> None:
    res = runner.invoke(app, ["replay", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "implies --fast" in " ".join(res.output.split())


def test_fast_replay_with_force_does_not_need_the_profiles_model(tmp_path: Path) -> None:
    """--fast sizes its chunks from the member that runs first: with --force, the pinned one,
    so a profile whose model.id names a member no longer in the bank (it is not used) works
    paced or not."""
    prof = tmp_path / "stale.toml"
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof.write_text(text.replace('id = ""', 'id = "wr-w1.00-r064"'))
    for pace in (["--fast"], ["--speed", "0"]):
        res = _replay("-p", str(prof), "--force", MID, *pace)
        assert res.exit_code == 0, (pace, res.output)
        assert _configs(res.stdout)[0]["model"] == MID
