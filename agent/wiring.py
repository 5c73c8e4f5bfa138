"""The one place that builds a running agent from a profile.

Everything the pipeline needs is made here and passed in through constructors, so tests build the
same agent with a :class:`~agent.publishers.MemoryPublisher` or a real broker, a fake clock or the
system clock. Files are opened and the model is loaded before the broker is contacted, so bad input
fails before anything is published.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.adaptive_factory import AdaptiveParts, build_adaptive, expected_accuracy
from agent.clock import Clock, SystemClock
from agent.discovery import discovery_messages, ha_status_topic
from agent.energy import EnergyCounter, EnergyMeter, EnergySpan, open_meter
from agent.errors import ConfigError, ModelError
from agent.inference import Classifier, SessionSettings
from agent.manifest import Manifest, ModelEntry
from agent.model_choice import check_model, chosen_model_id, profile_bank
from agent.monitor import ResourceMonitor, Sampler
from agent.payload import Prediction, Topics, parse_time
from agent.pipeline import Pipeline
from agent.profile import Profile
from agent.publisher_factory import make_publisher
from agent.publishers import Publisher
from agent.run_stats import RunStats
from agent.sdnotify import SystemdNotifier
from agent.sensors.bus import BusFactory
from agent.sessions import EngineWrap, load_engine
from agent.smoothing import Smoother
from agent.source_factory import make_source
from agent.sources import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Per-invocation overrides of the profile (the CLI's flags)."""

    recording: Path | None = None
    speed: float | None = None
    loop: bool | None = None
    model_id: str | None = None
    chunk_samples: int | None = None
    record_timings: bool = False
    use_outbox: bool = True
    """Put predictions through the disk outbox (the daemon); replays go straight to MQTT."""
    policy_mode: str | None = None
    """``adaptive`` or ``static`` instead of the profile's ``policy.mode``."""
    force_model: str | None = None
    """Pin this member in the adaptive runtime (the manual override)."""
    monitor: bool = True
    """Run the resource monitor thread (when the profile enables it)."""
    wrap_engine: EngineWrap | None = None
    """Wraps every inference engine (the load experiment emulates a slower board with it)."""
    retract_discovery: bool = False
    """Remove the Home Assistant discovery configs (empty retained payloads) when the run ends:
    a replay's device must not outlive it in Home Assistant."""


def option_conflict(opts: RunOptions) -> str | None:
    """Why ``opts`` contradict each other, in the CLI's words, or None. ``model_id`` (``-m``)
    runs one member alone, static; ``force_model`` (``--force``) and ``policy_mode`` adaptive
    ask for the adaptive runtime: neither may be dropped without a word."""
    m, f = opts.model_id, opts.force_model
    if m and f:
        if m == f:
            return (
                f"-m and --force both name {m}: use one (-m runs it alone; --force pins it "
                "in the adaptive runtime)"
            )
        return (
            f"-m {m} and --force {f} name different members: use one (-m runs one member "
            "alone; --force pins one in the adaptive runtime)"
        )
    if m and opts.policy_mode == "adaptive":
        return (
            "-m runs one member alone (static); it cannot be combined with --policy adaptive "
            "(--force ID pins a member in the adaptive runtime)"
        )
    return None


def pick_model(manifest: Manifest, model_id: str) -> ModelEntry:
    if model_id:
        return manifest.get(model_id)
    if not manifest.models:
        raise ModelError(f"{manifest.root / 'manifest.json'} lists no models")
    # int8 members are left to an explicit choice: whether they are faster depends on the
    # board's int8 dot-product instructions, which the bank's x86 latency figures do not tell
    pool = [m for m in manifest.models if m.family != "int8"] or list(manifest.models)
    # the most accurate (a non-number counts as 0, never a traceback); of equals, the cheapest
    return max(pool, key=lambda m: (expected_accuracy(m), -m.macs))


@dataclass
class Agent:
    pipeline: Pipeline
    publisher: Publisher
    stop: threading.Event
    notifier: SystemdNotifier
    discovery: list[tuple[str, bytes]] = field(default_factory=list)
    retract_discovery: bool = False
    """Publish an empty retained payload on every discovery topic when the run ends."""
    monitor: ResourceMonitor | None = None
    meter: EnergyMeter | None = None
    energy: EnergySpan | None = None
    """Energy the run took by :attr:`meter`, with its seconds, watts and what it covers (set
    when :meth:`run` returns)."""
    energy_j: float | None = None
    """The joules of :attr:`energy` (None when the meter failed)."""
    lost: int = 0
    """Messages the publisher lost at stop: neither delivered nor kept on disk."""

    def publish_discovery(self, payload: bytes = b"online") -> None:
        """(Re)publish the Home Assistant discovery configs, retained."""
        if payload.strip() != b"online":
            return
        for topic, body in self.discovery:
            self.publisher.publish(topic, body, qos=1, retain=True)

    def run(self) -> RunStats:
        """Connect, run until the source ends or ``stop`` is set, then say goodbye.

        Whatever ends the run (the source, ``stop``, a failed start, an error), the source (a
        sensor's bus and chip claim), the resource monitor, the energy meter and the publisher
        are closed on the way out. A stop that comes while the publisher waits for the broker
        ends the run there: nothing is published and the pipeline does not start."""
        counter: EnergyCounter | None = None
        monitoring = started = False
        try:
            self.publisher.start()
            if self.stop.is_set():  # stopped before the broker answered (Ctrl-C, SIGTERM)
                return self.pipeline.stats
            started = True
            self.publish_discovery()
            entry = self.pipeline.classifier.entry
            self.notifier.ready(f"running {entry.id} for {self.pipeline.device_id}")
            if self.monitor is not None:
                self.monitor.start()
                monitoring = True
            counter = EnergyCounter(self.meter) if self.meter is not None else None
            return self.pipeline.run()
        finally:
            # every step runs even when one before it fails (what failed is raised after the
            # others ran); an ExitStack runs them last in, first out: the energy is read first
            # (a meter that fails then still lets the rest close), then the source is closed,
            # the systemd socket last
            with contextlib.ExitStack() as closing:
                closing.callback(self.notifier.close)
                # after the goodbye (a session load in flight goes on meanwhile), join it
                if self.pipeline.controller is not None:
                    closing.callback(self.pipeline.controller.close)
                closing.callback(self._say_goodbye, started)
                closing.callback(self.notifier.stopping)
                if self.meter is not None:
                    closing.callback(self.meter.close)
                if self.monitor is not None and monitoring:
                    closing.callback(self.monitor.stop)
                closing.callback(self.pipeline.source.close)
                if counter is not None:
                    closing.callback(self._take_energy, counter)

    def _take_energy(self, counter: EnergyCounter) -> None:
        """What the meter counted over the run (before the meter is closed)."""
        self.energy = counter.span()
        self.energy_j = self.energy.joules

    def _say_goodbye(self, started: bool) -> None:
        """Retract the discovery configs (after a start that got that far) and stop the
        publisher, which waits for the broker's acknowledgements; :attr:`lost` is what it lost."""
        if started and self.retract_discovery:
            for topic, _ in self.discovery:  # before the goodbye, which waits for PUBACKs
                self.publisher.publish(topic, b"", qos=1, retain=True)
        self.lost = self.publisher.stop()


def _load_models(
    profile: Profile, opts: RunOptions, manifest: Manifest, clock: Clock
) -> tuple[Classifier, ResourceMonitor | None, AdaptiveParts | None]:
    """The classifier to start with, the resource monitor, and the adaptive runtime (or None)."""
    inf = profile.inference
    settings = SessionSettings(inf.intra_op_threads, inf.inter_op_threads, inf.allow_spinning)
    # --force is "the adaptive runtime with one member pinned": 'release' hands control back to
    # the policy, so it implies adaptive unless --policy says otherwise; -m (static, one member)
    # overrides the profile's policy.mode, never a --force or --policy adaptive (refused above)
    mode = opts.policy_mode or ("adaptive" if opts.force_model else profile.policy.mode)
    if (mode == "adaptive" or opts.force_model) and not opts.model_id:
        adaptive = build_adaptive(
            profile,
            manifest,
            settings,
            clock.perf,
            clock.monotonic,
            force=opts.force_model,
            mode=mode,
            monitor=opts.monitor,
            wrap=opts.wrap_engine,
        )
        return adaptive.initial, adaptive.monitor, adaptive
    entry = pick_model(manifest, chosen_model_id(profile, manifest, opts.model_id))
    engine = load_engine(manifest.path_of(entry), entry, settings, opts.wrap_engine)
    monitor = (
        ResourceMonitor(
            Sampler(thermal_zone=profile.monitor.thermal_zone, clock=clock.monotonic),
            profile.monitor.interval_s,
            clock=clock.monotonic,
        )
        if opts.monitor and profile.monitor.enabled
        else None
    )
    return Classifier(entry, engine, clock.perf), monitor, None


@contextlib.contextmanager
def _closed_on_error(source: Source) -> Iterator[None]:
    """Close ``source`` (a sensor's bus and claim; a replay holds nothing) if what follows fails."""
    try:
        yield
    except BaseException:
        source.close()
        raise


def build_agent(
    profile: Profile,
    *,
    options: RunOptions | None = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    observer: Callable[[Prediction], None] | None = None,
    bus_factory: BusFactory | None = None,
) -> Agent:
    opts = options or RunOptions()
    if (conflict := option_conflict(opts)) is not None:
        raise ConfigError(conflict)
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    manifest = profile_bank(profile)
    # the ids named on the command line: before the source, the publisher (an outbox opened) or
    # any session
    if opts.model_id:
        check_model("--model", opts.model_id, manifest)
    if opts.force_model is not None:
        check_model("--force", opts.force_model, manifest)
    # the source first: a missing sensor or recording fails before any session loads (a board's
    # restart loop would otherwise load the whole front every time only to fail on the bus)
    source, source_name = make_source(
        profile,
        clock=clock,
        stop=stop,
        recording=opts.recording,
        speed=opts.speed,
        loop=opts.loop,
        chunk_samples=opts.chunk_samples,
        bus_factory=bus_factory,  # live sensor: the I2C bus (tests: an emulation)
    )
    with _closed_on_error(source):  # a sensor holds its bus and its device claim
        # then the publisher: its own profile errors (a missing TLS file, an outbox.path that is not
        # an outbox) fail before the sessions load too
        link = (
            publisher
            if publisher is not None
            else make_publisher(profile, use_outbox=opts.use_outbox, stop=stop)
        )
        classifier, monitor, adaptive = _load_models(profile, opts, manifest, clock)
        entry = classifier.entry
        topics = Topics(profile.mqtt.topic_prefix, profile.device.id)
        notifier = SystemdNotifier()
        pipeline = Pipeline(
            source=source,
            source_name=source_name,
            classifier=classifier,
            smoother=Smoother(profile.smoothing.method, profile.smoothing.window),
            publisher=link,
            topics=topics,
            device_id=profile.device.id,
            clock=clock,
            stop=stop,
            origin=parse_time(source.header.start_time),
            qos=profile.mqtt.qos,
            record_timings=opts.record_timings,
            observer=observer,
            heartbeat=notifier.progress if notifier.gate is not None else None,  # no watchdog
            controller=adaptive.controller if adaptive else None,
            extra_specs=adaptive.specs if adaptive else (),
        )
        log.info(
            "model %s (%s), source %s at %g Hz",
            entry.id,
            entry.family,
            source_name,
            source.header.sample_rate_hz,
        )
        ecfg = profile.energy
        meter = open_meter(
            ecfg,
            bus_factory=bus_factory if ecfg.meter.startswith("ina") else None,
            sample_hz=ecfg.sample_hz or None,
        )
        agent = Agent(
            pipeline=pipeline,
            publisher=pipeline.publisher,
            stop=stop,
            notifier=notifier,
            monitor=monitor,
            meter=meter,
        )
        ha = profile.homeassistant
        if ha.discovery and publisher is None:
            agent.discovery = discovery_messages(topics, ha.prefix, entry.id)
            agent.retract_discovery = opts.retract_discovery
            pipeline.topic_handlers[ha_status_topic(ha.prefix)] = agent.publish_discovery
        pipeline.metrics = _metrics(pipeline, monitor, meter)
        return agent


def _metrics(
    pipeline: Pipeline, monitor: ResourceMonitor | None, meter: EnergyMeter | None
) -> Callable[[], dict[str, object]]:
    """The metrics topic's body beyond the pipeline status: outbox, resources and energy."""
    publisher = pipeline.publisher
    counter = EnergyCounter(meter) if meter is not None else None
    total = [0.0, 0]  # joules and windows since start

    def metrics() -> dict[str, object]:
        out: dict[str, object] = {}
        if counter is not None:
            span = counter.span()  # since the previous snapshot
            windows = pipeline.stats.windows
            new_windows = windows - int(total[1])
            if span.joules is not None:
                total[0] += span.joules
            total[1] = windows
            per, watts = span.per(new_windows), span.watts
            out["energy"] = {
                "meter": counter.meter.name,
                "kind": counter.meter.kind,
                "covers": span.covers,
                "includes_idle": span.includes_idle,
                "joules": round(total[0], 6),
                "seconds": round(span.seconds, 3),
                "watts": round(watts, 4) if watts is not None else None,
                "joules_per_window": round(per, 9) if per is not None else None,
                "note": span.why("interval") if span.joules is not None else None,
                "failure": counter.meter.failure,
            }
        if monitor is not None and monitor.latest is not None:
            out["resources"] = monitor.latest.to_dict()
            out["monitor_cpu_share"] = round(monitor.cost_share, 5)
        out.update(publisher.counters())  # an MQTT link's commands, an outbox's outbox
        return out

    return metrics
