"""The energy of a span of work: sampled meters read up to the moment asked, short spans and
failed meters report no figure and say why, every figure says what it covers, and RAPL is
polled often enough to see every wrap of its counter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent import energy_meters as em
from agent import energy_pmic as pm
from agent.clock import FakeClock
from agent.energy import EnergyCounter, open_meter
from agent.errors import MeterError
from agent.profile_tables import EnergyConfig
from tests.agent.test_energy import rapl_tree, set_uj

FIVE_WATTS = "  VDD_CORE_A current(7)=1.00000000A\n  VDD_CORE_V volt(15)=5.00000000V\n"


class Timeline:
    """A PMIC meter at 2 Hz (its default) reading a constant 5 W, on a fake clock: time moves
    in 0.05 s steps and the meter samples every 0.5 s, as its thread would."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.meter = pm.PmicMeter.open(
            lambda: FIVE_WATTS, clock=self.clock.monotonic, start=False
        )  # samples at t = 0
        self._ticks = 0

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.05)):
            self.clock.advance(0.05)
            self._ticks += 1
            if self._ticks % 10 == 0:
                self.meter.sample_once()


@pytest.mark.parametrize("seconds", [0.1, 0.3, 0.7, 1.2, 6.05])
def test_a_sampled_meter_reads_up_to_the_moment_asked(seconds: float) -> None:
    """Was: the integral stopped at the last sample, so a span read 0 % (0.1 s) to 165 %
    (0.3 s) of the energy; now 5 W x the span, whatever the span's ends fall on."""
    tl = Timeline()
    tl.run(0.2)
    counter = EnergyCounter(tl.meter)
    tl.run(seconds)
    assert counter.lap() == pytest.approx(5.0 * seconds)
    assert tl.meter.joules() == pytest.approx(5.0 * (0.2 + seconds))


def test_a_sampled_reading_never_goes_back() -> None:
    """The last power is carried on until the next sample: when that sample is lower, the
    reading holds instead of dropping."""
    clock = FakeClock()
    watts = iter([4.0, 0.0])
    meter = em.SampledMeter(
        "m", lambda: next(watts), sample_hz=1.0, clock=clock.monotonic, start=False
    )
    clock.advance(0.9)
    early = meter.joules()  # 4 W carried on: 3.6 J
    clock.advance(0.1)
    meter.sample_once()  # 4 -> 0 W over the second: 2 J by the trapezoid
    assert early == pytest.approx(3.6) and meter.joules() == pytest.approx(3.6)
    meter.close()


def test_a_span_too_short_for_the_meter_reports_no_figure() -> None:
    tl = Timeline()
    counter = EnergyCounter(tl.meter, clock=tl.clock.monotonic)
    tl.run(1.2)
    short = counter.span()
    assert short.joules == pytest.approx(6.0)  # still there for running totals
    assert short.seconds == pytest.approx(1.2)
    assert short.watts is None and short.per(3) is None
    assert short.reason == (
        "the span (1.2 s) is too short for pmic:rails (one reading every 0.5 s; it needs 5 s)"
    )
    assert short.summary(3) == (
        "not reported: the run (1.2 s) is too short for pmic:rails "
        "(one reading every 0.5 s; it needs 5 s)"
    )
    tl.run(6.0)
    span = counter.span()
    assert span.reason is None and span.seconds == pytest.approx(6.0)
    assert span.watts == pytest.approx(5.0) and span.per(4) == pytest.approx(7.5)
    assert span.includes_idle and span.kind == "measured" and span.covers == "PMIC rails"
    assert span.summary(4) == (
        "7500.0 mJ per window, PMIC rails incl. idle: 5.00 W average over 6.0 s "
        "(measured by pmic:rails)"
    )
    tl.meter.close()


def test_a_measured_figure_includes_idle_power_so_it_depends_on_the_pace(tmp_path: Path) -> None:
    """A 5 W package for 30 windows: in 2 s (a fast replay) or in 60 s (real time) the mJ per
    window differ 30-fold, the watts do not; the summary says the figure includes idle."""
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 262143328850)})
    clock = FakeClock()
    meter = em.RaplMeter.open(root, start=False)
    figures = []
    for seconds in (2.0, 60.0):
        counter = EnergyCounter(meter, clock=clock.monotonic)
        clock.advance(seconds)
        set_uj(root, "intel-rapl:0", meter.zones[0].last_uj + round(5e6 * seconds))
        figures.append(counter.span())
    fast, slow = figures
    assert fast.per(30) == pytest.approx(10 / 30) and slow.per(30) == pytest.approx(10.0)
    assert fast.watts == pytest.approx(5.0) and slow.watts == pytest.approx(5.0)
    assert fast.includes_idle and fast.covers == "whole package"
    assert fast.summary(30) == (
        "333.3 mJ per window, whole package incl. idle: 5.00 W average over 2.0 s "
        "(measured by rapl:package-0)"
    )


def test_the_estimate_excludes_idle_power() -> None:
    cpu = [0.0]
    clock = FakeClock()
    meter = open_meter(EnergyConfig(meter="estimate", core_w=1.0), cpu_time=lambda: cpu[0])
    assert meter is not None
    counter = EnergyCounter(meter, clock=clock.monotonic)
    clock.advance(4.0)
    cpu[0] = 0.5
    span = counter.span()
    assert not span.includes_idle and span.kind == "estimated"
    assert span.watts == pytest.approx(0.125) and span.per(100) == pytest.approx(0.005)
    assert span.summary(100) == (
        "5 mJ per window, this process's CPU work, no idle: 0.12 W average over 4.0 s "
        "(estimated by estimate:1 W/core x process CPU time)"
    )
    assert span.summary(0) == (
        "this process's CPU work, no idle: 0.12 W average over 4.0 s, no windows "
        "(estimated by estimate:1 W/core x process CPU time)"
    )


def test_a_failed_meter_gives_a_span_without_figures(tmp_path: Path) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 1 << 32)})
    meter = em.RaplMeter.open(root, start=False)
    counter = EnergyCounter(meter)
    (root / "intel-rapl:0" / "energy_uj").unlink()
    span = counter.span()
    assert span.joules is None and span.watts is None and span.per(5) is None
    assert span.reason is not None and span.reason.startswith("the meter rapl:package-0")
    assert "cannot read" in span.reason
    assert span.summary(5).startswith("not reported: the meter rapl:package-0 (measured) failed")


# -- RAPL: a counter that wraps several times within one span ---------------------------------

RANGE_UJ = 10_000_000  # a 10 J counter: 7 J steps wrap it at almost every step


def test_rapl_polls_see_every_wrap(tmp_path: Path) -> None:
    """Was: read only at the span's two ends, so of the four wraps in 42 J only one was
    undone (the span read 2 J)."""
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 1_000_000, RANGE_UJ)})
    meter = em.RaplMeter.open(root, start=False)
    counter = EnergyCounter(meter)
    uj = 1_000_000
    for _ in range(6):
        uj = (uj + 7_000_000) % RANGE_UJ
        set_uj(root, "intel-rapl:0", uj)
        meter.poll()  # what the meter's thread does every poll_s
    assert counter.lap() == pytest.approx(42.0)


def _wait_for_polls(meter: em.RaplMeter, n: int) -> None:
    deadline = time.monotonic() + 10.0
    while meter.polls < n:
        assert time.monotonic() < deadline, "the RAPL meter's thread did not poll"
        time.sleep(0.005)


def test_rapl_thread_polls_between_the_spans_ends(tmp_path: Path) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 1_000_000, RANGE_UJ)})
    meter = open_meter(EnergyConfig(meter="rapl"), powercap_root=root)
    assert isinstance(meter, em.RaplMeter) and meter.poll_s == 0.01
    counter = EnergyCounter(meter)
    uj = 1_000_000
    for _ in range(6):
        uj = (uj + 7_000_000) % RANGE_UJ
        set_uj(root, "intel-rapl:0", uj)
        _wait_for_polls(meter, meter.polls + 2)  # one whole poll after the change
    assert counter.lap() == pytest.approx(42.0)
    thread = meter._thread
    meter.close()
    assert thread is not None and not thread.is_alive()


@pytest.mark.parametrize(
    ("range_uj", "poll_s"),
    [
        (262143328850, 1.0),  # Intel: 262 kJ, hours to wrap
        (65532610987, 1.0),  # AMD: 65 kJ
        (1_000_000_000, 0.25),  # 1 kJ: a second at 1 kW, polled 4 times in it
        (RANGE_UJ, 0.01),  # the floor
    ],
)
def test_rapl_poll_period(range_uj: int, poll_s: float) -> None:
    zone = em.RaplZone("package-0", Path("/nonexistent"), range_uj, 0)
    assert em.rapl_poll_s([zone]) == pytest.approx(poll_s)


def test_rapl_thread_stops_on_a_failure(tmp_path: Path) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, RANGE_UJ)})
    meter = em.RaplMeter.open(root)
    (root / "intel-rapl:0" / "energy_uj").unlink()
    deadline = time.monotonic() + 10.0
    while meter.failure is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    with pytest.raises(MeterError, match="cannot read"):
        meter.joules()
    thread = meter._thread
    meter.close()
    assert thread is not None and not thread.is_alive()
