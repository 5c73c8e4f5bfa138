"""The resource monitor against a fake psutil that returns psutil's own types."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

try:  # psutil's own result types: psutil >= 7.2 keeps them in _ntuples, older in _common
    from psutil._ntuples import sbattery, scpufreq, shwtemp
except ImportError:  # pragma: no cover - older psutil
    from psutil._common import sbattery, scpufreq, shwtemp  # type: ignore[attr-defined,no-redef]

from agent.clock import FakeClock
from agent.monitor import (
    ResourceMonitor,
    ResourceSnapshot,
    Sampler,
    ThrottleReader,
    Throttling,
    parse_throttled,
)

PI_FREQ = scpufreq(1500.0, 600.0, 1800.0)


class FakeProcess:
    def __init__(self, percents: list[float]) -> None:
        self._p = list(percents)

    def cpu_percent(self, interval: float | None = None) -> float:
        return self._p.pop(0) if self._p else 0.0


def fake_psutil(
    *,
    temps: dict[str, list[Any]] | None = None,
    battery: Any = None,
    freq: Any = PI_FREQ,
    loadavg: bool = True,
) -> Any:
    """Module-like object with psutil's function names and psutil's return types."""
    vm = psutil.virtual_memory()  # a real svmem, then fixed numbers in it
    vm = vm._replace(available=512 * 2**20)
    ns = SimpleNamespace(
        cpu_percent=lambda interval=None: 37.5,
        cpu_count=lambda: 4,
        Process=lambda pid: FakeProcess([0.0, 12.5]),
        virtual_memory=lambda: vm,
        cpu_freq=lambda: freq,
        sensors_temperatures=lambda: temps or {},
        sensors_battery=lambda: battery,
        POWER_TIME_UNKNOWN=psutil.POWER_TIME_UNKNOWN,
        POWER_TIME_UNLIMITED=psutil.POWER_TIME_UNLIMITED,
    )
    if loadavg:
        ns.getloadavg = lambda: (1.0, 0.5, 0.25)
    return ns


def no_throttle(tmp_path: Path) -> ThrottleReader:
    return ThrottleReader(sysfs=tmp_path / "absent", use_vcgencmd=False)


def test_snapshot_from_a_pi_like_board(tmp_path: Path) -> None:
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("50005\n")
    ps = fake_psutil(
        temps={
            "cpu_thermal": [shwtemp("", 71.5, None, None)],
            "rp1_adc": [shwtemp("", 40.0, None, None)],
        },
        battery=sbattery(80, psutil.POWER_TIME_UNLIMITED, True),
    )
    s = Sampler(ps, throttle=ThrottleReader(sysfs=sysfs, use_vcgencmd=False), clock=lambda: 7.0)
    snap = s.sample()
    assert snap.t == 7.0
    assert snap.cpu_percent == 37.5 and snap.process_cpu_percent == 12.5
    assert snap.cpu_count == 4 and snap.load_avg == (1.0, 0.5, 0.25)
    assert snap.mem_available_mb == 512.0
    assert snap.cpu_freq_mhz == 1500.0 and snap.cpu_freq_max_mhz == 1800.0
    assert snap.temperature_c == 71.5  # the hottest zone
    assert snap.throttling == Throttling(0x50005)
    assert snap.throttling.under_voltage and snap.throttling.throttled
    assert snap.throttling.active and snap.throttling.occurred
    assert snap.battery is not None and snap.battery.percent == 80
    assert snap.battery.plugged is True and snap.battery.seconds_left is None
    d = snap.to_dict()
    assert d["throttled"] == "0x50005" and d["temperature_c"] == 71.5


def test_absent_sources_are_none_not_zero(tmp_path: Path) -> None:
    ps = fake_psutil(freq=None, loadavg=False)
    del ps.sensors_temperatures  # a platform without the function at all
    snap = Sampler(ps, throttle=no_throttle(tmp_path)).sample()
    assert snap.temperature_c is None and snap.battery is None and snap.throttling is None
    assert snap.load_avg is None and snap.cpu_freq_mhz is None
    assert snap.to_dict()["temperature_c"] is None


def test_named_thermal_zone(tmp_path: Path) -> None:
    ps = fake_psutil(
        temps={
            "cpu_thermal": [shwtemp("", 55.0, None, None)],
            "nvme": [shwtemp("", 65.0, None, None)],
        }
    )
    snap = Sampler(ps, thermal_zone="cpu_thermal", throttle=no_throttle(tmp_path)).sample()
    assert snap.temperature_c == 55.0
    snap = Sampler(ps, thermal_zone="gpu", throttle=no_throttle(tmp_path)).sample()
    assert snap.temperature_c is None


def test_battery_discharging(tmp_path: Path) -> None:
    ps = fake_psutil(battery=sbattery(42.0, 3600, False))
    b = Sampler(ps, throttle=no_throttle(tmp_path)).sample().battery
    assert b is not None and b.plugged is False and b.seconds_left == 3600.0


@pytest.mark.parametrize(
    ("text", "raw"),
    [("throttled=0x50000\n", 0x50000), ("0\n", 0), ("e0008", 0xE0008), ("throttled=0x0", 0)],
)
def test_parse_throttled(text: str, raw: int) -> None:
    assert parse_throttled(text) == raw


def test_unreadable_throttle_source_is_dropped(tmp_path: Path) -> None:
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("not hex")
    r = ThrottleReader(sysfs=sysfs, use_vcgencmd=False)
    assert r.available and r.read() is None and not r.available
    assert r.read() is None


def test_vcgencmd_fallback(tmp_path: Path) -> None:
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x80008\n")
    tool.chmod(0o755)
    r = ThrottleReader(sysfs=tmp_path / "absent", vcgencmd=str(tool))
    t = r.read()
    assert t is not None and t.soft_temp_limit and t.active


def test_monitor_thread_samples_and_measures_its_cost(tmp_path: Path) -> None:
    seen: list[ResourceSnapshot] = []
    mon = ResourceMonitor(Sampler(fake_psutil(), throttle=no_throttle(tmp_path)), 0.05, seen.append)
    mon.start()
    deadline = time.monotonic() + 10
    while mon.samples < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    mon.stop()
    assert mon.samples >= 4 and len(seen) == mon.samples and mon.latest is seen[-1]
    assert mon.cpu_s > 0 and 0 < mon.cost_share < 1


def test_a_failing_consumer_does_not_kill_the_monitor(tmp_path: Path) -> None:
    def boom(_s: ResourceSnapshot) -> None:
        raise RuntimeError("bug")

    mon = ResourceMonitor(Sampler(fake_psutil(), throttle=no_throttle(tmp_path)), 1.0, boom)
    mon.tick()
    mon.tick()
    assert mon.samples == 2


def test_real_psutil_on_this_machine() -> None:
    snap = Sampler().sample()
    assert snap.cpu_count >= 1 and snap.cpu_percent is not None
    assert snap.mem_available_mb is not None and snap.mem_available_mb > 0


def test_others_cores_leaves_our_own_use_out(tmp_path: Path) -> None:
    snap = Sampler(fake_psutil(), throttle=no_throttle(tmp_path)).sample()
    # 37.5% of 4 cores is 1.5 cores in all; we use 12.5% of one core
    assert snap.others_cores == pytest.approx(1.375)
    absent = Sampler(fake_psutil(), throttle=no_throttle(tmp_path))
    absent._proc = FakeProcess([])  # type: ignore[assignment]
    assert absent.sample().others_cores == pytest.approx(1.5)


def test_a_failing_sample_is_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Boom(Sampler):
        calls = 0

        def sample(self) -> ResourceSnapshot:
            Boom.calls += 1
            if Boom.calls <= 2:
                raise psutil.AccessDenied(pid=1)
            return super().sample()

    mon = ResourceMonitor(Boom(fake_psutil(), throttle=no_throttle(tmp_path)), 1.0)
    assert mon.tick() is None and mon.tick() is None
    assert mon.tick() is not None and mon.latest is not None
    assert len([r for r in caplog.records if "a sample failed" in r.getMessage()]) == 1


def test_throttling_bits_heat_versus_supply() -> None:
    assert Throttling(0x4).hot and Throttling(0x8).hot
    assert not Throttling(0x2).hot and Throttling(0x2).active  # capped: under-voltage, not heat
    assert Throttling(0x5).hot  # throttled now counts


def test_pi5_firmware_node_is_found(tmp_path: Path) -> None:
    from agent.monitor import find_throttled_sysfs

    node = tmp_path / "soc@107c000000" / "soc@107c000000:firmware"
    node.mkdir(parents=True)
    (node / "get_throttled").write_text("0\n")
    assert find_throttled_sysfs(tmp_path) == node / "get_throttled"


def test_a_thermal_zone_this_machine_lacks_is_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typo in monitor.thermal_zone reads no temperature for ever, which silently turns the
    thermal guard off: said at start, with the zones the machine has."""
    import logging
    import types

    from agent.monitor import Sampler

    zones = {"cpu_thermal": [types.SimpleNamespace(current=51.0)]}
    fake = types.SimpleNamespace(
        sensors_temperatures=lambda: zones,
        Process=lambda _pid: types.SimpleNamespace(cpu_percent=lambda interval=None: 0.0),
        cpu_count=lambda: 4,
        cpu_percent=lambda interval=None: 0.0,
    )
    with caplog.at_level(logging.WARNING, logger="agent.monitor"):
        Sampler(fake, thermal_zone="cpu-thermal")  # type: ignore[arg-type]
        Sampler(fake, thermal_zone="cpu_thermal")  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "monitor.thermal_zone 'cpu-thermal' is not on this machine (it has: cpu_thermal); no "
        "temperature will be read and the thermal guard will not act"
    ]


def test_the_monitor_reads_the_injected_clock(tmp_path: Path) -> None:
    """Snapshot times and the monitor's cost share follow the agent's clock, not the system's."""
    clock = FakeClock()
    clock.advance(100.0)
    sampler = Sampler(fake_psutil(), throttle=no_throttle(tmp_path), clock=clock.monotonic)
    mon = ResourceMonitor(sampler, 3600.0, clock=clock.monotonic)
    mon.start()
    clock.advance(10.0)
    mon.stop()
    assert mon.latest is not None and mon.latest.t == 100.0
    assert mon.cpu_s > 0 and mon.cost_share == pytest.approx(mon.cpu_s / 10.0)


def test_the_agent_gives_its_monitor_its_clock() -> None:
    """``build_agent``'s clock reaches the monitor of a static run and of an adaptive one."""
    from agent.publishers import MemoryPublisher
    from agent.wiring import RunOptions, build_agent
    from tests.agent.helpers import profile_for

    for mode in ("static", "adaptive"):
        clock = FakeClock()
        clock.advance(42.0)
        agent = build_agent(
            profile_for(),
            options=RunOptions(speed=0, loop=False, policy_mode=mode),
            publisher=MemoryPublisher(),
            clock=clock,
        )
        assert agent.monitor is not None
        assert agent.monitor.sampler.sample().t == 42.0
        assert agent.monitor.cost_share == 0.0  # not started: no wall time on its clock
