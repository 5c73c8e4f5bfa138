"""The adaptive runtime on the committed bank: session pool, controller, and the switch path
end to end (fake monitor snapshots, real sessions, a real broker)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.adaptive import Controller
from agent.adaptive_factory import build_adaptive, candidates_of, expected_accuracy, pareto
from agent.clock import SystemClock
from agent.errors import ConfigError, ModelError
from agent.inference import Classifier, SessionSettings
from agent.latency import LatencyModel, bank_latencies
from agent.manifest import ModelEntry, load_manifest
from agent.monitor import ResourceSnapshot
from agent.payload import Prediction
from agent.policy import Candidate, Limits, Policy, PolicyTuning
from agent.profile import Profile
from agent.profile_tables import PolicyConfig
from agent.publishers import MemoryPublisher
from agent.sessions import SessionPool, footprint
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import MODELS, RECORDINGS, Subscriber, profile_for
from tests.conftest import Broker

BIG, MID, SMALL = "wc-w0.75-r096", "wc-w0.25-r128", "wc-w0.12-r032"
"""Accuracy falls with MACs in this trio (96.9, 96.8, 95.2 %), and each has its own rate."""
TRIO = (BIG, MID, SMALL)


def snap(temp: float, cpu: float = 50.0) -> ResourceSnapshot:
    return ResourceSnapshot(
        t=0.0,
        cpu_percent=cpu,
        process_cpu_percent=10.0,
        cpu_count=2,
        load_avg=None,
        mem_available_mb=100.0,
        cpu_freq_mhz=None,
        cpu_freq_max_mhz=None,
        temperature_c=temp,
        throttling=None,
        battery=None,
    )


def adaptive_profile(port: int | None = None, **policy: Any) -> Profile:
    prof = profile_for(port)
    pol = PolicyConfig(mode="adaptive", candidates=TRIO, deadline_ms=1000.0, dwell_s=0.0)
    return dataclasses.replace(prof, policy=dataclasses.replace(pol, **policy))


def entries() -> dict[str, ModelEntry]:
    bank = load_manifest(MODELS)
    return {i: bank.get(i) for i in TRIO}


def pool(budget: int = 1 << 30) -> SessionPool:
    bank = load_manifest(MODELS)
    return SessionPool(
        bank, entries().values(), SessionSettings(), time.perf_counter, budget_bytes=budget
    )


def test_pool_preloads_within_budget_and_loads_the_rest_in_background() -> None:
    e = entries()
    budget = footprint(e[BIG]) + footprint(e[MID])
    p = pool(budget)
    assert p.preload([BIG, SMALL, MID]) == [BIG, SMALL]  # MID would not fit after both
    assert p.get(MID) is None and p.used_bytes <= budget
    p.pin(BIG)
    ready = threading.Event()
    p.request(MID, on_ready=lambda _m: ready.set())
    assert ready.wait(30)
    assert p.get(MID) is not None and p.get(BIG) is not None  # pinned: kept
    assert p.get(SMALL) is None  # least recently used: evicted to make room
    assert p.used_bytes <= budget


def test_pool_marks_a_broken_member(tmp_path: Path) -> None:
    bank = load_manifest(MODELS)
    e = entries()[SMALL]
    bad = dataclasses.replace(e, sha256="0" * 64)
    p = SessionPool(bank, [bad], SessionSettings(), time.perf_counter, 1 << 30)
    with pytest.raises(ModelError, match="sha256"):
        p.load_now(SMALL)
    assert SMALL in p.broken
    assert p.preload([SMALL]) == []
    p.request(SMALL)  # a no-op: never retried
    assert p.get(SMALL) is None


def controller(budget_ms: float, dwell: float = 0.0) -> tuple[Controller, list[float]]:
    e = entries()
    now = [0.0]
    base = {i: float(e[i].latency_ms["p50"]) for i in TRIO}
    p = pool()
    p.preload(TRIO)
    pol = Policy(
        [Candidate(i, float(e[i].metrics["accuracy"]), e[i].macs) for i in TRIO],
        Limits(budget_ms=budget_ms, hop_ms=1280.0),
        PolicyTuning(dwell_s=dwell),
    )
    lat = LatencyModel(base, alpha=0.5)
    ctl = Controller(pol, lat, p, pol.limits, lambda: now[0], BIG)
    return ctl, now


def test_controller_steps_down_on_observed_latency_and_back_up() -> None:
    ctl, now = controller(budget_ms=1.0, dwell=5.0)
    now[0] = 1.0
    base_big = ctl.latency.base_ms[BIG]
    assert ctl.take() is None
    ctl.on_snapshot(snap(40.0, cpu=100.0))  # a busy board
    ctl.observe(BIG, 1.0)  # the first window after the start is cold: not taken as contention
    assert ctl.take() is None
    # contention: BIG takes far over its table figure and the 1 ms budget, until the board's
    # factor puts MID over the step-down's headroom too (how many windows that takes depends on
    # the members' table figures); SMALL, the fastest, is then the target
    for _ in range(50):
        ctl.observe(BIG, base_big * 10 / 1000 * max(1.0, 1.0 / base_big))
        if ctl.latency.predict(MID) > 0.7:
            break
    assert ctl.latency.predict(MID) > 0.7
    order = ctl.take()
    assert order is not None and order.previous == BIG and order.reason == "deadline"
    assert order.target != BIG and order.classifier.entry.id == order.target
    assert ctl.active_id == order.target and ctl.stats.switches == 1
    assert ctl.stats.misses >= 1
    # the load goes away: observations at the table figure, then a snapshot after the dwell
    small = order.target
    for _ in range(30):  # the small member runs at its table figure even under this load
        ctl.observe(small, ctl.latency.base_ms[small] / 1000)
    now[0] = 10.0
    ctl.on_snapshot(snap(40.0, cpu=100.0))
    up = ctl.take()  # BIG is remembered slow under this load; MID was never seen slow
    assert up is not None and (up.previous, up.target, up.reason) == (small, MID, "headroom")
    for _ in range(30):
        ctl.observe(MID, ctl.latency.base_ms[MID] / 1000)
    now[0] = 20.0
    ctl.on_snapshot(snap(40.0, cpu=100.0))
    assert ctl.take() is None  # still the same load: BIG stays out
    ctl.on_snapshot(snap(40.0, cpu=20.0))  # the load is gone
    up = ctl.take()
    assert up is not None and (up.previous, up.target, up.reason) == (MID, BIG, "headroom")


def test_controller_force_release_and_mode() -> None:
    ctl, _ = controller(budget_ms=1000.0)
    ctl.force(SMALL)
    o = ctl.take()
    assert o is not None and (o.target, o.reason) == (SMALL, "override")
    ctl.on_snapshot(snap(40.0))
    assert ctl.take() is None  # pinned
    ctl.force(None)
    o = ctl.take()
    assert o is not None and o.target == BIG  # released: the best that fits
    ctl.set_mode("static")
    ctl.force(None)
    ctl.on_snapshot(snap(95.0))
    assert ctl.take() is None  # static: not even the thermal guard moves it
    with pytest.raises(KeyError):
        ctl.force("cnn1d-base")  # not a candidate
    st = ctl.status()
    assert st["mode"] == "static" and st["active"] == BIG and st["switches"] == 2


def test_members_are_ranked_by_the_one_accuracy_they_all_have() -> None:
    """Validation figures exist for a few members only, on other windows (the refit parents saw
    the validation subjects): ranking by them let `pr50` (val 98.7 %, test 96.45 %) outrank
    `wc-w0.75-r096` (test 96.83 %, faster), so an idle board ran the less accurate member."""
    bank = load_manifest(MODELS)
    for e in bank.models:
        assert expected_accuracy(e) == e.metrics["accuracy"], e.id
    a, b = bank.get(BIG), bank.get(SMALL)
    easy = dataclasses.replace(a, metrics={**a.metrics, "accuracy": 0.90, "val_accuracy": 0.99})
    hard = dataclasses.replace(b, metrics={**b.metrics, "accuracy": 0.95})
    assert [e.id for e in pareto([easy, hard], {BIG: 1.0, SMALL: 2.0})] == [BIG, SMALL]
    assert [e.id for e in pareto([easy, hard], {BIG: 2.0, SMALL: 1.0})] == [SMALL]


def test_the_whole_banks_front_tops_out_at_its_most_accurate_member() -> None:
    bank = load_manifest(MODELS)
    front = pareto(list(bank.models), bank_latencies(bank.models))
    best = max(bank.models, key=lambda e: e.metrics["accuracy"])
    assert front[-1].metrics["accuracy"] == best.metrics["accuracy"]


def test_candidates_must_exist_and_share_the_hop() -> None:
    bank = load_manifest(MODELS)
    prof = adaptive_profile(candidates=(BIG, "nope"))
    with pytest.raises(ConfigError, match="nope"):
        candidates_of(prof, bank)
    assert [e.id for e in candidates_of(adaptive_profile(), bank)] == list(TRIO)
    with pytest.raises(ConfigError, match="--force"):
        build_adaptive(
            adaptive_profile(),
            bank,
            SessionSettings(),
            time.perf_counter,
            time.monotonic,
            force="cnn1d-base",
            monitor=False,
        )


def test_start_picks_the_best_that_fits_the_budget() -> None:
    bank = load_manifest(MODELS)
    base_big = float(bank.get(BIG).latency_ms["p50"])
    parts = build_adaptive(
        adaptive_profile(deadline_ms=base_big),  # BIG needs 100% of it; 70% is the rule
        bank,
        SessionSettings(),
        time.perf_counter,
        time.monotonic,
        monitor=False,
    )
    assert parts.initial.entry.id != BIG
    assert {s.rate_hz for s in parts.specs} == {37.5, 12.5, 50.0}


def run_with_heat(prof: Profile, publisher: Any = None) -> tuple[Any, list[Prediction]]:
    """Replay a test subject; the fake monitor reports 85 C from window 20 and 40 C from 60."""
    preds: list[Prediction] = []
    agent_box: list[Any] = []

    def observer(p: Prediction) -> None:
        preds.append(p)
        ctl = agent_box[0].pipeline.controller
        if len(preds) == 20:
            ctl.on_snapshot(snap(85.0))
        elif len(preds) == 60:
            ctl.on_snapshot(snap(40.0))

    agent = build_agent(
        prof,
        options=RunOptions(recording=RECORDINGS[0], speed=0.0, loop=False, monitor=False),
        publisher=publisher,
        clock=SystemClock(),
        observer=observer,
    )
    agent_box.append(agent)
    agent.run()
    return agent, preds


def check_switches(configs: list[dict[str, Any]], preds: list[dict[str, Any]]) -> None:
    assert [(c["reason"], c["model"]) for c in configs] == [
        ("start", BIG),
        ("thermal", MID),  # half of BIG's MACs: the best under the cap
        ("headroom", BIG),
    ]
    assert configs[1]["previous"] == BIG and configs[1]["temperature_c"] == 85.0
    # no CPU-share or energy cap in this profile: the tightest limit is the deadline budget
    assert all(c["limit_ms"] == c["budget_ms"] for c in configs[1:])
    assert "limit_ms" not in configs[0]  # start carries no switch figures
    # every prediction carries the member that made it, switching at the announced seq
    models = [p["model"] for p in preds]
    assert models == [BIG] * 20 + [MID] * 40 + [BIG] * (len(preds) - 60)
    assert [c["seq"] for c in configs] == [0, 20, 60]
    assert [p["seq"] for p in preds] == list(range(len(preds)))
    # no window skipped or repeated across the switches: consecutive starts one hop apart
    starts = [p["window"]["start"] for p in preds]
    from agent.payload import parse_time

    secs = [parse_time(s).timestamp() for s in starts]
    steps = [b - a for a, b in zip(secs, secs[1:], strict=False)]
    assert all(0.9 <= s <= 1.65 for s in steps), sorted(steps)[:3] + sorted(steps)[-3:]


def test_switch_path_in_memory() -> None:
    pub = MemoryPublisher()
    agent, preds = run_with_heat(adaptive_profile(), pub)
    configs = [json.loads(p) for p in pub.payloads("/config")]
    check_switches(configs, [json.loads(p) for p in pub.payloads("/prediction")])
    assert agent.pipeline.stats.switches == 2
    # accuracy stays that of good models on this test subject
    assert agent.pipeline.stats.accuracy is not None and agent.pipeline.stats.accuracy > 0.85


@pytest.mark.integration
def test_switch_events_reach_a_real_broker(broker: Broker) -> None:
    sub = Subscriber(broker.port)
    try:
        agent, preds = run_with_heat(adaptive_profile(broker.port))
        got = sub.wait_for("/prediction", len(preds))
        configs = [json.loads(p) for p in sub.wait_for("/config", 3)]
        check_switches(configs, [json.loads(p) for p in got])
    finally:
        sub.close()
    # the last configuration is retained for late subscribers
    late = Subscriber(broker.port, "har/demo/config")
    try:
        msgs = late.wait_for("/config", 1)
        assert json.loads(msgs[-1])["model"] == BIG and late.messages[-1][2] is True
    finally:
        late.close()


def test_classifier_type_is_what_the_pool_hands_out() -> None:
    p = pool()
    assert isinstance(p.load_now(SMALL), Classifier)


def test_cli_replay_adaptive_and_force() -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    runner = CliRunner()
    rec = str(RECORDINGS[0])
    res = runner.invoke(
        app, ["replay", rec, "--fast", "--no-mqtt", "--force", MID, "--policy", "adaptive"]
    )
    assert res.exit_code == 0, res.output
    configs = [
        json.loads(line.split(" ", 1)[1])
        for line in res.stdout.splitlines()
        if line.startswith("har/demo/config ")
    ]
    assert configs and configs[0]["model"] == MID and configs[0]["mode"] == "adaptive"
    preds = [ln for ln in res.stdout.splitlines() if ln.startswith("har/demo/prediction ")]
    assert preds and all(f'"model":"{MID}"' in p for p in preds)  # pinned: never switched
    bad = runner.invoke(app, ["replay", rec, "--fast", "--no-mqtt", "--force", "nope"])
    assert bad.exit_code == 1 and "har-agent: error:" in bad.stderr and "nope" in bad.stderr


def test_force_without_policy_is_adaptive_and_release_hands_back() -> None:
    """``--force`` on a static profile is the adaptive runtime with a member pinned: the MQTT
    'release' lets the policy choose again. The override may pin a member off the front (the
    docs' example wc-w0.50-r064 is one with the default candidates), by CLI and by MQTT alike."""
    from agent.commands import handle_command
    from agent.profile import load_profile
    from tests.agent.helpers import DEFAULT_PROFILE

    prof = load_profile(DEFAULT_PROFILE)
    assert prof.policy.mode == "static"
    prof = dataclasses.replace(
        prof, source=dataclasses.replace(prof.source, kind="replay", path=str(RECORDINGS[0]))
    )
    opts = RunOptions(speed=0.0, loop=False, monitor=False, force_model="wc-w0.10-r064")
    agent = build_agent(prof, options=opts, publisher=MemoryPublisher())
    ctl = agent.pipeline.controller
    assert ctl is not None and ctl.policy.mode == "adaptive"
    off_front = "wc-w0.50-r064"
    assert off_front not in ctl.status()["candidates"] and off_front in ctl.status()["pinnable"]
    assert "wc-w0.10-r064" not in ctl.status()["candidates"]  # --force pinned one off it too

    def next_order() -> Any:  # a member not preloaded loads in the background first
        deadline = time.monotonic() + 30
        while (order := ctl.take()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return order

    reply = json.loads(handle_command(b'{"cmd":"force","model":"wc-w0.50-r064"}', ctl.status, ctl))
    assert reply["ok"], reply
    order = next_order()
    assert order is not None and (order.target, order.reason) == (off_front, "override")
    reply = json.loads(handle_command(b'{"cmd":"release"}', ctl.status, ctl))
    assert reply["ok"] and ctl.status()["override"] is None
    order = next_order()
    assert order is not None and order.reason == "candidates"
    assert order.target in ctl.status()["candidates"]
    # --policy static with --force stays static: pinned, and released it keeps that member
    opts = dataclasses.replace(opts, policy_mode="static")
    agent = build_agent(prof, options=opts, publisher=MemoryPublisher())
    assert agent.pipeline.controller is not None
    assert agent.pipeline.controller.policy.mode == "static"


@pytest.mark.parametrize("board", ["pi4", "pi5", "pizero2w"])
def test_board_profiles_build_an_adaptive_agent(board: str) -> None:
    """The shipped board profiles run the adaptive runtime (here fed by a recording)."""
    from agent.profile import load_profile
    from tests.agent.helpers import ROOT

    prof = load_profile(ROOT / "profiles" / f"{board}.toml")
    prof = dataclasses.replace(
        prof, source=dataclasses.replace(prof.source, kind="replay", path=str(RECORDINGS[0]))
    )
    pub = MemoryPublisher()
    opts = RunOptions(speed=0.0, loop=False, monitor=False)
    agent = build_agent(prof, options=opts, publisher=pub)
    ctl = agent.pipeline.controller
    assert ctl is not None and ctl.policy.mode == "adaptive"
    assert ctl.pool.used_bytes <= prof.policy.preload_mb * 2**20
    assert ctl.limits.budget_ms == pytest.approx(640.0)  # half the 1.28 s hop
    stats = agent.run()
    assert stats.windows > 200
    assert json.loads(pub.payloads("/config")[0])["reason"] == "start"


def test_a_static_run_says_so_in_its_config_event() -> None:
    """Without the adaptive runtime (``-m ID``) the config event still has ``mode``: consumers
    read one schema, whichever runtime published it."""
    prof = profile_for()
    pub = MemoryPublisher()
    opts = RunOptions(speed=0.0, loop=False, monitor=False, model_id="cnn1d-base")
    agent = build_agent(prof, options=opts, publisher=pub)
    assert agent.pipeline.controller is None
    agent.run()
    start = json.loads(pub.payloads("/config")[0])
    assert (start["reason"], start["model"], start["mode"]) == ("start", "cnn1d-base", "static")


def controller_over(
    p: SessionPool, e: dict[str, ModelEntry], budget_ms: float = 1000.0
) -> Controller:
    """A controller over the trio, ``BIG`` running, on the given pool (no dwell)."""
    base = {i: float(e[i].latency_ms["p50"]) for i in TRIO}
    pol = Policy(
        [Candidate(i, float(e[i].metrics["accuracy"]), e[i].macs) for i in TRIO],
        Limits(budget_ms=budget_ms, hop_ms=1280.0),
        PolicyTuning(dwell_s=0.0),
    )
    return Controller(pol, LatencyModel(base, alpha=0.5), p, pol.limits, time.monotonic, BIG)


def test_a_member_that_cannot_load_is_never_chosen_again() -> None:
    e = entries()
    bank = load_manifest(MODELS)
    real = SessionPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30)

    def loader(path: Path, entry: ModelEntry) -> Classifier:
        if entry.id == MID:
            raise ModelError(f"{path}: corrupt (test)")
        return real.load_now(entry.id)

    p = SessionPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30, loader)
    p.load_now(BIG)
    p.load_now(SMALL)
    base = {i: float(e[i].latency_ms["p50"]) for i in TRIO}
    pol = Policy(
        [Candidate(i, float(e[i].metrics["accuracy"]), e[i].macs) for i in TRIO],
        Limits(budget_ms=base[BIG] * 3, hop_ms=1280.0),
        PolicyTuning(dwell_s=0.0),
    )
    ctl = Controller(pol, LatencyModel(base, alpha=0.5), p, pol.limits, time.monotonic, BIG)
    # BIG at 3x its table figure: the bound (factor 2 + 2 x deviation 1) puts BIG over 0.9 of
    # the budget and MID within 0.7 of it: MID is the step down, and its load fails
    ctl.observe(BIG, base[BIG] / 1000)  # the first (cold) window: not taken as contention
    ctl.observe(BIG, base[BIG] * 3 / 1000)
    deadline = time.monotonic() + 30
    order = ctl.take()
    while order is None and time.monotonic() < deadline:
        time.sleep(0.01)
        order = ctl.take()
    assert MID in p.broken
    assert order is not None and order.target == SMALL  # not stuck waiting for MID
    with pytest.raises(ValueError, match=f"model '{MID}' cannot be used: .*corrupt"):
        ctl.force(MID)
    assert ctl.policy.override is None


def test_forcing_a_member_whose_file_changed_is_refused_at_once(tmp_path: Path) -> None:
    """The MQTT force of a member whose file is missing or altered answers ok: false with the
    reason, instead of ok and then waiting for a session that never loads."""
    import shutil

    from agent.commands import handle_command

    bank_dir = tmp_path / "models"
    shutil.copytree(MODELS, bank_dir)
    bank = load_manifest(bank_dir)
    e = {i: bank.get(i) for i in TRIO}
    p = SessionPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30)
    p.load_now(BIG)
    ctl = controller_over(p, e)
    path = bank.path_of(e[MID])
    path.write_bytes(path.read_bytes() + b"\0")  # altered on disk after the start
    reply = json.loads(
        handle_command(json.dumps({"cmd": "force", "model": MID}).encode(), dict, ctl)
    )
    assert reply["ok"] is False
    assert reply["error"].startswith(f"model '{MID}' cannot be used: ")
    assert "does not match the manifest's" in reply["error"]
    assert ctl.policy.override is None and MID in p.broken
    (bank_dir / e[SMALL].file).unlink()
    with pytest.raises(ValueError, match="model file is missing"):
        ctl.force(SMALL)


def test_an_override_whose_session_fails_to_load_is_released() -> None:
    e = entries()
    bank = load_manifest(MODELS)
    real = SessionPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30)

    def loader(path: Path, entry: ModelEntry) -> Classifier:
        if entry.id == MID:  # the file is the manifest's, but the runtime cannot load it
            raise ModelError(f"{path}: corrupt (test)")
        return real.load_now(entry.id)

    p = SessionPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30, loader)
    p.load_now(BIG)
    ctl = controller_over(p, e)
    ctl.force(MID)  # accepted: the file checks out
    deadline = time.monotonic() + 30
    while MID not in p.broken and time.monotonic() < deadline:
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while ctl.policy.override is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert MID in p.broken and ctl.policy.override is None  # released, not waited on forever
    assert ctl.status()["override"] is None


def test_pending_switch_is_dropped_by_static_mode_and_by_a_new_force() -> None:
    ctl, _ = controller(budget_ms=1000.0)
    ctl.force(SMALL)  # an order is ready
    ctl.set_mode("static")
    ctl.force(None)
    assert ctl.take() is None  # static and released: the old order does not apply
    ctl.set_mode("adaptive")
    ctl.force(SMALL)
    ctl.force(MID)  # supersedes the pending SMALL order
    o = ctl.take()
    assert o is not None and o.target == MID


def test_window_index_runs_on_across_switches() -> None:
    pub = MemoryPublisher()
    run_with_heat(adaptive_profile(), pub)
    idx = [json.loads(p)["window"]["index"] for p in pub.payloads("/prediction")]
    assert idx == list(range(idx[0], idx[0] + len(idx)))


def test_a_force_racing_a_failed_background_load_is_refused() -> None:
    """The member's file checks out, but its background load fails before the override is set
    (so the loader could not release it): force must not leave the override on a broken member."""
    e = entries()
    bank = load_manifest(MODELS)

    class RacingPool(SessionPool):
        def check(self, model_id: str) -> str | None:
            problem = super().check(model_id)
            self.broken[model_id] = "corrupt (the load failed meanwhile)"  # the race
            return problem

    p = RacingPool(bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30)
    p.load_now(BIG)
    ctl = controller_over(p, e)
    ctl.policy.force(SMALL)  # pinned earlier
    with pytest.raises(ValueError, match="the load failed meanwhile"):
        ctl.force(MID)
    assert ctl.policy.override == SMALL  # refused, and the earlier pin stays


def test_adaptive_without_the_monitor_says_what_it_loses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Step-ups and the thermal guard read the resource monitor: with it disabled the policy
    only ever steps down, which is said at start rather than discovered."""
    import logging

    from agent.profile import load_profile
    from tests.agent.helpers import ROOT

    prof = load_profile(ROOT / "profiles" / "pi4.toml")
    prof = dataclasses.replace(
        prof,
        source=dataclasses.replace(prof.source, kind="replay", path=str(RECORDINGS[0])),
        monitor=dataclasses.replace(prof.monitor, enabled=False),
    )
    with caplog.at_level(logging.WARNING, logger="agent.adaptive_factory"):
        build_agent(prof, publisher=MemoryPublisher())
    assert any(
        "never back up, and the thermal guard is off" in r.getMessage() for r in caplog.records
    )


def build(bank: Any) -> Any:
    return build_adaptive(
        adaptive_profile(),
        bank,
        SessionSettings(),
        time.perf_counter,
        time.monotonic,
        monitor=False,
    )


def _bank_copy(tmp_path: Path, *spoil: str) -> Any:
    """The committed bank copied to ``tmp_path``, without the model files of ``spoil``."""
    import shutil

    shutil.copytree(MODELS, tmp_path / "models")
    bank = load_manifest(tmp_path / "models")
    for mid in spoil:
        bank.path_of(bank.get(mid)).unlink()
    return bank


def test_unusable_candidates_at_start_are_warnings_and_summed_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent runs on without candidates whose files are missing or altered (by design), so
    each is a warning, not an error, and the count left is said once (review: 7 ERROR lines,
    then a normal run with exit 0)."""
    import logging

    bank = _bank_copy(tmp_path, MID, SMALL)
    with caplog.at_level(logging.INFO, logger="agent"):
        parts = build(bank)
    assert parts.initial.entry.id == BIG  # the start member loaded: the agent runs
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        *[
            (
                logging.WARNING,
                f"{bank.path_of(bank.get(m))}: model file is missing (model {m!r}); "
                "it will not be used",
            )
            for m in (MID, SMALL)  # the policy's order: most accurate first
        ],
        (logging.WARNING, "adaptive: 2 of 3 candidates cannot be used; running with the other 1"),
    ]


def test_one_unusable_candidate_needs_no_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    bank = _bank_copy(tmp_path)
    path = bank.path_of(bank.get(SMALL))
    path.write_bytes(path.read_bytes() + b"\0")  # altered: not the manifest's file
    with caplog.at_level(logging.WARNING, logger="agent"):
        build(bank)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(said) == 1 and said[0][0] == logging.WARNING
    assert "does not match the manifest's" in said[0][1] and "it will not be used" in said[0][1]


def test_an_unusable_start_member_still_stops_the_start(tmp_path: Path) -> None:
    """The member the agent is to run first is no candidate it can do without: an error."""
    bank = _bank_copy(tmp_path, *TRIO)
    with pytest.raises(ModelError, match=f"model file is missing \\(model '{BIG}'\\)"):
        build(bank)
