"""Where the agent reports energy (the replay summary, the metrics topic's ``energy`` object),
the figure says what it covers, whether it includes idle power, over how long and at what average
power, and a span too short for the meter gives no figure and says why."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from agent import wiring
from agent.cli import app
from agent.energy import MeterKind
from agent.publishers import MemoryPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import DEFAULT_PROFILE, RECORDINGS, profile_for


class FiveWatts:
    """A measured meter that reads 5 W constant: the whole package, idle included."""

    name = "fake:package (measured)"
    kind: MeterKind = "measured"
    covers = "whole package"
    failure = None

    def __init__(self, resolution_s: float) -> None:
        self.resolution_s = resolution_s
        self._t0 = time.monotonic()

    def joules(self) -> float:
        return 5.0 * (time.monotonic() - self._t0)

    def close(self) -> None:
        pass


@pytest.fixture
def meter_every(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(resolution_s: float) -> None:
        monkeypatch.setattr(wiring, "open_meter", lambda *a, **k: FiveWatts(resolution_s))

    return use


def _metrics(resolution_s: float, meter_every: Any) -> list[dict[str, Any]]:
    meter_every(resolution_s)
    pub = MemoryPublisher()
    opts = RunOptions(speed=0, loop=False, monitor=False)
    build_agent(profile_for(), options=opts, publisher=pub).run()
    return [json.loads(p) for t, p, _, _ in pub.messages if t == "har/demo/metrics"]


def test_metrics_energy_says_what_it_covers(meter_every: Any) -> None:
    last = _metrics(0.0, meter_every)[-1]
    e = last["energy"]
    assert e["meter"] == "fake:package (measured)" and e["kind"] == "measured"
    assert e["covers"] == "whole package" and e["includes_idle"] is True
    assert e["seconds"] > 0 and e["watts"] == pytest.approx(5.0, rel=1e-2)
    assert e["joules_per_window"] == pytest.approx(
        e["watts"] * e["seconds"] / last["windows"], rel=1e-2
    )
    assert e["joules"] >= e["watts"] * e["seconds"] * 0.99
    assert e["note"] is None and e["failure"] is None


def test_metrics_energy_of_a_span_too_short_has_a_note(meter_every: Any) -> None:
    e = _metrics(1000.0, meter_every)[-1]["energy"]
    assert e["joules_per_window"] is None and e["watts"] is None and e["joules"] > 0
    assert re.fullmatch(
        r"the interval \(\d+\.\d s\) is too short for fake:package "
        r"\(one reading every 1000 s; it needs 10000 s\)",
        e["note"],
    )


def _replay_end(*extra: str) -> list[str]:
    """The lines a ``--fast --no-mqtt`` replay ends with on stderr: its summary's and after."""
    args = ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    (first,) = [i for i, ln in enumerate(err) if " windows in " in ln]
    assert " windows in " not in result.stdout
    return err[first:]


def _replay_energy_line(meter_every: Any, resolution_s: float) -> str:
    meter_every(resolution_s)
    summary, *energy = _replay_end()
    assert "energy" not in summary and len(energy) == 1, [summary, *energy]
    return energy[0]


def test_replay_summary_energy_is_labelled(meter_every: Any) -> None:
    """Was ``; 3.351 mJ per window by rapl:package-0 (measured)``: no word of the idle power
    in it, nor of the pace it depends on. On a line of its own after the summary (it was the
    middle of a line of some 300 characters)."""
    line = _replay_energy_line(meter_every, 0.0)
    assert re.fullmatch(
        r"energy: [0-9.]+ mJ per window, whole package incl\. idle: 5\.0\d W average over "
        r"\d+\.\d s \(measured by fake:package\)",
        line,
    ), line


def test_replay_summary_energy_of_a_run_too_short(meter_every: Any) -> None:
    line = _replay_energy_line(meter_every, 1000.0)
    assert re.fullmatch(
        r"energy not reported: the run \(\d+\.\d s\) is too short for fake:package "
        r"\(one reading every 1000 s; it needs 10000 s\)",
        line,
    ), line


def test_replay_ends_with_what_it_did_then_its_energy(
    meter_every: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two lines, what the run did first (windows, time, accuracy, what was not scored), then
    the energy; without a meter (``meter = "none"``) the first alone."""
    meter_every(0.0)
    with_energy = _replay_end("-m", "cnn1d-base")
    assert len(with_energy) == 2, with_energy
    run, energy = with_energy
    assert re.match(r"\d+ windows in [0-9.]+ m?s; accuracy \d+\.\d% on \d+ labelled windows; ", run)
    assert "mJ" not in run and not run.endswith(";")
    assert energy.startswith("energy: ") and " mJ per window, " in energy
    monkeypatch.setattr(wiring, "open_meter", lambda *a, **k: None)
    (alone,) = _replay_end("-m", "cnn1d-base")
    untimed = re.compile(r" in [0-9.]+ m?s;")
    assert untimed.sub("", alone) == untimed.sub("", run), (alone, run)
