"""Builds the adaptive runtime (controller, session pool, monitor) from a profile's [policy]."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.adaptive import Controller
from agent.errors import ConfigError
from agent.inference import Classifier, SessionSettings
from agent.latency import LatencyModel, bank_latencies, load_latency_table
from agent.manifest import InputSpec, Manifest, ModelEntry
from agent.model_choice import check_model
from agent.monitor import ResourceMonitor, Sampler
from agent.policy import Candidate, Limits, Policy, PolicyTuning
from agent.profile import Profile
from agent.sessions import EngineWrap, SessionPool

log = logging.getLogger(__name__)


@dataclass
class AdaptiveParts:
    controller: Controller
    initial: Classifier
    specs: tuple[InputSpec, ...]
    """Input specs of every candidate (the pipeline keeps one front per distinct spec)."""
    monitor: ResourceMonitor | None


def expected_accuracy(entry: ModelEntry) -> float:
    """What the policy ranks members by: accuracy on the test subjects (``metrics.accuracy``),
    the one figure every member has, measured on the same windows. The validation figures some
    members record come from other windows (and the refit parents saw the validation subjects),
    so mixing them in would rank a member by an easier test than its neighbours."""
    value = entry.metrics.get("accuracy", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def candidates_of(profile: Profile, manifest: Manifest) -> list[ModelEntry]:
    ids = profile.policy.candidates
    where = f"{profile.where}: policy.candidates"
    if ids:
        known = {m.id for m in manifest.models}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ConfigError(f"{where} names members not in the bank: {', '.join(unknown)}")
        entries = [manifest.get(i) for i in ids]
    else:
        entries = list(manifest.models)
    first = entries[0]
    for e in entries[1:]:
        if abs(e.input.window.hop_s - first.input.window.hop_s) > 1e-6 or e.labels != first.labels:
            raise ConfigError(
                f"{where}: {e.id} and {first.id} differ in hop or labels; the members the agent "
                "switches between must share the window's hop and the label set"
            )
    return entries


def pareto(entries: list[ModelEntry], base_ms: dict[str, float]) -> list[ModelEntry]:
    """The members no other member beats on both latency and accuracy. The policy would never
    pick a dominated one (whenever it fits, a faster and more accurate member fits too), so
    it is not preloaded; the override may still pin it (its session loads then)."""
    out: list[ModelEntry] = []
    best = float("-inf")
    for e in sorted(entries, key=lambda e: (base_ms[e.id], -expected_accuracy(e))):
        if expected_accuracy(e) > best:
            out.append(e)
            best = expected_accuracy(e)
    return out


def budget_ms(profile: Profile, hop_s: float) -> float:
    pol = profile.policy
    return pol.deadline_ms if pol.deadline_ms > 0 else pol.deadline_fraction * hop_s * 1000.0


def build_adaptive(
    profile: Profile,
    manifest: Manifest,
    settings: SessionSettings,
    perf: Callable[[], float],
    monotonic: Callable[[], float],
    *,
    force: str | None = None,
    mode: str | None = None,
    monitor: bool = True,
    wrap: EngineWrap | None = None,
) -> AdaptiveParts:
    pol = profile.policy
    if force is not None:
        check_model("--force", force, manifest)  # not in the bank at all (a typo, another bank)
    entries = candidates_of(profile, manifest)
    if pol.latency_table:
        base = load_latency_table(profile.resolve(pol.latency_table))
    else:
        base = bank_latencies(entries)
    missing = [e.id for e in entries if e.id not in base]
    if missing:
        log.warning("no latency figure for %s: left out of the policy", ", ".join(missing))
    entries = [e for e in entries if e.id in base]
    if not entries:
        raise ConfigError(f"{profile.where}: no candidate member has a latency figure")
    front = pareto(entries, base)
    on_front = {e.id for e in front}
    off_front = [e for e in entries if e.id not in on_front]  # the override may pin these too
    log.info(
        "adaptive: %d of %d candidates are on the accuracy/latency front: %s",
        len(front),
        len(entries),
        ", ".join(e.id for e in front),
    )
    if pol.energy_mj > 0 and profile.energy.core_w <= 0:
        log.warning(
            "policy.energy_mj = %g is set but energy.core_w = 0: the energy cap is off (it "
            "converts predicted inference time to energy at core_w watts)",
            pol.energy_mj,
        )
    hop_s = entries[0].input.window.hop_s
    limits = Limits(
        budget_ms=budget_ms(profile, hop_s),
        hop_ms=hop_s * 1000.0,
        cpu_share=pol.cpu_share,
        energy_mj=pol.energy_mj,
        core_w=profile.energy.core_w,
    )
    policy = Policy(
        [Candidate(e.id, expected_accuracy(e), e.macs) for e in front],
        limits,
        PolicyTuning(
            headroom_up=pol.headroom_up,
            headroom_down=pol.headroom_down,
            dwell_s=pol.dwell_s,
            thermal_c=pol.thermal_c,
            thermal_release_c=pol.thermal_release_c,
        ),
        mode=mode or pol.mode,
        pinnable=[Candidate(e.id, expected_accuracy(e), e.macs) for e in off_front],
    )
    if force is not None:
        if not policy.knows(force):
            raise ConfigError(
                f"--force {force!r}: not one of the policy's candidates "
                f"({profile.where}: policy.candidates, members with a latency figure)"
            )
        policy.force(force)
    latency = LatencyModel({e.id: base[e.id] for e in entries}, alpha=pol.ewma_alpha)
    pool = SessionPool(manifest, entries, settings, perf, int(pol.preload_mb * 2**20), wrap=wrap)
    start = policy.initial(latency.predict_all())
    initial = pool.load_now(start.id)
    loaded = pool.preload(c.id for c in policy.candidates)
    unusable = [c.id for c in policy.candidates if c.id in pool.broken]
    if len(unusable) > 1:  # after a warning for each: how much of the bank is left
        log.warning(
            "adaptive: %d of %d candidates cannot be used; running with the other %d",
            len(unusable),
            len(policy.candidates),
            len(policy.candidates) - len(unusable),
        )
    log.info(
        "adaptive: %d candidates, budget %g ms per window, %d sessions preloaded, start with %s",
        len(front),
        limits.budget_ms,
        len(loaded),
        start.id,
    )
    controller = Controller(policy, latency, pool, limits, monotonic, start.id)
    mon = None
    if monitor and profile.monitor.enabled:
        sampler = Sampler(thermal_zone=profile.monitor.thermal_zone, clock=monotonic)
        mon = ResourceMonitor(
            sampler, profile.monitor.interval_s, controller.on_snapshot, clock=monotonic
        )
    elif monitor:
        log.warning(
            "adaptive policy with [monitor] enabled = false: it steps down on missed deadlines "
            "but never back up, and the thermal guard is off (both read the monitor)"
        )
    return AdaptiveParts(controller, initial, tuple(e.input for e in entries), mon)
