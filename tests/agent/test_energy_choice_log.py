"""``energy.meter = "auto"`` says what it chose in one INFO line (with the short reasons the
better meters were skipped); the full reasons stay at DEBUG and in ``notes`` (bench's JSON)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent import energy_meters as em
from agent.clock import FakeClock
from agent.energy import chosen_line, open_meter
from agent.profile_tables import EnergyConfig
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.ina219_model import Ina219Model, constant
from tests.agent.test_energy import rapl_tree


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "agent.energy" and r.levelno == level
    ]


def test_the_fallback_to_the_estimate_is_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.energy")
    notes: list[str] = []
    cfg = EnergyConfig(meter="auto", bus=250)  # no /dev/i2c-250 here
    meter = open_meter(
        cfg, powercap_root=tmp_path / "none", vcgencmd=lambda: "error=1\n", notes=notes
    )
    assert isinstance(meter, em.CpuEstimateMeter)
    info = _records(caplog, logging.INFO)
    assert info == [
        f"energy meter: {meter.name}; skipped ina260 (no I2C bus 250), "
        f"rapl (no RAPL: {tmp_path / 'none'} does not exist), "
        "pmic (vcgencmd pmic_read_adc gives no rail readings)"
    ]
    # the full reasons: at DEBUG, and in notes (bench writes them to its JSON)
    debug = _records(caplog, logging.DEBUG)
    assert debug == [f"energy meter skipped: {n}" for n in notes]
    assert "(/dev/i2c-250 does not exist)" in notes[0]
    assert "(not an Intel/AMD Linux machine" in notes[1]


def test_a_measured_meter_after_a_skip_says_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.energy")
    bus = EmulatedBus(FakeClock(), {0x40: Ina219Model(constant(5.0, 0.5))})
    rapl = rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 1 << 32)})
    meter = open_meter(EnergyConfig(), bus_factory=bus.factory, powercap_root=rapl)
    assert isinstance(meter, em.RaplMeter)
    [info] = _records(caplog, logging.INFO)
    assert info == (
        f"energy meter: {meter.name}; "
        "skipped ina260 (the chip at I2C bus 1, address 0x40 is not an INA260)"
    )
    assert len(_records(caplog, logging.DEBUG)) == 1


def test_the_first_choice_says_only_its_name() -> None:
    assert chosen_line("rapl:package-0 (measured)", []) == "rapl:package-0 (measured)"


@pytest.mark.parametrize(
    ("skipped", "brief"),
    [
        ("ina260: no I2C bus 1 (/dev/i2c-1 does not exist)", "ina260 (no I2C bus 1)"),
        (
            "rapl: RAPL counters are readable by root only here (/x: permission denied); run as",
            "rapl (RAPL counters are readable by root only here)",
        ),
        (
            "pmic: vcgencmd pmic_read_adc exited with 1 (oops); not a Raspberry Pi 5?",
            "pmic (vcgencmd pmic_read_adc exited with 1)",
        ),
        (
            "pmic: no vcgencmd here (not a Raspberry Pi, or no firmware tools)",
            "pmic (no vcgencmd here)",
        ),
    ],
)
def test_reasons_are_cut_to_their_first_clause(skipped: str, brief: str) -> None:
    assert (
        chosen_line("estimate (estimated)", [skipped]) == f"estimate (estimated); skipped {brief}"
    )
