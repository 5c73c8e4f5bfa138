"""``har-agent bench``: how fast, how heavy and how hungry a model is on this board.

In the spirit of TensorFlow Lite's ``benchmark_model`` and ``onnxruntime_perf_test``: load the
model (timed), run it once (timed: the first inference), warm up, then time a lean loop of bare
``session.run`` calls; report latency percentiles, throughput, CPU share, memory, energy per
inference from an :mod:`agent.energy` meter, and accuracy when the inputs come from a labelled
recording. docs/benchmarks.md explains every figure.

The parts: :mod:`agent.bench_targets` (what is measured, its session), :mod:`agent.bench_inputs`
(random windows, or a recording's windows as the agent cuts them), :mod:`agent.bench_figures`
(the result), :mod:`agent.bench_table` (the policy's latency table); this module times.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.bench_figures import BenchResult, EnergyFigures, LatencyStats, PlainCheck
from agent.bench_inputs import Inputs, random_inputs
from agent.bench_targets import Target, load_target
from agent.energy import MIN_READINGS, EnergyMeter
from agent.errors import AgentError, ModelError
from agent.inference import SessionSettings
from agent.manifest import Manifest, ModelEntry, load_manifest
from agent.onnx_params import op_types_of_file

BENCH_VERSION = 1
PLAIN_BLOCKS = 10
"""With the plain-loop check, the timed phase alternates this many blocks of each loop."""
PACED_GAP_S = 0.02
"""Pause before each paced run: the daemon runs a model once per hop, with its caches cooled
by everything else it did meanwhile, several times slower than back-to-back runs (0.02 vs
0.3 ms for the smallest member on the development VM). The latency table uses paced runs."""


@dataclass(frozen=True)
class BenchOptions:
    warmup: int = 20
    runs: int | None = None
    duration_s: float | None = None
    settings: SessionSettings = SessionSettings()
    check_plain: bool = False
    seed: int = 0
    paced_runs: int = 0
    """Also time this many runs, each after a pause (:data:`PACED_GAP_S`): what the daemon sees
    (``--table`` sets it)."""

    @property
    def stop_rule(self) -> tuple[int, float]:
        """(at least this many runs, at least this many seconds). ``--runs`` alone: exactly N;
        ``--duration`` alone: S seconds; both: whichever comes last; neither: 200 runs and 2 s."""
        if self.runs is None and self.duration_s is None:
            return 200, 2.0
        return (self.runs or 1), (self.duration_s or 0.0)


# -- the loops -------------------------------------------------------------------------------


def split_runs(n: int, blocks: int) -> list[int]:
    """``n`` runs shared out over ``blocks`` blocks, the first ``n % blocks`` one run longer:
    ``--runs N --check-plain`` times exactly N runs of each loop (rounding every block up ran
    ``ceil(N / 10) * 10``)."""
    q, r = divmod(n, blocks)
    return [q + (b < r) for b in range(blocks)]


def paced_loop(
    run: Callable[..., Any],
    output_names: list[str],
    input_name: str,
    arrays: Sequence[np.ndarray],
    n: int,
    gap_s: float = PACED_GAP_S,
) -> list[float]:
    """``n`` runs, each timed alone after a pause of ``gap_s`` (seconds each)."""
    out: list[float] = []
    perf = time.perf_counter
    for i in range(n):
        time.sleep(gap_s)
        x = arrays[i % len(arrays)]
        t0 = perf()
        run(output_names, {input_name: x})
        out.append(perf() - t0)
    return out


def timed_loop(
    run: Callable[..., Any],
    output_names: list[str],
    input_name: str,
    arrays: Sequence[np.ndarray],
    min_runs: int,
    min_s: float,
) -> list[float]:
    """Time ``run(output_names, {input_name: x})`` until both ``min_runs`` and ``min_s`` are
    reached, cycling through ``arrays``.

    What is timed is the call as the agent makes it (:meth:`OrtEngine.run`: a one-entry feed
    dict and the output's name); nothing else sits between the two clock reads.
    """
    perf = time.perf_counter
    times: list[float] = []
    append = times.append
    k = len(arrays)
    i = 0
    start = t1 = perf()
    while i < min_runs or t1 - start < min_s:
        x = arrays[i % k]
        t0 = perf()
        run(output_names, {input_name: x})
        t1 = perf()
        append(t1 - t0)
        i += 1
    return times


def plain_loop(session: Any, input_name: str, arrays: Sequence[np.ndarray], n: int) -> list[float]:
    """The reference: ``session.run(None, {name: x})`` timed with perf_counter, nothing else."""
    out: list[float] = []
    for j in range(n):
        x = arrays[j % len(arrays)]
        t0 = time.perf_counter()
        session.run(None, {input_name: x})
        out.append(time.perf_counter() - t0)
    return out


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes; the agent targets Linux). The kernel syncs
    # its high-water mark lazily, so callers take the max with a current RSS reading.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def measure_idle_power(meter: EnergyMeter, seconds: float) -> float:
    """Watts the meter sees while this process sleeps (the board's idle as the meter sees it)."""
    j0 = meter.joules()
    t0 = time.perf_counter()
    time.sleep(seconds)
    j1 = meter.joules()
    return (j1 - j0) / (time.perf_counter() - t0)


@dataclass(frozen=True)
class Primer:
    """The model whose throwaway session pays ONNX Runtime's start-up before a target runs."""

    target: Target
    note: str | None = None
    """Set when the primer is the measured model itself (a file outside the manifest, a
    one-member bank): the start-up figure may then hold some of the model's own memory."""


_primed_with: Path | None = None
"""The file :func:`prime_runtime` last primed this process with (ONNX Runtime's start-up is the
process's, too)."""

SELF_PRIMED_NOTE = (
    "no other model to prime ONNX Runtime with: the start-up figure may include some of this "
    "model's own memory, and its session figure is then low"
)


def choose_primer(target: Target, manifest: Manifest | None = None) -> Primer:
    """Another bank member that runs the same kernels as ``target``, the smallest one: the same
    op set and family first, then the same op set, then the same family, then any. Priming with
    the measured model itself freed its session's memory into the allocator, where the measured
    session found it again (``wc-w1.00-r128`` alone: session 0.76 MiB, in ``-m all`` 2.17).
    ``manifest`` defaults to the one beside a bank member's file."""
    if target.entry is None:
        return Primer(target, SELF_PRIMED_NOTE)
    if manifest is None:
        try:
            manifest = load_manifest(target.path.parent)
        except AgentError:
            return Primer(target, SELF_PRIMED_NOTE)
    ops = op_types_of_file(target.path)
    entry = target.entry
    # smallest first, the same family before the others; each file's op set is read only as
    # far as the first candidate with the same one (not every member of the bank)
    others = sorted(
        (e for e in manifest.models if e.id != entry.id and manifest.path_of(e).is_file()),
        key=lambda e: (e.family != entry.family, e.file_bytes, e.id),
    )
    same = (e for e in others if ops is not None and op_types_of_file(manifest.path_of(e)) == ops)
    chosen: ModelEntry | None = next(same, others[0] if others else None)
    if chosen is None:
        return Primer(target, SELF_PRIMED_NOTE)
    return Primer(Target(chosen.id, manifest.path_of(chosen), chosen))


def primed_with() -> Path | None:
    """The model file this process's ONNX Runtime was last primed with, or None."""
    return _primed_with


def prime_runtime(target: Target, opts: BenchOptions, manifest: Manifest | None = None) -> float:
    """Open a model that runs ``target``'s kernels (:func:`choose_primer`) once, run it as
    :func:`bench_model` does (first run and warm-up), and throw the session away; return how
    much this process's RSS grew, MiB.

    ONNX Runtime's one-time start-up (its environment, the kernel registries, the math
    library's first buffers: 13-17 MiB on the development VM, and more than a session of a
    bare Identity graph pays) lands on the first session a process runs. Without this the
    first model benchmarked was charged with it (15.6 KiB ``wc-w0.10-r032``: "session + first
    runs 13.5 MiB"), and ``session_mb`` meant something else for it than for the others. The
    growth returned also holds the throwaway session's own share, which later sessions may
    reuse: hence another model than the one measured, whenever there is one.
    """
    global _primed_with
    primer = choose_primer(target, manifest).target
    rss0 = _rss_bytes()
    loaded = load_target(primer, opts.settings)
    arrays = random_inputs(loaded.input_shape, opts.seed).arrays
    run, outs, name = loaded.session.run, loaded.output_names, loaded.input_name
    try:
        for i in range(1 + opts.warmup):
            run(outs, {name: arrays[i % len(arrays)]})
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError(f"model {primer.name!r}: inference failed ({exc})") from exc
    del loaded, run
    _primed_with = primer.path.resolve()
    return max(0, _rss_bytes() - rss0) / 2**20


def bench_model(
    target: Target,
    opts: BenchOptions,
    inputs_for: Callable[[Target, tuple[int, ...]], Inputs] | None = None,
    meter: EnergyMeter | None = None,
    idle: tuple[float, str] | None = None,
) -> BenchResult:
    """Benchmark one model. ``inputs_for`` builds its inputs (default: random of its shape);
    ``idle`` is (watts, source) to subtract from the meter's figure."""
    s = opts.settings
    rss0 = _rss_bytes()
    loaded = load_target(target, s)
    inputs = (inputs_for or (lambda _t, shape: random_inputs(shape, opts.seed)))(
        target, loaded.input_shape
    )
    sess = loaded.session
    name = loaded.input_name
    run = sess.run
    outs = loaded.output_names
    t0 = time.perf_counter()
    try:
        run(outs, {name: inputs.arrays[0]})
        first_s = time.perf_counter() - t0
        for i in range(opts.warmup):
            run(outs, {name: inputs.arrays[i % len(inputs.arrays)]})
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError(f"model {target.name!r}: inference failed ({exc})") from exc
    rss_loaded = _rss_bytes()
    min_runs, min_s = opts.stop_rule
    e0 = meter.joules() if meter is not None else 0.0
    cpu0, w0 = time.process_time(), time.perf_counter()
    plain: PlainCheck | None = None
    done = 0
    if opts.check_plain:
        bench_t: list[float] = []
        plain_t: list[float] = []
        per_s = min_s / PLAIN_BLOCKS
        blocks = 0
        for b, per_runs in enumerate(split_runs(min_runs, PLAIN_BLOCKS)):
            # ABBA order: drift in the machine's load falls on both loops alike
            if b % 2 == 0:
                got = timed_loop(run, outs, name, inputs.arrays, per_runs, per_s)
                plain_t += plain_loop(sess, name, inputs.arrays, len(got))
            else:
                pre = plain_loop(sess, name, inputs.arrays, per_runs)
                got = timed_loop(run, outs, name, inputs.arrays, per_runs, per_s)
                plain_t += pre + plain_loop(sess, name, inputs.arrays, len(got) - len(pre))
            bench_t += got
            blocks += bool(got)
        times = bench_t
        done = len(bench_t) + len(plain_t)
        bp, pp = statistics.median(bench_t) * 1e3, statistics.median(plain_t) * 1e3
        plain = PlainCheck(bp, pp, bp / pp, blocks, len(bench_t))  # --runs 3: 3 blocks ran
    else:
        times = timed_loop(run, outs, name, inputs.arrays, min_runs, min_s)
        done = len(times)
    wall = time.perf_counter() - w0
    cpu = time.process_time() - cpu0
    e1 = meter.joules() if meter is not None else 0.0
    rss1 = _rss_bytes()
    result = BenchResult(
        model=target.name,
        source="manifest" if target.entry is not None else "file",
        path=str(target.path.resolve()),
        file_bytes=loaded.file_bytes,
        params=loaded.params,
        macs=target.entry.macs if target.entry is not None and target.entry.macs else None,
        input_shape=list(loaded.input_shape),
        inputs=inputs.kind,
        threads=s.intra_op_threads,
        spinning=s.allow_spinning,
        init_ms=loaded.load_s * 1e3,
        first_ms=first_s * 1e3,
        warmup=opts.warmup,
        runs=len(times),
        latency=LatencyStats.of(times),
        wall_s=wall,
        ips=done / wall if wall > 0 else 0.0,
        cpu_percent=100.0 * cpu / wall if wall > 0 else 0.0,
        rss_mb=rss1 / 2**20,
        session_mb=max(0, rss_loaded - rss0) / 2**20,
        peak_rss_mb=max(_peak_rss_bytes(), rss1) / 2**20,
        plain=plain,
        windows=len(inputs.arrays) if inputs.kind != "random" else 0,
    )
    if opts.paced_runs > 0:
        result.paced = LatencyStats.of(paced_loop(run, outs, name, inputs.arrays, opts.paced_runs))
    if target.entry is None:
        result.notes.append("not in the manifest: no sha256 check, no MACs, random input")
    if _primed_with is not None and _primed_with == target.path.resolve():
        result.notes.append(SELF_PRIMED_NOTE)
    if meter is not None:
        result.energy, result.energy_note = _energy(meter, e1 - e0, wall, cpu, done, idle)
    if any(lbl is not None for lbl in inputs.labels) and target.entry is not None:
        result.accuracy, result.labelled = _accuracy(sess, name, outs, inputs, target.entry)
    return result


def _energy(
    meter: EnergyMeter,
    joules: float,
    wall: float,
    cpu: float,
    runs: int,
    idle: tuple[float, str] | None,
) -> tuple[EnergyFigures | None, str | None]:
    if wall < MIN_READINGS * meter.resolution_s:  # (the agent's rule: EnergySpan.why)
        return None, (
            f"the timed loop ({wall:.3f} s) is too short for {meter.name} (samples every "
            f"{meter.resolution_s:g} s): use --duration"
        )
    if meter.kind == "estimated":
        idle_w = float(getattr(meter, "idle_w", 0.0))
        work = joules
        total = joules + idle_w * wall
        figures = EnergyFigures(
            meter.name, meter.kind, 1e3 * work / runs, 1e3 * total / runs, idle_w, "profile", joules
        )
        return figures, None
    net = None if idle is None else 1e3 * max(0.0, joules - idle[0] * wall) / runs
    figures = EnergyFigures(
        meter.name,
        meter.kind,
        net,
        1e3 * joules / runs,
        idle[0] if idle else None,
        idle[1] if idle else None,
        joules,
    )
    return figures, None


def _accuracy(
    session: Any, name: str, outs: list[str], inputs: Inputs, entry: ModelEntry
) -> tuple[float | None, int]:
    labelled = correct = 0
    classes = set(entry.labels)
    for x, label in zip(inputs.arrays, inputs.labels, strict=True):
        if label not in classes:  # unlabelled, mixed, or a class the model has not (transitions)
            continue
        logits = np.asarray(session.run(outs, {name: x})[0]).reshape(-1)
        labelled += 1
        correct += int(entry.labels[int(logits.argmax())] == label)
    return (correct / labelled if labelled else None), labelled
