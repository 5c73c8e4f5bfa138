"""The latency model: table seeding, online correction, and the latency table file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.latency import LatencyModel, bank_latencies, load_latency_table
from agent.manifest import load_manifest
from tests.agent.helpers import MODELS

BASE = {"a": 1.0, "b": 0.25}


def test_idle_board_predicts_the_table() -> None:
    m = LatencyModel(BASE, alpha=0.2)
    assert m.predict("a") == 1.0 and m.predict("b") == 0.25
    for _ in range(50):
        m.observe("a", 1.0)
    assert m.predict("b") == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("observed", "member", "factor"),
    [
        (2.0, "a", 2.0),  # twice as slow as the table
        (0.5, "b", 2.0),  # the same contention seen through another member
        (0.5, "a", 0.5),  # a faster board than the table's
    ],
)
def test_contention_converges_and_applies_to_every_member(
    observed: float, member: str, factor: float
) -> None:
    m = LatencyModel(BASE, alpha=0.2)
    for _ in range(100):
        m.observe(member, observed)
    assert m.factor == pytest.approx(factor, rel=1e-3)
    assert m.deviation == pytest.approx(0.0, abs=1e-3)
    assert m.predict("a") == pytest.approx(1.0 * factor, rel=1e-2)
    assert m.predict("b") == pytest.approx(0.25 * factor, rel=1e-2)


def test_ewma_step_response_and_tail_margin() -> None:
    m = LatencyModel(BASE, alpha=0.5, k=2.0)
    m.observe("a", 3.0)  # ratio 3: factor 1 -> 2, deviation 0 -> 1
    assert m.factor == pytest.approx(2.0) and m.deviation == pytest.approx(1.0)
    assert m.bound() == pytest.approx(4.0)
    assert m.predict("b") == pytest.approx(1.0)
    m.observe("a", 2.0)  # deviation 0.5*1 + 0.5*|2-2| = 0.5, factor 2
    assert m.bound() == pytest.approx(3.0)


def test_unknown_members_and_bad_observations_are_ignored() -> None:
    m = LatencyModel(BASE)
    m.observe("zzz", 5.0)
    m.observe("a", 0.0)
    m.observe("a", -1.0)
    assert m.observations == 0 and m.bound() == 1.0
    with pytest.raises(ConfigError):
        LatencyModel({})


def test_bank_latencies_cover_the_committed_bank() -> None:
    bank = load_manifest(MODELS)
    lat = bank_latencies(list(bank.models))
    assert set(lat) == {m.id for m in bank.models}
    assert all(v > 0 for v in lat.values())


def test_bank_latencies_take_the_paced_figures_where_the_manifest_has_them() -> None:
    """The daemon runs a member once per hop: paced figures (several times the back-to-back
    ones for small members) seed the policy, so an idle board does not read as loaded. The two
    sorts are never mixed."""
    import dataclasses

    bank = load_manifest(MODELS)
    a, b, c = bank.models[:3]
    a = dataclasses.replace(a, latency_ms={"p50": 0.02, "paced_p50": 0.28})
    b = dataclasses.replace(b, latency_ms={"p50": 0.05, "paced_p50": 0.31})
    c = dataclasses.replace(c, latency_ms={"p50": 0.09})
    assert bank_latencies([a, b]) == {a.id: 0.28, b.id: 0.31}
    # c was rebuilt since the paced run: all back-to-back, never a mix
    assert bank_latencies([a, b, c]) == {a.id: 0.02, b.id: 0.05, c.id: 0.09}
    assert bank_latencies([c]) == {c.id: 0.09}
    bad = dataclasses.replace(c, latency_ms={"p50": True, "paced_p50": -1})
    assert bank_latencies([bad]) == {}


def test_latency_table_file(tmp_path: Path) -> None:
    good = tmp_path / "t.json"
    good.write_text(
        json.dumps({"table_version": 1, "models": {"a": {"p50_ms": 0.5, "p90_ms": 0.6}}})
    )
    assert load_latency_table(good) == {"a": 0.5}
    cases = {
        "missing.json": None,
        "bad.json": "{not json",
        "v2.json": json.dumps({"table_version": 2, "models": {}}),
        "nomodels.json": json.dumps({"table_version": 1}),
        "neg.json": json.dumps({"table_version": 1, "models": {"a": {"p50_ms": -1}}}),
        "inf.json": '{"table_version": 1, "models": {"a": {"p50_ms": Infinity}}}',
        "nan.json": '{"table_version": 1, "models": {"a": {"p50_ms": NaN}}}',
        "tiny.json": json.dumps({"table_version": 1, "models": {"a": {"p50_ms": 1e-9}}}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError, match=name):
            load_latency_table(path)


def test_each_member_remembers_what_the_load_did_to_it() -> None:
    m = LatencyModel(BASE, alpha=0.5, memory=100, load_drop=0.5)
    m.set_load(2.0)  # two cores' worth of other processes
    for _ in range(20):
        m.observe("a", 3.0)  # the long member is time-sliced: 3x
    for _ in range(20):
        m.observe("b", 0.25)  # the short one is not: the board factor falls back to 1
    assert m.bound() == pytest.approx(1.0, abs=1e-3)
    assert m.predict("b") == pytest.approx(0.25, rel=1e-3)
    assert m.predict("a") == pytest.approx(3.0, rel=1e-3)  # its own bound still holds
    assert m.predict_all()["a"] == pytest.approx(3.0, rel=1e-3)
    m.set_load(1.7)  # a small drop is not the load going away
    assert m.predict("a") == pytest.approx(3.0, rel=1e-3)
    m.set_load(0.5)  # it went away: forget
    assert m.predict("a") == pytest.approx(1.0, rel=1e-3)
    m.set_load(2.0)
    assert m.predict("a") == pytest.approx(3.0, rel=1e-3)
    for _ in range(81):  # 100 observations since "a" was last seen: try it again
        m.observe("b", 0.25)
    assert m.predict("a") == pytest.approx(1.0, rel=1e-3)


def test_one_spike_counts_as_at_most_a_4x_slowdown() -> None:
    m = LatencyModel(BASE, alpha=0.5, k=2.0)
    m.observe("b", 0.25 * 40)  # a 10 ms preemption on a 0.25 ms member
    assert m.factor == pytest.approx(0.5 + 0.5 * 4.0)  # counted as 4x, not 40x
    for _ in range(60):
        m.observe("b", 0.25)
    assert m.bound() < 1.01  # and it fades


def test_a_load_measured_late_is_charged_to_the_member_it_slowed() -> None:
    m = LatencyModel(BASE, alpha=0.5, memory=1000, load_drop=0.5)
    m.set_load(0.0)
    for _ in range(10):
        m.observe("a", 3.0)  # slow, but the monitor has not seen the load yet
    for _ in range(10):
        m.observe("b", 0.25)  # switched away
    m.set_load(2.0)  # the next monitor sample sees the load: it was what slowed "a"
    assert m.predict("a") > 2.0
    m.set_load(0.2)  # the load goes: "a" is predicted at the board's factor again
    assert m.predict("a") == pytest.approx(1.0 * m.bound())


def test_a_forgotten_member_starts_afresh() -> None:
    m = LatencyModel(BASE, alpha=0.2, memory=1000, load_drop=0.5)
    m.set_load(2.0)
    for _ in range(30):
        m.observe("a", 3.0)
    for _ in range(30):
        m.observe("b", 0.25)
    m.set_load(0.0)  # the load is gone: "a" is tried again ...
    m.observe("a", 1.0)  # ... and runs at its table figure
    assert m.predict("a") < 1.5  # not the stale 3x carried on


def test_a_members_first_observation_counts_once() -> None:
    """A member's own bound starts from the board's estimate before the observation and takes
    it once, like the board's (it took it twice: 1.72 own against 1.4 board after one run at
    3x)."""
    m = LatencyModel({"a": 1.0, "b": 1.0}, alpha=0.2, k=2.0)
    m.observe("a", 3.0)
    assert (m.factor, m.deviation) == pytest.approx((1.4, 0.4))
    own = m._own["a"]
    assert (own.factor, own.deviation) == pytest.approx((m.factor, m.deviation))
    assert m.predict("a") == pytest.approx(m.predict("b")) == pytest.approx(1.4 + 2 * 0.4)
