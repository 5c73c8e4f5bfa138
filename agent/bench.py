"""``har-agent bench``: how fast, how heavy and how hungry a model is on this board.

In the spirit of TensorFlow Lite's ``benchmark_model`` and ``onnxruntime_perf_test``: load the
model (timed), run it once (timed: the first inference), warm up, then time a lean loop of bare
``session.run`` calls; report latency percentiles, throughput, CPU share, memory, energy per
inference from an :mod:`agent.energy` meter, and accuracy when the inputs come from a labelled
recording. docs/benchmarks.md explains every figure.

Inputs are random (standard normal: the scale of normalised windows) or the windows of a
recording, cut and normalised as the agent cuts them for that model: the model's channels picked
by name and unit, resampled to the model's rate when the recording runs at another
(:class:`~agent.windowing.Resampler`), windowed with the model's length and hop
(:class:`~agent.windowing.Windower`, streamed), normalised with the manifest's statistics.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.energy import EnergyMeter
from agent.errors import DataError, ModelError
from agent.fronts import channel_indices
from agent.inference import SessionSettings, session_options, to_model_input
from agent.manifest import Manifest, ModelEntry
from agent.recording import Chunk, RecordingHeader, RecordingReader
from agent.windowing import Resampler, Windower

BENCH_VERSION = 1
TABLE_VERSION = 1
RANDOM_POOL = 16
"""Distinct random inputs cycled through the loop."""
PLAIN_BLOCKS = 10
PACED_GAP_S = 0.02
"""Pause before each paced run: the daemon runs a model once per hop, with its caches cooled
by everything else it did meanwhile, several times slower than back-to-back runs (0.02 vs
0.3 ms for the smallest member on the development VM). The latency table uses paced runs."""
"""With the plain-loop check, the timed phase alternates this many blocks of each loop."""
_EXTERNAL_DATA_MARK = b"\n\x08location\x12"


# -- what to benchmark -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bank member (``entry`` set) or an ONNX file outside the manifest."""

    name: str
    path: Path
    entry: ModelEntry | None = None


def resolve_targets(spec: str, manifest: Manifest | None) -> list[Target]:
    """``all``, a manifest id, or a path to an ``.onnx`` file."""
    if spec == "all":
        if manifest is None or not manifest.models:
            raise ModelError("no models in the bank to benchmark ('all')")
        return [Target(e.id, manifest.path_of(e), e) for e in manifest.models]
    if manifest is not None and any(e.id == spec for e in manifest.models):
        e = manifest.get(spec)
        return [Target(e.id, manifest.path_of(e), e)]
    path = Path(spec)
    if path.suffix == ".onnx" or path.exists() or "/" in spec:
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return [Target(path.name, path)]
    if manifest is None:
        raise ModelError(f"model {spec!r}: no manifest to look it up in, and no such file")
    manifest.get(spec)  # raises: not in the manifest, with the known ids
    raise AssertionError("unreachable")


# -- opening a session -----------------------------------------------------------------------


@dataclass
class Loaded:
    session: Any
    input_name: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    load_s: float
    """Reading the file, verifying it (bank members: sha256 against the manifest) and creating
    the ONNX Runtime session."""
    file_bytes: int
    params: int | None
    sha_checked: bool


def load_target(target: Target, settings: SessionSettings) -> Loaded:
    t0 = time.perf_counter()
    if target.entry is not None:
        from agent.inference import OrtEngine

        engine = OrtEngine(target.path, target.entry, settings)  # sha256, input name and shape
        session = engine.session
        load_s = time.perf_counter() - t0
        blob_size = target.path.stat().st_size
        shape = target.entry.input.shape
        params: int | None = target.entry.params or _params_of_file(target.path)
    else:
        session, load_s = _open_file(target.path, settings, t0)
        blob_size = target.path.stat().st_size
        shape = _concrete_shape(session, target.path)
        params = _params_of_file(target.path)
    return Loaded(
        session=session,
        input_name=session.get_inputs()[0].name,
        input_shape=shape,
        output_names=[session.get_outputs()[0].name],
        load_s=load_s,
        file_bytes=blob_size,
        params=params,
        sha_checked=target.entry is not None,
    )


def _open_file(path: Path, settings: SessionSettings, t0: float) -> tuple[Any, float]:
    import onnxruntime as ort

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from exc
    if _EXTERNAL_DATA_MARK in blob:
        raise ModelError(f"{path}: the model refers to external data files, which are refused")
    try:
        session = ort.InferenceSession(
            blob, sess_options=session_options(settings), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ModelError(f"{path}: ONNX Runtime cannot load the model ({first})") from exc
    return session, time.perf_counter() - t0


def _concrete_shape(session: Any, path: Path) -> tuple[int, ...]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: bench feeds models with one input, this one has {len(inputs)}")
    if inputs[0].type != "tensor(float)":
        raise ModelError(f"{path}: bench feeds float32 inputs, this model wants {inputs[0].type}")
    # symbolic dimensions (a batch axis named "N") become 1
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in inputs[0].shape)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message (varints and length-delimited)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, wire, value
        elif wire == 2:
            n, i = _varint(buf, i)
            yield number, wire, buf[i : i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")


def onnx_param_count(blob: bytes) -> int:
    """Elements in the graph's initializers (ModelProto.graph = 7, GraphProto.initializer = 5,
    TensorProto.dims = 1): the model's parameters, without the onnx package."""
    total = 0
    for number, _, graph in _fields(blob):
        if number != 7 or not isinstance(graph, bytes):
            continue
        for gnum, _, tensor in _fields(graph):
            if gnum != 5 or not isinstance(tensor, bytes):
                continue
            dims: list[int] = []
            for tnum, wire, value in _fields(tensor):
                if tnum != 1:
                    continue
                if wire == 0 and isinstance(value, int):
                    dims.append(value)
                elif isinstance(value, bytes):  # packed repeated int64
                    j = 0
                    while j < len(value):
                        d, j = _varint(value, j)
                        dims.append(d)
            total += int(np.prod(dims)) if dims else 1
    return total


def _params_of_file(path: Path) -> int | None:
    try:
        return onnx_param_count(path.read_bytes())
    except (OSError, ValueError, IndexError):
        return None


# -- inputs ----------------------------------------------------------------------------------


@dataclass
class Inputs:
    arrays: list[np.ndarray]
    labels: list[str | None]
    """Per input: the window's label as the agent computes it (None: random or mixed)."""
    kind: str


def random_inputs(shape: tuple[int, ...], seed: int = 0, n: int = RANDOM_POOL) -> Inputs:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    return Inputs(arrays, [None] * n, "random")


def read_chunks(path: Path, size: int = 256) -> tuple[RecordingHeader, list[Chunk]]:
    """A recording in memory, as the chunks a replay would hand the pipeline."""
    reader = RecordingReader(path)
    return reader.header, list(reader.chunks(size))


def recording_inputs(
    header: RecordingHeader, chunks: Sequence[Chunk], entry: ModelEntry, where: str
) -> Inputs:
    """The model inputs the agent would feed ``entry`` from this recording, with their labels."""
    spec = entry.input
    cols = channel_indices(header, spec.channels, spec.units, where)
    rate = header.sample_rate_hz
    resampler = Resampler(rate, spec.rate_hz) if abs(rate - spec.rate_hz) > 1e-9 else None
    windower = Windower(spec.window, len(spec.channels))
    arrays: list[np.ndarray] = []
    labels: list[str | None] = []
    for chunk in chunks:
        part = Chunk(chunk.t, chunk.values[:, cols], chunk.labels)
        if resampler is not None:
            part = resampler.push(part)
        for w in windower.push(part):
            if not np.isfinite(w.data).all():  # the agent does not classify these either
                continue
            arrays.append(to_model_input(entry.normalization(w.data), spec.layout))
            labels.append(w.label)
    if not arrays:
        raise DataError(f"{where} is too short for one {spec.length}-sample window of {entry.id}")
    return Inputs(arrays, labels, f"recording {where}")


# -- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds. Percentiles interpolate linearly between order statistics."""

    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        if not seconds:
            raise ValueError("no latencies")
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return cls(
            min_ms=float(ms.min()),
            mean_ms=float(ms.mean()),
            std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            p50_ms=float(p50),
            p90_ms=float(p90),
            p95_ms=float(p95),
            p99_ms=float(p99),
            max_ms=float(ms.max()),
        )


@dataclass(frozen=True)
class EnergyFigures:
    meter: str
    kind: str
    """``measured`` or ``estimated``."""
    mj_per_inference: float | None
    """The work's energy: above idle (measured meters: minus the idle baseline; the estimate:
    core_w x CPU time). None when a measured meter has no baseline (``--baseline 0``)."""
    total_mj_per_inference: float
    """Everything the meter saw during the loop (the estimate: plus idle_w x wall time), / runs."""
    idle_w: float | None
    idle_source: str | None
    """``measured`` (baseline before the loops) or ``profile`` (energy.idle_w)."""
    loop_j: float


@dataclass(frozen=True)
class PlainCheck:
    """The bench loop against a plain ``session.run`` loop, alternating blocks, same inputs."""

    bench_p50_ms: float
    plain_p50_ms: float
    ratio: float
    blocks: int
    runs_each: int


@dataclass
class BenchResult:
    model: str
    source: str
    """``manifest`` (sha256 verified) or ``file`` (outside the manifest: no checksum, accuracy)."""
    path: str
    file_bytes: int
    params: int | None
    macs: int | None
    input_shape: list[int]
    inputs: str
    threads: int
    spinning: bool
    init_ms: float
    first_ms: float
    warmup: int
    runs: int
    latency: LatencyStats
    wall_s: float
    ips: float
    cpu_percent: float
    rss_mb: float
    session_mb: float
    peak_rss_mb: float
    energy: EnergyFigures | None = None
    energy_note: str | None = None
    accuracy: float | None = None
    labelled: int = 0
    windows: int = 0
    plain: PlainCheck | None = None
    notes: list[str] = field(default_factory=list)
    paced: LatencyStats | None = None
    """Runs one at a time, each after a pause: the figure the latency table records."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """One CSV row."""
        e = self.energy
        p = self.plain
        row: dict[str, Any] = {
            "model": self.model,
            "source": self.source,
            "file_bytes": self.file_bytes,
            "params": self.params,
            "macs": self.macs,
            "inputs": self.inputs,
            "threads": self.threads,
            "spinning": self.spinning,
            "init_ms": self.init_ms,
            "first_ms": self.first_ms,
            "warmup": self.warmup,
            "runs": self.runs,
            **asdict(self.latency),
            "wall_s": self.wall_s,
            "ips": self.ips,
            "cpu_percent": self.cpu_percent,
            "rss_mb": self.rss_mb,
            "session_mb": self.session_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "energy_mj": e.mj_per_inference if e else None,
            "energy_total_mj": e.total_mj_per_inference if e else None,
            "meter": e.meter if e else None,
            "meter_kind": e.kind if e else None,
            "accuracy": self.accuracy,
            "labelled": self.labelled,
            "plain_p50_ms": p.plain_p50_ms if p else None,
            "bench_plain_ratio": p.ratio if p else None,
        }
        return row


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
        per_runs, per_s = -(-min_runs // PLAIN_BLOCKS), min_s / PLAIN_BLOCKS
        for b in range(PLAIN_BLOCKS):
            # ABBA order: drift in the machine's load falls on both loops alike
            if b % 2 == 0:
                got = timed_loop(run, outs, name, inputs.arrays, per_runs, per_s)
                plain_t += plain_loop(sess, name, inputs.arrays, len(got))
            else:
                pre = plain_loop(sess, name, inputs.arrays, per_runs)
                got = timed_loop(run, outs, name, inputs.arrays, per_runs, per_s)
                plain_t += pre + plain_loop(sess, name, inputs.arrays, len(got) - len(pre))
            bench_t += got
        times = bench_t
        done = len(bench_t) + len(plain_t)
        bp, pp = statistics.median(bench_t) * 1e3, statistics.median(plain_t) * 1e3
        plain = PlainCheck(bp, pp, bp / pp, PLAIN_BLOCKS, len(bench_t))
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
    if wall < 10 * meter.resolution_s:
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
    for x, label in zip(inputs.arrays, inputs.labels, strict=True):
        if label is None:
            continue
        logits = np.asarray(session.run(outs, {name: x})[0]).reshape(-1)
        labelled += 1
        correct += int(entry.labels[int(logits.argmax())] == label)
    return (correct / labelled if labelled else None), labelled


# -- the board and the policy's table -----------------------------------------------------------


def board_name() -> str:
    """Architecture, board or CPU model, and OS: ``aarch64 Raspberry Pi 5 Model B ...``."""
    cpu = platform.processor()
    model = None
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    found: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        found.setdefault(key.strip().lower(), value.strip())
    model = found.get("model") if not found.get("model", "").isdigit() else None
    cpu = model or found.get("model name") or found.get("hardware") or cpu
    return f"{platform.machine()} {cpu} ({platform.system()} {platform.release()})".strip()


def _table_row(st: LatencyStats) -> dict[str, float]:
    return {
        "p50_ms": round(st.p50_ms, 5),
        "p90_ms": round(st.p90_ms, 5),
        "p99_ms": round(st.p99_ms, 5),
        "mean_ms": round(st.mean_ms, 5),
    }


def latency_table(results: Sequence[BenchResult], board: str, threads: int) -> dict[str, Any]:
    """The per-board latency table the policy reads (agent/latency.py)."""
    import datetime

    import onnxruntime as ort

    return {
        "table_version": TABLE_VERSION,
        "board": board,
        "onnxruntime": ort.__version__,
        "threads": threads,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "measured": (
            f"one run at a time, each after a {PACED_GAP_S * 1000:g} ms pause, as the daemon "
            "runs a model once per hop (back_to_back_p50_ms: the benchmark's loop)"
        ),
        "models": {
            r.model: {
                **_table_row(r.paced or r.latency),
                "back_to_back_p50_ms": round(r.latency.p50_ms, 5),
            }
            for r in results
            if r.source == "manifest"
        },
    }
