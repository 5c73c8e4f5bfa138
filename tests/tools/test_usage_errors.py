"""The command lines of compress, independent, paced_latency, report, load_experiment and loadgen:
a usage error is one line, ``PROG: error: ... (see PROG --help)``, exit status 2, as in the
other model-factory commands (tests/tools/test_cli.py); an empty path or list is one, not the
current folder or "all"; and options that contradict each other are refused, not ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torch")

from tests.tools.usage import usage_error  # noqa: E402
from tools import load_experiment, loadgen  # noqa: E402
from tools.bank import compress, independent, paced_latency, report  # noqa: E402

pytestmark = pytest.mark.tools

COMMANDS: dict[str, tuple[str, Callable[[list[str]], Any]]] = {
    "compress": ("python -m tools.bank.compress", compress.parse_args),
    "independent": ("python -m tools.bank.independent", independent.parse_args),
    "paced_latency": ("python -m tools.bank.paced_latency", paced_latency.parse_args),
    "report": ("python -m tools.bank.report", report.parse_args),
    "load_experiment": ("python -m tools.load_experiment", load_experiment.parse_args),
    "loadgen": ("python -m tools.loadgen", loadgen.main),
}


def _usage_error(command: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    prog, parse = COMMANDS[command]
    return usage_error(prog, parse, argv, capsys)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("compress", "--out"),
        ("compress", "--parent"),
        ("compress", "--int8-only"),
        ("independent", "--bank"),
        ("independent", "--out"),
        ("independent", "--report"),
        ("independent", "--configs"),
        ("independent", "--reference"),
        ("independent", "--recompare"),
        ("paced_latency", "--bank"),
        ("report", "--models"),
        ("report", "--doc"),
        ("report", "--img"),
        ("load_experiment", "--recording"),
        ("load_experiment", "--profile"),
        ("load_experiment", "--json"),
        ("load_experiment", "--plot"),
    ],
)
def test_an_empty_value_is_a_usage_error(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out ""`` (an unset variable) was the current folder; ``--configs ""`` all of them."""
    err = _usage_error(command, [f"{option}="], capsys)
    assert f"argument {option}: " in err or f"argument {option}/--bank: " in err, err


@pytest.mark.parametrize(
    ("command", "argv", "why"),
    [
        ("compress", ["--no-prune", "--no-quantize"], "leave nothing to do"),
        ("compress", ["--no-quantize", "--int8-only", "wr-w1.00-r128"], "not allowed with"),
        ("independent", ["--recompare", "r.json", "--smoke"], "--smoke cannot be used with it"),
        ("paced_latency", ["--gap-ms", "-1"], "--gap-ms must be within"),
        ("report", ["--rounds", "0"], "argument --rounds: must be at least 1 (got 0)"),
        ("load_experiment", ["--modes", "fastest"], "--modes: unknown mode"),
        ("loadgen", ["1:x"], "trace part '1:x'"),
    ],
)
def test_a_usage_error_is_one_line(
    command: str, argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were argparse's usage block, then the error."""
    assert why in _usage_error(command, argv, capsys)


@pytest.mark.parametrize(
    ("command", "argv", "dest"),
    [
        ("compress", ["--bank", "/tmp/some-bank"], "out"),
        ("report", ["--bank", "/tmp/some-bank"], "models"),
    ],
)
def test_the_bank_folder_is_also_named_bank(command: str, argv: list[str], dest: str) -> None:
    """compress and report take ``--bank`` as distill and paced_latency do (their ``--out`` and
    ``--models`` stay)."""
    _, parse = COMMANDS[command]
    assert str(getattr(parse(argv), dest)) == "/tmp/some-bank"
