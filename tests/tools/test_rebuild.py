"""``python -m tools.bank.rebuild``: the one command that rebuilds the bank from the dataset.

The plan is checked as a table of cases; the whole chain runs once in smoke mode (real
subprocesses, 4 subjects, about 30 s) into a temporary folder."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

pytest.importorskip("torch")

from agent.manifest import load_manifest  # noqa: E402
from tools.bank import compress, rebuild  # noqa: E402
from tools.bank.rebuild import Options, plan  # noqa: E402

pytestmark = pytest.mark.tools


def _by_name(steps: list[rebuild.Step]) -> dict[str, tuple[str, ...]]:
    return {s.name: s.args for s in steps}


def test_the_default_plan_is_the_recorded_rebuild_chain() -> None:
    """What the command runs is what docs/model-bank.md "Rebuild" and the manifests' ``rebuild``
    field say: the same modules in the same order, the selection bank deciding int8."""
    steps = plan(Options(), imported=False, has_independent=False)
    chain = [part.split()[2] for part in compress.REBUILD.split(" && ")]
    assert [s.module for s in steps] == chain
    args = _by_name(steps)
    assert "--refit" not in args["sel-bank"] and "--no-refit" in args["sel-base"]
    assert "--refit" in args["bank"]
    i = args["bank"].index("--int8-decide-on")
    assert args["bank"][i + 1] == "build/bank-sel/compress-report.json"
    assert all("--compress" in args[n] for n in ("sel-bank", "bank"))
    assert args["import"] == ("--out", "data/hapt")
    # every training step reads the imported recordings, with the same seed
    for name in ("sel-base", "sel-bank", "base", "bank"):
        a = args[name]
        assert a[a.index("--data") + 1] == "data/hapt" and a[a.index("--seed") + 1] == "0"
    assert args["report"] == ("--models", "models")  # docs/model-bank.md describes models/


@pytest.mark.parametrize(
    ("opts", "imported", "has_independent", "names"),
    [
        (Options(), True, False, ["sel-base", "sel-bank", "base", "bank", "paced", "report"]),
        (
            Options(),
            False,
            True,
            ["import", "sel-base", "sel-bank", "base", "bank", "paced", "report", "recompare"],
        ),
        (
            Options(data="pickle"),
            False,
            False,
            ["sel-base", "sel-bank", "base", "bank", "paced", "report"],
        ),
        (
            Options(smoke=True),
            False,
            False,
            ["sel-base", "sel-bank", "base", "bank", "paced", "report"],
        ),
    ],
)
def test_which_steps_run(
    opts: Options, imported: bool, has_independent: bool, names: list[str]
) -> None:
    assert [s.name for s in plan(opts, imported, has_independent)] == names


def test_options_reach_every_step() -> None:
    opts = Options(bank=Path("b"), selection=Path("s"), data="pickle", seed=7, epochs=3)
    args = _by_name(plan(opts, imported=True, has_independent=True))
    for name in ("sel-base", "sel-bank", "base", "bank"):
        a = args[name]
        assert a[a.index("--seed") + 1] == "7" and a[a.index("--data") + 1] == "pickle"
    assert args["sel-bank"][args["sel-bank"].index("--epochs") + 1] == "3"
    assert args["bank"][args["bank"].index("--int8-decide-on") + 1] == str(
        Path("s/compress-report.json")
    )
    # a bank other than models/ gets its report beside it, never over docs/
    assert args["report"] == (
        "--models",
        "b",
        "--doc",
        str(Path("b/model-bank.md")),
        "--img",
        str(Path("b/img")),
    )
    assert args["recompare"] == (
        "--bank",
        "b",
        "--recompare",
        str(Path("b/independent-report.json")),
    )


def test_dry_run_prints_the_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Nothing runs; from ``--from`` on. (A bank without independent-report.json: no recompare.)"""
    bank, sel = str(tmp_path / "b"), str(tmp_path / "s")
    argv = ["--dry-run", "--data", "pickle", "--from", "bank", "--bank", bank, "--selection", sel]
    assert rebuild.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/3] bank: python -m tools.bank.build --arch column2d --epochs 40")
    assert [line.split(":")[0] for line in out] == ["[1/3] bank", "[2/3] paced", "[3/3] report"]
    assert not (tmp_path / "b").exists()


def test_bad_usage_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        rebuild.main(["--bank", str(tmp_path), "--selection", str(tmp_path)])
    assert exc.value.code == 2
    assert "--bank and --selection must be different folders" in capsys.readouterr().err
    # a step this rebuild does not have (the data is there: no import)
    args = ["--smoke", "--dry-run", "--from", "recompare"]
    assert rebuild.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "error: --from recompare: not a step of this rebuild (its steps: sel-base,"
    )
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], "python -m tools.bank.rebuild --from bank"),
        (["--from", "paced"], "python -m tools.bank.rebuild --from bank"),
        (
            ["--seed", "3", "--from=sel-bank", "--bank", "my bank"],
            "python -m tools.bank.rebuild --seed 3 --bank 'my bank' --from bank",
        ),
    ],
)
def test_the_resume_command_keeps_the_options(argv: list[str], command: str) -> None:
    """Resuming with other options than the run had would mix two banks' steps."""
    args = rebuild.parse_args(argv)
    step = next(s for s in plan(Options(), True, False) if s.name == "bank")
    assert rebuild.resume(args, step) == command


def test_a_killed_step_is_named_with_its_signal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step the kernel killed (out of memory: SIGKILL) is said so, not as exit status -9."""
    monkeypatch.setattr(rebuild, "_run_step", lambda step, header, again: -9)
    argv = ["--smoke", "--bank", str(tmp_path / "b"), "--selection", str(tmp_path / "s")]
    assert rebuild.main(argv) == 1
    err = capsys.readouterr().err
    assert "error: step sel-base (python -m tools.train_baseline" in err
    assert ") was killed by SIGKILL; resume with " in err


def test_a_failing_step_stops_the_chain_and_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bank, sel = tmp_path / "bank", tmp_path / "sel"
    argv = [
        "--smoke",
        "--bank",
        str(bank),
        "--selection",
        str(sel),
        "--data",
        str(tmp_path / "nope"),
    ]
    assert rebuild.main(argv) == 1
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("error: step sel-base (python -m tools.train_baseline --no-refit")
    assert last.endswith(
        "failed with exit status 1; resume with "
        + shlex.join(["python", "-m", "tools.bank.rebuild", *argv, "--from", "sel-base"])
    )
    assert "[2/6]" not in captured.out  # nothing after it ran
    assert not bank.exists()


@pytest.fixture(scope="module")
def smoke_rebuild(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("rebuild")
    bank, sel = root / "bank", root / "sel"
    rc = rebuild.main(["--smoke", "--bank", str(bank), "--selection", str(sel)])
    return bank, sel, rc


def test_smoke_rebuild_makes_a_whole_bank(smoke_rebuild: tuple[Path, Path, int]) -> None:
    bank, sel, rc = smoke_rebuild
    assert rc == 0
    manifest = load_manifest(bank)
    families = {m.family for m in manifest.models}
    assert {"baseline", "width-resolution", "pruned", "int8"} <= families, families
    # the bank's int8 variants were decided on the selection bank's held-out trials
    trials = json.loads((bank / "compress-report.json").read_text())["int8"]
    decided = str(sel / "compress-report.json")
    assert trials and all(decided in t["why"] for t in trials)
    assert load_manifest(sel).models  # the selection bank is there too
    assert all("paced_p50" in m.latency_ms for m in manifest.models)  # the paced step ran
    assert (bank / "model-bank.md").is_file() and any((bank / "img").glob("*.png"))
    refit = manifest.get("wc-w1.00-r128").provenance
    assert refit["seed"] == 0


@pytest.mark.parametrize(
    ("signame", "delay", "group", "status"),
    [
        ("SIGTERM", 0.0, False, 143),  # while the step is being started
        ("SIGTERM", 1.0, False, 143),  # while it runs: passed on to it
        ("SIGINT", 1.0, True, 130),  # Ctrl-C in a terminal: the whole process group gets it
    ],
)
def test_a_stop_ends_the_step_and_says_how_to_resume(
    tmp_path: Path, signame: str, delay: float, group: bool, status: int
) -> None:
    """A stop reaches the running step (which cleans up as on its own) and the command ends with
    the signal's status and the ``--from`` that resumes there; no step runs on after it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    bank, sel = tmp_path / "bank", tmp_path / "sel"
    argv = ["--smoke", "--bank", str(bank), "--selection", str(sel)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.bank.rebuild", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed just before the step starts
    assert first.startswith("[1/6] sel-base: ")
    time.sleep(delay)
    sig = getattr(signal, signame)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, (out, err)
    again = shlex.join(["python", "-m", "tools.bank.rebuild", *argv, "--from", "sel-base"])
    assert f"step sel-base interrupted; resume with {again}" in err
    assert "[2/6]" not in out
    assert not (sel / "manifest.json").exists()  # the step did not finish
    with pytest.raises(ProcessLookupError):  # nothing of the group runs on
        os.killpg(proc.pid, 0)
