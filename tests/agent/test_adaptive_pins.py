"""Review s14, finding C: the pins that keep a ready switch's session loaded must be set in the
same step as the switch (under the controller's lock) and as the look-up of that session (under
the pool's), or a background load's eviction can drop the session a ready order runs next."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agent.adaptive import Controller
from agent.inference import Classifier, SessionSettings
from agent.latency import LatencyModel
from agent.manifest import ModelEntry, load_manifest
from agent.policy import Candidate, Limits, Policy, PolicyTuning
from agent.sessions import SessionPool
from tests.agent.helpers import MODELS

BIG, MID, SMALL, OTHER = "wc-w0.75-r096", "wc-w0.25-r128", "wc-w0.12-r032", "wc-w0.50-r128"
ACCURACY = {BIG: 0.968, MID: 0.966, SMALL: 0.951}


class Dummy:
    def run(self, x: Any) -> Any:
        return x


def fake_loader(path: Path, entry: ModelEntry) -> Classifier:
    return Classifier(entry, Dummy(), time.perf_counter)


def setup() -> tuple[Controller, SessionPool, LatencyModel]:
    bank = load_manifest(MODELS)
    e = {i: bank.get(i) for i in (BIG, MID, SMALL, OTHER)}
    pool = SessionPool(
        bank, e.values(), SessionSettings(), time.perf_counter, 1 << 30, loader=fake_loader
    )
    for i in (BIG, MID, SMALL):
        pool.load_now(i)
    pol = Policy(
        [Candidate(i, ACCURACY[i], e[i].macs) for i in (BIG, MID, SMALL)],
        Limits(budget_ms=1.0, hop_ms=1280.0),
        PolicyTuning(dwell_s=0.0),
    )
    lat = LatencyModel({BIG: 10.0, MID: 0.6, SMALL: 0.3})
    ctl = Controller(pol, lat, pool, pol.limits, time.monotonic, BIG)
    return ctl, pool, lat


def test_a_decision_right_after_take_keeps_its_target_pinned() -> None:
    """The review's interleaving: (1) the pipeline's take() switches BIG -> MID; (2) the monitor
    thread decides MID is over budget too and prepares an order to SMALL, pinning MID and SMALL;
    (3) take()'s pin of MID alone must not overwrite that; (4) a load that makes room must not
    evict SMALL while the order to it is pending."""
    ctl, pool, lat = setup()
    ctl._decide()  # BIG over budget: an order to MID (loaded)
    assert ctl._order is not None and ctl._order.target == MID
    lat.base_ms[MID] = 5.0  # MID turns out too slow as well

    real_pin = pool.pin
    monitor: list[threading.Thread] = []

    def pin(*ids: str) -> None:
        # take()'s pin of the new member: the monitor thread decides at this point. Where the
        # controller holds its lock here (the fix) the decision waits for take() to finish
        if not monitor and len(ids) == 1 and threading.current_thread() is threading.main_thread():
            t = threading.Thread(target=ctl._decide, name="har-monitor")
            monitor.append(t)
            t.start()
            t.join(0.5)
        real_pin(*ids)

    pool.pin = pin  # type: ignore[method-assign]
    order = ctl.take()
    assert order is not None and order.target == MID
    monitor[0].join(5)
    assert not monitor[0].is_alive()
    pool.pin = real_pin  # type: ignore[method-assign]

    ready = ctl._order
    assert ready is not None and ready.target == SMALL and ready.previous == MID
    assert pool._pinned == {MID, SMALL}
    pool.budget_bytes = 0  # any later load makes room: evicts whatever is not pinned
    pool.load_now(OTHER)
    assert SMALL in pool.loaded() and MID in pool.loaded()
    assert BIG not in pool.loaded()
    taken = ctl.take()
    assert taken is not None and taken.target == SMALL
    assert pool.get(SMALL) is taken.classifier  # still the pool's, counted in its budget


def test_an_eviction_between_lookup_and_pin_cannot_drop_the_target() -> None:
    """The second interleaving: a background load's eviction running right after _prepare has
    looked the target up (before it pins it) would drop the session the new order holds."""
    ctl, pool, _ = setup()
    real_get = pool.get

    def get(model_id: str) -> Classifier | None:
        c = real_get(model_id)
        if model_id == MID:  # a load in another thread makes room right now
            pool.budget_bytes = 0
            t = threading.Thread(target=pool.load_now, args=(OTHER,), name="har-load-x")
            t.start()
            t.join(5)
        return c

    pool.get = get  # type: ignore[method-assign]
    ctl._decide()  # BIG over budget: an order to MID
    pool.get = real_get  # type: ignore[method-assign]
    order = ctl._order
    assert order is not None and order.target == MID
    assert MID in pool.loaded()  # the order's session is still loaded and counted
    pool.budget_bytes = 0
    pool.load_now(SMALL)  # a later load cannot evict it either
    assert pool.get(MID) is order.classifier
