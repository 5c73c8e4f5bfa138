"""The Raspberry Pi 5 PMIC as an energy meter: ``vcgencmd pmic_read_adc`` sampled in a thread,
the rails' volts x amps summed (a :class:`~agent.energy_meters.SampledMeter`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable

from agent.energy_meters import SampledMeter
from agent.errors import MeterError

PMIC_SAMPLE_HZ = 2.0
"""``vcgencmd`` runs per second: each spawns a process (about 10 ms of CPU on a Pi 5)."""

_PMIC_LINE = re.compile(
    r"^\s*(?P<rail>[A-Za-z0-9_]+)_(?P<suffix>[AV])\s+(?P<what>current|volt)\(\d+\)="
    r"(?P<value>[-+0-9.eE]+)(?P<unit>[AV])\s*$"
)


def parse_pmic_adc(text: str) -> dict[str, tuple[float, float]]:
    """Rails with both readings in ``vcgencmd pmic_read_adc`` output: ``{rail: (volts, amps)}``.

    Lines read ``  VDD_CORE_A current(7)=0.75012000A`` and ``  VDD_CORE_V volt(15)=0.72178200V``;
    the number in brackets is an ADC channel, different for a rail's current and voltage, so
    readings pair up by rail name. Rails with a voltage only (``EXT5V``, ``BATT``) carry no power.
    """
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if m is None:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        if m["suffix"] == "A" and m["what"] == "current" and m["unit"] == "A":
            amps[m["rail"]] = value
        elif m["suffix"] == "V" and m["what"] == "volt" and m["unit"] == "V":
            volts[m["rail"]] = value
    return {rail: (volts[rail], amps[rail]) for rail in sorted(amps) if rail in volts}


def pmic_watts(text: str) -> float:
    """Sum of volts x amps over the PMIC's rails; :class:`MeterError` when there are none."""
    rails = parse_pmic_adc(text)
    if not rails:
        first = text.strip().splitlines()[0] if text.strip() else "no output"
        raise MeterError(f"vcgencmd pmic_read_adc gives no rail readings ({first[:80]})")
    return sum(v * a for v, a in rails.values())


def _vcgencmd_reader(exe: str) -> Callable[[], str]:
    def run() -> str:
        try:
            done = subprocess.run(
                [exe, "pmic_read_adc"], capture_output=True, text=True, timeout=2.0, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MeterError(f"vcgencmd pmic_read_adc failed ({exc})") from exc
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise MeterError(
                f"vcgencmd pmic_read_adc exited with {done.returncode} "
                f"({why[0] if why else 'no output'}); not a Raspberry Pi 5?"
            )
        return done.stdout

    return run


class PmicMeter(SampledMeter):
    """The Raspberry Pi 5 PMIC's rails (core, DDR, I/O supplies): their power summed.

    Not the board's input power: the PMIC's conversion losses and the 5 V loads (USB devices,
    HATs, the fan) are outside it.
    """

    @classmethod
    def open(
        cls,
        vcgencmd: Callable[[], str] | None = None,
        *,
        sample_hz: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> PmicMeter:
        if vcgencmd is None:
            exe = shutil.which("vcgencmd")
            if exe is None:
                raise MeterError("no vcgencmd here (not a Raspberry Pi, or no firmware tools)")
            vcgencmd = _vcgencmd_reader(exe)
        reader = vcgencmd
        pmic_watts(reader())  # a Pi 4's vcgencmd has no PMIC: fail here, not in the thread
        return cls(
            "pmic:rails (measured)",
            lambda: pmic_watts(reader()),
            sample_hz=sample_hz or PMIC_SAMPLE_HZ,
            covers="PMIC rails",
            clock=clock,
            start=start,
        )
