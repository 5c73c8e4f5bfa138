"""The command lines of the model-factory commands (``tools.cli``'s shared argument types): an
empty path or list, a value out of range, each refused while parsing with one line in one style,
``PROG: error: argument --NAME: ... (see PROG --help)``, exit status 2, before any work."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tools.usage import usage_error
from tools import cli, import_hapt, train_baseline

pytest.importorskip("torch")
from tools.bank import build, distill  # noqa: E402

COMMANDS: dict[str, tuple[str, Any]] = {
    "import_hapt": ("python -m tools.import_hapt", import_hapt),
    "train_baseline": ("python -m tools.train_baseline", train_baseline),
    "build": ("python -m tools.bank.build", build),
    "distill": ("python -m tools.bank.distill", distill),
}


def _usage_error(command: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    prog, module = COMMANDS[command]
    parse: Callable[[list[str]], Any] = module.parse_args
    return usage_error(prog, parse, argv, capsys)


# finding 2: an empty path is not the current folder; an empty list is not "all"


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("import_hapt", "--out"),
        ("import_hapt", "--pickle"),
        ("train_baseline", "--out"),
        ("train_baseline", "--data"),
        ("build", "--out"),
        ("build", "--data"),
        ("distill", "--bank"),
        ("distill", "--data"),
    ],
)
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    command: str,
    option: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--out ""`` (an unset ``$OUT``) wrote a bank into the current folder."""
    monkeypatch.chdir(tmp_path)
    smoke = [] if command == "import_hapt" else ["--smoke"]
    err = _usage_error(command, [*smoke, f"{option}={value}"], capsys)
    # (an option with a second name is named by both: "argument --out/--bank: is empty")
    assert re.search(rf"argument {option}(/--[a-z]+)?: is empty", err), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--members", "--teacher"])
@pytest.mark.parametrize("value", ["", ",", " , "])
def test_distill_refuses_an_empty_member_list_rather_than_taking_all(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``distill --members ""`` distilled every member (about 15 min on the full bank)."""
    err = _usage_error("distill", ["--smoke", f"{option}={value}"], capsys)
    assert f"argument {option}: names nothing" in err


def test_member_lists_are_trimmed() -> None:
    args = distill.parse_args(["--members", " wc-a , wc-b,,wc-a", "--teacher", "wc-t,"])
    assert args.members == "wc-a,wc-b" and args.teacher == "wc-t"


# finding 4: values that break the run


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "x"])
def test_distill_lr_must_be_finite_and_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--lr inf`` trained to NaN weights and ended in a traceback after the training."""
    err = _usage_error("distill", ["--smoke", f"--lr={value}"], capsys)
    assert "argument --lr: " in err and (value in err)
    assert distill.parse_args(["--lr", "1e-3"]).lr == 1e-3


def test_distill_threads_above_the_cpus_warn_and_absurd_counts_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--threads 1000`` made a 2-CPU smoke run about 100x slower; the runtime's bench warns
    above the CPU count and takes at most 256."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert distill.parse_args(["--threads", "2"]).threads == 2
    assert capsys.readouterr().err == ""
    assert distill.parse_args(["--threads", "3"]).threads == 3
    err = capsys.readouterr().err
    assert err == (
        "warning: --threads 3 is more than the 2 CPUs here: the threads will wait for each other\n"
    )
    err = _usage_error("distill", ["--threads", "1000"], capsys)
    assert "argument --threads: must be at most 256 (got 1000)" in err
    err = _usage_error("distill", ["--threads", "0"], capsys)
    assert "argument --threads: must be at least 1 (got 0)" in err


# finding 14: one wording for the refusals of every command


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        ("build", ["--epochs", "0"], "argument --epochs: must be at least 1 (got 0)"),
        ("build", ["--epochs", "nan"], "argument --epochs: 'nan' is not an integer"),
        ("train_baseline", ["--epochs", "0"], "argument --epochs: must be at least 1 (got 0)"),
        ("distill", ["--epochs", "0"], "argument --epochs: must be at least 1 (got 0)"),
        ("distill", ["--epochs", "nan"], "argument --epochs: 'nan' is not an integer"),
        (
            "build",
            ["--kd-weight", "2"],
            "argument --kd-weight: must be at least 0 and at most 1 (got 2)",
        ),
        ("build", ["--kd-weight", "nan"], "argument --kd-weight: must be at least 0"),
        ("build", ["--distill-epochs", "-1"], "argument --distill-epochs: must be at least 0"),
        ("build", ["--crop-hop", "-4"], "argument --crop-hop: must be at least 0 (got -4)"),
        ("build", ["--crop-hop", "6"], "argument --crop-hop: must be a multiple of 4"),
        ("build", ["--widths", "0.05"], "argument --widths: 0.05 is below the column2d"),
        (
            "distill",
            ["--ensemble-width", "0"],
            "argument --ensemble-width: must be above 0 and at most 1 (got 0)",
        ),
        ("distill", ["--lr", "nan"], "argument --lr: must be a finite number above 0 (got nan)"),
        ("import_hapt", ["--experiments", "0"], "argument --experiments: must be within [1, 61]"),
        ("import_hapt", ["--experiments", "4,abc"], "argument --experiments: 'abc' is not an"),
    ],
)
def test_refusals_share_one_wording(
    command: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(command, argv, capsys)
    assert f": error: {message}" in err, err


# the shared types themselves


def test_shared_types() -> None:
    bad = argparse.ArgumentTypeError
    assert cli.path_arg("a/b") == Path("a/b") and cli.path_arg(".") == Path(".")
    with pytest.raises(bad, match="is empty"):
        cli.path_arg("")
    assert cli.positive_number("2e-3") == 2e-3
    for text in ("inf", "nan", "0", "-2", "1e400"):
        with pytest.raises(bad, match="finite number above 0"):
            cli.positive_number(text)
    assert cli.nonnegative_int("0") == 0 and cli.positive_int("1") == 1
    with pytest.raises(bad, match=r"must be at least 1 \(got 0\)"):
        cli.positive_int("0")
    with pytest.raises(bad, match=r"must be within \[1, 3\] \(got 4\)"):
        cli.int_in(1, 3)("4")
    assert cli.id_list("a, b ,a") == "a,b"
    with pytest.raises(bad, match="names nothing"):
        cli.id_list(" , ")
    assert [cli.plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert cli.plural(1, "entry", "entries") == "1 entry" and cli.plural(3, "x", "ys") == "3 ys"


def test_folder_problem_names_what_is_in_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.folder_problem(tmp_path) is None
    assert cli.folder_problem(tmp_path / "new" / "deeper") is None
    assert cli.folder_problem(afile) == "it is a file"
    assert cli.folder_problem(afile / "sub") == f"{afile} is a file"
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    assert cli.folder_problem(ro) == f"{ro} is read-only"
    assert cli.folder_problem(ro / "new") == f"{ro} is read-only"


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` reads as not writable (tests run as root, for whom chmod changes nothing)."""
    real = os.access

    def access(path: Any, mode: int, *a: Any, **k: Any) -> bool:
        if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)


def test_run_main_reports_a_command_error_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> None:
        raise cli.CommandError("it went wrong")

    def interrupted() -> None:
        raise KeyboardInterrupt

    assert cli.run_main(fails) == 1
    assert capsys.readouterr().err == "error: it went wrong\n"
    assert cli.run_main(interrupted) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_message_starts_its_own_line_after_an_open_progress_bar() -> None:
    """compress printed ``...0/3 [...]interrupted: ...`` on the line of the bar Ctrl-C left
    open: the bars are closed first."""
    import io

    from tqdm import tqdm

    out = io.StringIO()
    bar = tqdm(range(3), file=out, leave=False, desc="steps")
    next(iter(bar))
    real = sys.stderr
    sys.stderr = out
    try:
        cli.interrupted("interrupted: x was left as it was")
    finally:
        sys.stderr = real
    text = out.getvalue()
    assert text.endswith("\rinterrupted: x was left as it was\n"), repr(text)
    assert bar.disable  # closed


def test_run_main_cleans_up_on_sigterm_as_on_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM ended a tool at once (its staging folders left behind); under run_main it raises
    where Ctrl-C does, the same clean-up runs, exit status 143, and the handler is restored."""
    import signal
    import time

    before = signal.getsignal(signal.SIGTERM)
    cleaned: list[str] = []

    def body() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append("staging removed")

    assert cli.run_main(body) == 143
    assert cleaned == ["staging removed"]
    assert capsys.readouterr().err == "interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before
