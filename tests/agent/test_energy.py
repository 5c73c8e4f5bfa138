"""Energy meters: integration arithmetic, RAPL counters, PMIC output, the estimate, the INA meter
on the emulated I2C bus, and how ``open_meter`` chooses."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import energy_meters as em
from agent import energy_pmic as pm
from agent.clock import FakeClock
from agent.energy import EnergyCounter, PowerIntegrator, open_meter, wrapped_delta
from agent.errors import MeterError, SensorNotFoundError, SensorReadError
from agent.profile_tables import EnergyConfig
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.ina219_model import Ina219Model, Ina260Model, constant

# -- trapezoid integration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "joules"),
    [
        ([], 0.0),
        ([(0.0, 5.0)], 0.0),  # one sample: no span yet
        ([(0.0, 2.0), (1.0, 2.0)], 2.0),  # constant 2 W for 1 s
        ([(0.0, 0.0), (2.0, 2.0)], 2.0),  # a ramp 0 -> 2 W over 2 s
        ([(0.0, 1.0), (1.0, 1.0), (1.0, 3.0), (2.0, 3.0)], 4.0),  # a step at t = 1 (two samples)
        ([(0.0, 1.0), (1.0, 1.0), (2.0, 3.0), (3.0, 3.0)], 1.0 + 2.0 + 3.0),  # sampled step
        ([(10.0, 4.0), (10.5, 2.0), (11.0, 0.0)], 1.5 + 0.5),
    ],
)
def test_trapezoid(samples: list[tuple[float, float]], joules: float) -> None:
    integ = PowerIntegrator()
    for t, w in samples:
        integ.add(t, w)
    assert integ.joules == pytest.approx(joules)
    assert integ.samples == len(samples)
    assert integ.span_s == pytest.approx(samples[-1][0] - samples[0][0] if samples else 0.0)


def test_trapezoid_refuses_time_going_back() -> None:
    integ = PowerIntegrator()
    integ.add(1.0, 1.0)
    with pytest.raises(ValueError, match="back in time"):
        integ.add(0.5, 1.0)


@pytest.mark.parametrize(
    ("prev", "cur", "rng", "delta"),
    [
        (100, 250, 1000, 150),
        (100, 100, 1000, 0),
        (900, 50, 1000, 150),  # wrapped once
        (0, 999, 1000, 999),
        (262143328850 - 10, 5, 262143328850, 15),  # a real max_energy_range_uj
    ],
)
def test_wrapped_delta(prev: int, cur: int, rng: int, delta: int) -> None:
    assert wrapped_delta(prev, cur, rng) == delta


# -- a sampled meter driven by a fake clock ---------------------------------------------------


def scripted(clock: FakeClock, steps: list[float | Exception]) -> Callable[[], float]:
    """A power reader that returns (or raises) the next scripted value."""
    it: Iterator[float | Exception] = iter(steps)

    def read() -> float:
        value = next(it)
        if isinstance(value, Exception):
            raise value
        return value

    return read


def test_sampled_meter_integrates_known_power_steps() -> None:
    clock = FakeClock()
    # 1 W for 2 s, then 3 W: samples each 0.5 s
    steps: list[float | Exception] = [1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    meter = em.SampledMeter(
        "test", scripted(clock, steps), sample_hz=2.0, clock=clock.monotonic, start=False
    )
    for _ in steps[1:]:
        clock.advance(0.5)
        meter.sample_once()
    # 2 s at 1 W, the 0.5 s ramp 1 -> 3 W (1 J), 1 s at 3 W
    assert meter.joules() == pytest.approx(2.0 + 1.0 + 3.0)
    assert meter.kind == "measured" and meter.resolution_s == 0.5
    meter.close()


def test_sampled_meter_bridges_a_gap_and_fails_after_repeated_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    err = SensorReadError("I2C bus 1, address 0x40: reading the INA219 failed: EIO")
    steps: list[float | Exception] = [2.0, err, err, 2.0, 2.0, *([err] * 5)]
    meter = em.SampledMeter(
        "ina", scripted(clock, steps), sample_hz=1.0, clock=clock.monotonic, start=False
    )
    counter = EnergyCounter(meter)
    with caplog.at_level(logging.INFO, logger="agent"):
        for _ in range(4):
            clock.advance(1.0)
            meter.sample_once()
        # the two failed reads were bridged: 2 W over 4 s
        assert meter.joules() == pytest.approx(8.0)
        assert counter.lap() == pytest.approx(8.0)
        assert meter.failure is None
        for _ in range(5):
            clock.advance(1.0)
            meter.sample_once()
        assert meter.failure is not None and "5 readings in a row failed" in meter.failure
        with pytest.raises(MeterError, match="EIO"):
            meter.joules()
        assert counter.lap() is None
        assert counter.lap() is None
    said = [(r.name, r.levelno) for r in caplog.records if r.levelno >= logging.WARNING]
    # the meter: the first gap, the start of the fatal run, the failure when it happens; the
    # counter reading the failed meter adds nothing (it said so twice, at different times)
    meters = "agent.energy_meters"
    assert said == [(meters, logging.WARNING)] * 2 + [(meters, logging.ERROR)]
    assert any("readings back" in r.getMessage() for r in caplog.records)
    meter.close()


def test_energy_counter_laps() -> None:
    clock = FakeClock()
    meter = em.SampledMeter(
        "m",
        scripted(clock, [1.0, 1.0, 1.0, 5.0]),
        sample_hz=1.0,
        clock=clock.monotonic,
        start=False,
    )
    counter = EnergyCounter(meter)
    laps = []
    for _ in range(3):
        clock.advance(1.0)
        meter.sample_once()
        laps.append(counter.lap())
    assert laps == pytest.approx([1.0, 1.0, 3.0])


# -- RAPL --------------------------------------------------------------------------------------


def rapl_tree(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """``zones``: directory name -> (name, energy_uj, max_energy_range_uj)."""
    for d, (name, uj, rng) in zones.items():
        z = root / d
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{uj}\n")
        (z / "max_energy_range_uj").write_text(f"{rng}\n")
    return root


def set_uj(root: Path, zone: str, uj: int) -> None:
    """Change a counter at once (the meter's thread may read it at any moment)."""
    tmp = root / zone / "energy_uj.new"
    tmp.write_text(f"{uj}\n")
    os.replace(tmp, root / zone / "energy_uj")


def test_rapl_sums_packages_and_undoes_wraparound(tmp_path: Path) -> None:
    root = rapl_tree(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 1_000_000, 10_000_000),
            "intel-rapl:0:0": ("core", 500, 10_000_000),  # inside package 0: not added
            "intel-rapl:1": ("package-1", 9_000_000, 10_000_000),
        },
    )
    meter = open_meter(EnergyConfig(meter="rapl"), powercap_root=root)
    assert isinstance(meter, em.RaplMeter)
    assert meter.name == "rapl:package-0+package-1 (measured)" and meter.kind == "measured"
    assert meter.joules() == 0.0
    set_uj(root, "intel-rapl:0", 3_500_000)  # +2.5 J
    set_uj(root, "intel-rapl:1", 1_000_000)  # wrapped: +2.0 J
    set_uj(root, "intel-rapl:0:0", 9_999_999)
    assert meter.joules() == pytest.approx(4.5)
    set_uj(root, "intel-rapl:0", 3_600_000)
    assert meter.joules() == pytest.approx(4.6)
    meter.close()


def test_rapl_prefers_the_platform_zone(tmp_path: Path) -> None:
    root = rapl_tree(
        tmp_path,
        {"intel-rapl:0": ("package-0", 0, 1 << 32), "intel-rapl:1": ("psys", 0, 1 << 32)},
    )
    meter = em.RaplMeter.open(root)
    assert meter.name == "rapl:psys (measured)" and meter.covers == "whole platform"
    meter.close()


def test_rapl_unreadable_counters_are_not_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 1, 1 << 32)})
    real = em._read_int

    def guarded(path: Path) -> int:  # what a non-root user meets since Linux 5.10
        if path.name == "energy_uj":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(em, "_read_int", guarded)
    with pytest.raises(MeterError, match="readable by root only"):
        open_meter(EnergyConfig(meter="rapl"), powercap_root=root)


def test_rapl_absent(tmp_path: Path) -> None:
    with pytest.raises(MeterError, match="does not exist"):
        em.RaplMeter.open(tmp_path / "nope")
    with pytest.raises(MeterError, match="no RAPL package zones"):
        em.RaplMeter.open(tmp_path)


def test_rapl_counter_vanishing_fails_the_meter(tmp_path: Path) -> None:
    root = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 1, 1 << 32)})
    meter = em.RaplMeter.open(root)
    (root / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(MeterError, match="cannot read"):
        meter.joules()
    assert meter.failure is not None
    meter.close()


# -- Raspberry Pi 5 PMIC -----------------------------------------------------------------------

# The layout of `vcgencmd pmic_read_adc` on a Raspberry Pi 5 (firmware 2024/2025): currents first,
# then voltages, right-aligned names, ADC channel numbers in brackets that differ between a rail's
# current and its voltage, and two voltage-only rails (EXT5V, BATT). Values are our own.
PMIC_SAMPLE = """\
 3V7_WL_SW_A current(0)=0.01024560A
   3V3_SYS_A current(1)=0.10989000A
   1V8_SYS_A current(2)=0.19536000A
  DDR_VDD2_A current(3)=0.02930400A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.16117200A
    0V8_SW_A current(6)=0.32234400A
  VDD_CORE_A current(7)=1.20000000A
   3V3_DAC_A current(17)=0.00012210A
   3V3_ADC_A current(18)=0.00024420A
   0V8_AON_A current(16)=0.00427350A
      HDMI_A current(22)=0.00000000A
 3V7_WL_SW_V volt(8)=3.70000000V
   3V3_SYS_V volt(9)=3.30000000V
   1V8_SYS_V volt(10)=1.80000000V
  DDR_VDD2_V volt(11)=1.10000000V
  DDR_VDDQ_V volt(12)=0.60000000V
   1V1_SYS_V volt(13)=1.10000000V
    0V8_SW_V volt(14)=0.80000000V
  VDD_CORE_V volt(15)=0.80000000V
   3V3_DAC_V volt(20)=3.30000000V
   3V3_ADC_V volt(21)=3.30000000V
   0V8_AON_V volt(19)=0.80000000V
      HDMI_V volt(23)=5.10000000V
     EXT5V_V volt(24)=5.10000000V
      BATT_V volt(25)=0.00000000V
"""


def test_pmic_parse_pairs_rails_by_name() -> None:
    rails = pm.parse_pmic_adc(PMIC_SAMPLE)
    assert len(rails) == 12
    assert "EXT5V" not in rails and "BATT" not in rails  # voltage only: no power
    assert rails["VDD_CORE"] == (0.8, 1.2)
    assert rails["3V3_SYS"] == (3.3, 0.10989)
    expected = sum(v * a for v, a in rails.values())
    assert pm.pmic_watts(PMIC_SAMPLE) == pytest.approx(expected)
    assert expected == pytest.approx(
        3.7 * 0.0102456
        + 3.3 * 0.10989
        + 1.8 * 0.19536
        + 1.1 * 0.029304
        + 1.1 * 0.161172
        + 0.8 * 0.322344
        + 0.8 * 1.2
        + 3.3 * 0.0001221
        + 3.3 * 0.0002442
        + 0.8 * 0.0042735
    )


@pytest.mark.parametrize(
    "text",
    ["", 'error=1 error_msg="Command not registered"\n', "   EXT5V_V volt(24)=5.10000000V\n"],
)
def test_pmic_without_rails_is_not_available(text: str) -> None:
    with pytest.raises(MeterError, match="no rail readings"):
        pm.pmic_watts(text)
    with pytest.raises(MeterError, match="no rail readings"):
        open_meter(EnergyConfig(meter="pmic"), vcgencmd=lambda: text)


def test_pmic_meter_integrates_readings() -> None:
    clock = FakeClock()
    meter = pm.PmicMeter.open(
        lambda: PMIC_SAMPLE, sample_hz=4.0, clock=clock.monotonic, start=False
    )
    for _ in range(8):
        clock.advance(0.25)
        meter.sample_once()
    assert meter.joules() == pytest.approx(2.0 * pm.pmic_watts(PMIC_SAMPLE))
    assert meter.name == "pmic:rails (measured)"
    meter.close()


# -- the estimate ------------------------------------------------------------------------------


def test_estimate_is_core_watts_times_process_cpu_seconds() -> None:
    cpu = [10.0]
    meter = open_meter(EnergyConfig(meter="estimate", core_w=1.5), cpu_time=lambda: cpu[0])
    assert isinstance(meter, em.CpuEstimateMeter)
    assert meter.kind == "estimated" and "estimated" in meter.name
    assert meter.joules() == 0.0
    cpu[0] = 12.0
    assert meter.joules() == pytest.approx(3.0)
    assert meter.idle_w == EnergyConfig().idle_w


def test_estimate_follows_real_cpu_time() -> None:
    meter = em.CpuEstimateMeter(core_w=2.0)
    t0 = time.process_time()
    x = 0
    while time.process_time() - t0 < 0.05:
        x += 1
    assert meter.joules() >= 2.0 * 0.05 * 0.9
    assert meter.joules() == pytest.approx(2.0 * meter.cpu_seconds(), rel=0.01)


# -- INA219 / INA260 on the emulated bus --------------------------------------------------------


def test_ina219_meter_on_the_emulated_bus() -> None:
    clock = FakeClock()
    bus = EmulatedBus(clock, {0x40: Ina219Model(constant(5.1, 0.62))})
    meter = open_meter(EnergyConfig(meter="ina219"), bus_factory=bus.factory)
    assert isinstance(meter, em.InaMeter)
    try:
        assert meter.name == "ina219:i2c-1@0x40 (measured)"
        # a real thread at a real rate; constant power, so energy = power x sampled span
        deadline = time.monotonic() + 5.0
        while meter.integrator.samples < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        span = meter.integrator.span_s
        assert meter.integrator.samples >= 4 and span > 0
        assert meter.joules() == pytest.approx(5.1 * 0.62 * span, rel=0.01)
    finally:
        meter.close()
    assert bus.closed


def test_ina260_meter_and_a_chip_that_stops_answering() -> None:
    clock = FakeClock()
    bus = EmulatedBus(clock, {0x41: Ina260Model(constant(5.0, 1.0))})
    cfg = EnergyConfig(meter="ina260", address=0x41)
    meter = em.InaMeter.open(cfg, "ina260", bus.factory, clock=clock.monotonic, start=False)
    for _ in range(4):
        clock.advance(0.5)
        meter.sample_once()
    assert meter.joules() == pytest.approx(5.0 * 2.0, rel=0.01)
    bus.fail(count=100, err=errno.EIO, address=0x41)
    for _ in range(em.MAX_FAILURES):
        clock.advance(0.5)
        meter.sample_once()
    assert meter.failure is not None and "EIO" in meter.failure
    with pytest.raises(MeterError, match="ina260:i2c-1@0x41"):
        meter.joules()
    meter.close()
    assert bus.closed


def test_ina_missing_chip_is_one_clear_error() -> None:
    bus = EmulatedBus(FakeClock(), {})
    with pytest.raises(SensorNotFoundError, match="no INA219 answers at I2C bus 1, address 0x40"):
        open_meter(EnergyConfig(meter="ina219"), bus_factory=bus.factory)
    assert bus.closed


# -- choosing a meter --------------------------------------------------------------------------


def test_none_means_no_meter() -> None:
    assert open_meter(EnergyConfig(meter="none")) is None


def test_auto_falls_back_to_the_estimate_and_says_why(tmp_path: Path) -> None:
    notes: list[str] = []
    cfg = EnergyConfig(meter="auto", bus=250)  # no /dev/i2c-250 here
    meter = open_meter(
        cfg, powercap_root=tmp_path / "none", vcgencmd=lambda: "error=1\n", notes=notes
    )
    assert isinstance(meter, em.CpuEstimateMeter)
    assert [n.split(":")[0] for n in notes] == ["ina260", "rapl", "pmic"]
    assert "/dev/i2c-250 does not exist" in notes[0]


def test_auto_prefers_an_ina260(tmp_path: Path) -> None:
    bus = EmulatedBus(FakeClock(), {0x40: Ina260Model(constant(5.0, 0.5))})
    rapl = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 1 << 32)})
    meter = open_meter(EnergyConfig(), bus_factory=bus.factory, powercap_root=rapl)
    assert meter is not None and meter.name.startswith("ina260:")
    meter.close()


def test_auto_never_writes_to_an_unidentified_chip(tmp_path: Path) -> None:
    """An INA219 (or anything else) at the address: auto only reads ID registers, then moves on."""
    chip = Ina219Model(constant(5.0, 0.5))
    bus = EmulatedBus(FakeClock(), {0x40: chip})
    rapl = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 1 << 32)})
    notes: list[str] = []
    meter = open_meter(EnergyConfig(), bus_factory=bus.factory, powercap_root=rapl, notes=notes)
    assert isinstance(meter, em.RaplMeter)
    assert chip.writes == []
    assert "is not an INA260" in notes[0]


def test_an_unexpected_error_in_a_reading_fails_the_meter(caplog: pytest.LogCaptureFixture) -> None:
    """Not a device error (a bug, vcgencmd's odd text): the meter fails at once, saying so, and
    reports no more energy, instead of its thread dying and the last power carried on for ever."""
    clock = FakeClock()
    meter = em.SampledMeter(
        "ina",
        scripted(clock, [2.0, 2.0, ValueError("odd text")]),
        sample_hz=1.0,
        clock=clock.monotonic,
        start=False,
    )
    counter = EnergyCounter(meter)
    with caplog.at_level(logging.INFO, logger="agent"):
        for _ in range(2):
            clock.advance(1.0)
            meter.sample_once()
    assert meter.failure is not None and "ValueError: odd text" in meter.failure
    with pytest.raises(MeterError, match="odd text"):
        meter.joules()
    span = counter.span()
    assert span.joules is None and span.failure is not None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].name == "agent.energy_meters"
    meter.close()
