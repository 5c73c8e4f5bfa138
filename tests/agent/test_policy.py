"""The switching policy as tables: (state, predictions, snapshot) -> decision."""

from __future__ import annotations

import pytest

from agent.monitor import ResourceSnapshot, Throttling
from agent.policy import Candidate, Limits, Policy, PolicyTuning

BANK = [
    Candidate("big", 0.96, 8_000_000),
    Candidate("mid", 0.95, 2_000_000),
    Candidate("small", 0.94, 500_000),
    Candidate("tiny", 0.92, 100_000),
]
BASE = {"big": 0.8, "mid": 0.4, "small": 0.2, "tiny": 0.1}
TUNING = PolicyTuning(headroom_up=0.7, headroom_down=0.9, dwell_s=10.0)


def scaled(k: float) -> dict[str, float]:
    return {m: v * k for m, v in BASE.items()}


def snap(temp: float | None = None, throttled: int | None = None) -> ResourceSnapshot:
    return ResourceSnapshot(
        t=0.0,
        cpu_percent=10.0,
        process_cpu_percent=5.0,
        cpu_count=4,
        load_avg=(0.1, 0.1, 0.1),
        mem_available_mb=1000.0,
        cpu_freq_mhz=1500.0,
        cpu_freq_max_mhz=1500.0,
        temperature_c=temp,
        throttling=None if throttled is None else Throttling(throttled),
        battery=None,
    )


def policy(budget: float = 1.0, **limits: float) -> Policy:
    return Policy(BANK, Limits(budget_ms=budget, hop_ms=1280.0, **limits), TUNING)


@pytest.mark.parametrize(
    ("active", "k", "now", "expected"),
    [
        # fits with room: stay on the best
        ("big", 1.0, 100.0, None),
        # big predicted 0.8 * 1.2 = 0.96 > 0.9 budget share: step down at once to the best that
        # fits 0.7 (mid 0.48)
        ("big", 1.2, 100.0, ("mid", "deadline")),
        # heavy contention: only tiny fits (0.1 * 6 = 0.6 <= 0.7)
        ("big", 6.0, 100.0, ("tiny", "deadline")),
        # nothing fits: the fastest, still a step down
        ("big", 20.0, 100.0, ("tiny", "deadline")),
        # already on the fastest and nothing fits: stay (no switch to something slower)
        ("tiny", 20.0, 100.0, None),
        # between the two headrooms (mid at 0.4 * 2 = 0.8 <= 0.9): hysteresis, stay
        ("mid", 2.0, 100.0, None),
        # room again: step up to the best that fits with headroom (big 0.8 * 0.85 = 0.68)
        ("small", 0.85, 100.0, ("big", "headroom")),
        # room, but not enough for big (0.8 > 0.7): mid (0.4)
        ("small", 1.0, 100.0, ("mid", "headroom")),
    ],
)
def test_budget_table(active: str, k: float, now: float, expected: tuple[str, str] | None) -> None:
    d = policy().decide(now, active, scaled(k))
    assert (None if d is None else (d.target, d.reason)) == expected


def test_dwell_blocks_step_up_but_not_step_down() -> None:
    p = policy()
    d = p.decide(100.0, "big", scaled(2.0))  # 1.6 > 0.9: down to small (0.4; mid is 0.8)
    assert d is not None and d.target == "small"
    assert p.decide(105.0, "small", scaled(1.0)) is None  # room for mid, but within the dwell
    d = p.decide(110.0, "small", scaled(1.0))  # dwell over
    assert d is not None and (d.target, d.reason) == ("mid", "headroom")
    # step-downs ignore the dwell
    d = p.decide(110.5, "mid", scaled(3.0))  # mid 1.2 > 0.9: small (0.6) at once
    assert d is not None and d.target == "small"


def test_no_flapping_on_a_steady_load() -> None:
    """A load that sits between the headrooms of two members causes at most one switch."""
    p = policy()
    active, switches = "big", 0
    for i in range(200):
        d = p.decide(float(i), active, scaled(1.0 / 0.8 * 0.85))  # big at 0.85: inside the band
        if d is not None:
            active, switches = d.target, switches + 1
    assert switches == 0 and active == "big"


@pytest.mark.parametrize(
    ("limits", "active", "expected"),
    [
        # cpu share: 0.8 ms per 1280 ms hop is 0.0625% of a core; a 0.0004 cap allows 0.512 ms,
        # with 0.9 headroom 0.46: big must go, mid (0.4 <= 0.7 * 0.512 = 0.358?) no -> small
        ({"cpu_share": 0.0004}, "big", ("small", "cpu-share")),
        # energy: 1 W per core, 0.5 mJ per window -> 0.5 ms; down headroom 0.45 -> big out;
        # up headroom 0.35: small (0.2)
        ({"energy_mj": 0.5, "core_w": 1.0}, "big", ("small", "energy")),
        # energy cap without a power figure is no cap
        ({"energy_mj": 0.5}, "big", None),
    ],
)
def test_cpu_share_and_energy_caps(
    limits: dict[str, float], active: str, expected: tuple[str, str] | None
) -> None:
    d = policy(budget=10.0, **limits).decide(100.0, active, scaled(1.0))
    assert (None if d is None else (d.target, d.reason)) == expected
    if d is not None:  # the switch names the tightest limit it kept to, in ms per window
        tightest = {"cpu-share": 0.0004 * 1280.0, "energy": 0.5 / 1.0}[d.reason]
        assert d.limit_ms == pytest.approx(tightest)


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (snap(temp=60.0), None),
        (snap(temp=None), None),  # no thermal zone: absent, not cold or hot
        (snap(temp=82.0), ("mid", "thermal")),  # half of big's MACs: mid (2M <= 4M)
        (snap(temp=50.0, throttled=0x4), ("mid", "thermal")),  # firmware throttling
        (snap(temp=50.0, throttled=0x50000), None),  # throttled since boot, not now
    ],
)
def test_thermal_guard(snapshot: ResourceSnapshot, expected: tuple[str, str] | None) -> None:
    d = policy(budget=10.0).decide(100.0, "big", scaled(1.0), snapshot)
    assert (None if d is None else (d.target, d.reason)) == expected


def test_thermal_steps_again_each_dwell_and_releases_with_hysteresis() -> None:
    p = policy(budget=10.0)
    d = p.decide(0.0, "big", scaled(1.0), snap(temp=85.0))
    assert d is not None and d.target == "mid" and p.macs_cap == 4_000_000
    assert p.decide(5.0, "mid", scaled(1.0), snap(temp=85.0)) is None  # within the dwell
    d = p.decide(10.0, "mid", scaled(1.0), snap(temp=85.0))  # still hot: halve again
    assert d is not None and d.target == "small" and p.macs_cap == 1_000_000
    # cooler but above the release point: the cap stays
    assert p.decide(30.0, "small", scaled(1.0), snap(temp=75.0)) is None
    assert p.macs_cap == 1_000_000
    d = p.decide(31.0, "small", scaled(1.0), snap(temp=65.0))  # released: back up
    assert p.macs_cap is None and d is not None and (d.target, d.reason) == ("big", "headroom")


def test_override_and_static_mode() -> None:
    p = policy()
    p.force("tiny")
    d = p.decide(0.0, "big", scaled(1.0))
    assert d is not None and (d.target, d.reason) == ("tiny", "override")
    assert p.decide(1.0, "tiny", scaled(50.0)) is None  # pinned: no step-down, no step-up
    with pytest.raises(KeyError):
        p.force("no-such-member")
    p.force(None)
    p.mode = "static"
    assert p.decide(100.0, "tiny", scaled(1.0)) is None  # static: never by itself
    p.mode = "adaptive"
    d = p.decide(100.0, "tiny", scaled(1.0))
    assert d is not None and d.target == "mid"


def test_pinnable_members_are_for_the_override_alone() -> None:
    """A member off the front: the override may pin it (also at start); the policy never picks
    it, and after a release it moves back into the candidates."""
    off = Candidate("off", 0.90, 4_000_000)
    p = Policy(BANK, Limits(budget_ms=1.0, hop_ms=1280.0), TUNING, pinnable=[off])
    assert p.knows("off") and not p.knows("nope")
    assert p.pinnable == ["big", "mid", "small", "tiny", "off"]
    with_off = {**scaled(0.1), "off": 0.01}  # the fastest by far, and every member fits
    assert p.initial(with_off).id == "big"  # never chosen by the policy itself
    assert p.decide(100.0, "big", with_off) is None
    p.force("off")
    assert p.initial(with_off).id == "off"
    d = p.decide(101.0, "big", with_off)
    assert d is not None and (d.target, d.reason) == ("off", "override")
    assert p.decide(102.0, "off", with_off) is None  # pinned
    p.force(None)
    d = p.decide(103.0, "off", with_off)
    assert d is not None and (d.target, d.reason) == ("big", "candidates")


def test_initial_choice_and_outsider() -> None:
    p = policy()
    assert p.initial(scaled(1.0)).id == "mid"  # big needs 0.8 > 0.7
    assert policy(budget=2.0).initial(scaled(1.0)).id == "big"
    # a running member that is not a candidate is replaced by one that is
    d = p.decide(0.0, "cnn1d-base", scaled(1.0))
    assert d is not None and (d.target, d.reason) == ("mid", "candidates")
    with pytest.raises(ValueError):
        Policy([], Limits(1.0, 1.0))


def test_thermal_steps_once_per_snapshot_even_without_dwell() -> None:
    p = Policy(BANK, Limits(budget_ms=10.0, hop_ms=1280.0), PolicyTuning(dwell_s=0.0))
    hot = snap(temp=85.0)
    d = p.decide(0.0, "big", scaled(1.0), hot)
    assert d is not None and p.macs_cap == 4_000_000
    for i in range(5):  # the same snapshot again (e.g. every window): no further halving
        p.decide(1.0 + i, d.target, scaled(1.0), hot)
    assert p.macs_cap == 4_000_000
    # frequency capping alone (a weak supply) is not heat: the cap is lifted, big stays
    assert p.decide(10.0, "big", scaled(1.0), snap(temp=50.0, throttled=0x2)) is None
    assert p.macs_cap is None
