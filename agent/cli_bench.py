"""``har-agent bench``: the command around :mod:`agent.bench` (docs/benchmarks.md).

Registered by :mod:`agent.cli` with :func:`register`; errors end like every other command: one
line, exit status 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer

from agent.bench_report import TABLE_PACED_RUNS, csv_text, terminal_lines
from agent.cli_common import DEFAULT_PROFILE, Command, fail, profile_option
from agent.errors import AgentError, ConfigError

if TYPE_CHECKING:
    from agent.bench_figures import BenchResult

ProfileOpt = Annotated[
    Path,
    profile_option("Profile (TOML): model folder, threads, spinning, energy meter."),
]


MAX_DURATION_S = 3600.0
"""Longest timed loop ``--duration`` asks for, per model (an hour)."""
MAX_BASELINE_S = 600.0
"""Longest idle-power measurement ``--baseline`` asks for (ten minutes)."""


def check_seconds(flag: str, value: float | None, most: float) -> str | None:
    """Why ``value`` seconds is refused for ``flag`` (``inf`` ran or slept forever), or None.
    (typer checks the lower bounds.)"""
    if value is None or (math.isfinite(value) and value <= most):
        return None
    return f"{flag} takes a finite number of seconds, at most {most:g} (got {value:g})"


def register(app: typer.Typer) -> None:
    app.command("bench", cls=Command)(bench)


def bench(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Bank member id, a path to an .onnx file, or 'all'."),
    ],
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    models_dir: Annotated[
        Path | None, typer.Option("--dir", help="Model folder (default: the profile's).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs before the timed loop.", min=0)] = 20,
    runs: Annotated[
        int | None, typer.Option(help="Timed runs (with --duration: at least this many).", min=1)
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Seconds to run the timed loop, at most 3600 (default: 200 runs and 2 s).",
            min=0.001,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="ONNX Runtime intra-op threads (default: the profile's).", min=1, max=256
        ),
    ] = None,
    spinning: Annotated[
        bool | None,
        typer.Option(
            "--spinning/--no-spinning",
            help="ONNX Runtime thread spinning (default: the profile's).",
            metavar="",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Feed windows of this recording (labelled: report accuracy)."),
    ] = None,
    meter: Annotated[
        str | None,
        typer.Option(
            help="Energy meter: auto, ina219, ina260, rapl, pmic, estimate, none "
            "(default: the profile's \\[energy] meter)."
        ),
    ] = None,
    baseline: Annotated[
        float,
        typer.Option(
            help="Seconds of idle power to measure first (measured meters), subtracted from "
            "energy per inference; 0: do not; at most 600.",
            min=0.0,
        ),
    ] = 2.0,
    check_plain: Annotated[
        bool,
        typer.Option(
            "--check-plain",
            help="Alternate the timed loop with a plain session.run loop (as many runs "
            "again); print both p50s.",
            metavar="",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON.", metavar="")
    ] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Machine-readable CSV.", metavar="")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the JSON/CSV here instead of stdout."),
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option("--table", help="Write the per-board latency table the policy reads."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.", min=0)] = 0,
) -> None:
    """Benchmark models: latency percentiles, throughput, CPU, memory, energy, accuracy."""
    # every check before minutes of measuring, not after
    if as_json and as_csv:
        raise fail(ConfigError("choose one of --json and --csv"))
    if out is not None and not (as_json or as_csv):
        raise fail(ConfigError("--out writes the JSON or the CSV: add --json or --csv"))
    for flag, seconds, most in (
        ("--duration", duration, MAX_DURATION_S),
        ("--baseline", baseline, MAX_BASELINE_S),
    ):
        if (why := check_seconds(flag, seconds, most)) is not None:
            raise fail(ConfigError(why))
    for path in (out, table):
        if path is not None:
            folder = path.parent
            if not path.name or path.is_dir():
                raise fail(ConfigError(f"{path}: cannot write (a folder, not a file)"))
            if not folder.is_dir():
                raise fail(ConfigError(f"{path}: cannot write (no folder {folder})"))
            if not os.access(folder, os.W_OK):
                raise fail(ConfigError(f"{path}: cannot write (folder {folder} is read-only)"))
    if threads is not None and threads > (os.cpu_count() or 1):
        typer.echo(
            f"har-agent: warning: --threads {threads} is more than the {os.cpu_count()} CPUs "
            "here: the threads will wait for each other",
            err=True,
        )
    try:
        results, header = _run(
            model, profile, models_dir, warmup, runs, duration, threads, spinning, data,
            meter, baseline, check_plain, seed, table,
        )  # fmt: skip
    except AgentError as exc:
        raise fail(exc) from None
    text = None
    if as_json:
        text = json.dumps({**header, "results": [r.to_dict() for r in results]}, indent=2)
    elif as_csv:
        text = csv_text(results)
    if text is not None and out is None:
        typer.echo(text)
    else:
        for line in terminal_lines(results, header):
            typer.echo(line)
    if text is not None and out is not None:
        _write(out, text + "\n")
        typer.echo(f"wrote {out}", err=True)
    if table is not None:
        from agent.bench_table import latency_table

        body = latency_table(results, header["board"], header["threads"])
        _write(table, json.dumps(body, indent=2) + "\n")
        typer.echo(f"wrote the latency table for {len(body['models'])} models to {table}", err=True)
    if header.get("interrupted"):
        typer.echo(f"har-agent: interrupted: {header['interrupted']} models measured", err=True)
        raise typer.Exit(130)


def _write(path: Path, text: str) -> None:
    """``text`` into ``path``: a regular file is replaced whole (a temporary file renamed over
    it), through a symbolic link if ``path`` is one; a device or FIFO (``/dev/stdout``) is
    written to, never replaced."""
    target = path.resolve() if path.is_symlink() else path
    try:
        if target.exists() and not target.is_file():
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(text)
            return
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise fail(ConfigError(f"{path}: cannot write ({exc.strerror or exc})")) from None


def _run(
    model: str,
    profile_path: Path,
    models_dir: Path | None,
    warmup: int,
    runs: int | None,
    duration: float | None,
    threads: int | None,
    spinning: bool | None,
    data: Path | None,
    meter_name: str | None,
    baseline: float,
    check_plain: bool,
    seed: int,
    table: Path | None,
) -> tuple[list[BenchResult], dict[str, Any]]:
    import dataclasses

    import onnxruntime as ort

    from agent.bench import (
        BENCH_VERSION,
        BenchOptions,
        bench_model,
        choose_primer,
        measure_idle_power,
        prime_runtime,
    )
    from agent.bench_inputs import Inputs, random_inputs, read_chunks, recording_inputs
    from agent.bench_table import board_name
    from agent.bench_targets import Target, resolve_targets
    from agent.energy import EnergyMeter, open_meter
    from agent.inference import SessionSettings, verified_bytes
    from agent.manifest import load_manifest
    from agent.profile import load_profile
    from agent.profile_tables import EnergyConfig

    prof = load_profile(profile_path)
    energy_cfg = prof.energy
    if meter_name is not None:
        kinds = get_args(typing.get_type_hints(EnergyConfig)["meter"])
        if meter_name not in kinds:
            raise ConfigError(f"--meter must be one of {', '.join(kinds)} (got {meter_name!r})")
        energy_cfg = dataclasses.replace(energy_cfg, meter=meter_name)  # type: ignore[arg-type]
    folder = models_dir if models_dir is not None else prof.resolve(prof.model.dir)
    manifest = None
    try:
        manifest = load_manifest(folder)
    except AgentError:
        if model == "all" or not (model.endswith(".onnx") or Path(model).is_file()):
            raise
    targets = resolve_targets(model, manifest)
    for target in targets:  # a missing or altered file is found before anything is measured
        if target.entry is not None:
            verified_bytes(target.path, target.entry)
    if table is not None and not any(t.entry is not None for t in targets):
        raise ConfigError("--table lists bank members; benchmark 'all' or a bank member id")
    if data is not None and any(t.entry is None for t in targets):
        raise ConfigError(
            "--data needs a bank member: the manifest says how to cut and normalise its windows"
        )
    settings = SessionSettings(
        intra_op_threads=threads or prof.inference.intra_op_threads,
        inter_op_threads=prof.inference.inter_op_threads,
        allow_spinning=prof.inference.allow_spinning if spinning is None else spinning,
    )
    opts = BenchOptions(
        warmup=warmup,
        runs=runs,
        duration_s=duration,
        settings=settings,
        check_plain=check_plain,
        seed=seed,
        paced_runs=TABLE_PACED_RUNS if table is not None else 0,
    )
    if data is not None:
        rec_header, chunks = read_chunks(data)

        def inputs_for(target: Target, shape: tuple[int, ...]) -> Inputs:
            assert target.entry is not None
            return recording_inputs(rec_header, chunks, target.entry, str(data))
    else:

        def inputs_for(target: Target, shape: tuple[int, ...]) -> Inputs:
            return random_inputs(shape, seed)

    notes: list[str] = []
    meter: EnergyMeter | None = open_meter(
        energy_cfg, notes=notes, sample_hz=energy_cfg.sample_hz or None
    )
    header: dict[str, Any] = {
        "bench_version": BENCH_VERSION,
        "board": board_name(),
        "onnxruntime": ort.__version__,
        "python": sys.version.split()[0],
        "threads": settings.intra_op_threads,
        "spinning": settings.allow_spinning,
        "meter": meter.name if meter else None,
        "meter_kind": meter.kind if meter else None,
        "meter_skipped": notes,
        "idle_w": None,
        "idle_source": None,
        "startup_mb": None,
        "startup_model": None,
    }
    results: list[BenchResult] = []
    try:
        idle: tuple[float, str] | None = None
        if meter is not None and meter.kind == "measured" and baseline > 0:
            typer.echo(f"measuring idle power with {meter.name} for {baseline:g} s", err=True)
            idle = (measure_idle_power(meter, baseline), "measured")
            header["idle_w"], header["idle_source"] = idle
        elif meter is not None and meter.kind == "estimated":  # the profile's energy.idle_w
            header["idle_w"] = float(getattr(meter, "idle_w", 0.0))
            header["idle_source"] = "profile"
        # ONNX Runtime's one-time start-up on a throwaway session, so that no model is charged
        # with it: session_mb means the same for the first model as for the others
        header["startup_mb"] = prime_runtime(targets[0], opts, manifest)
        header["startup_model"] = choose_primer(targets[0], manifest).target.name
        if len(targets) == 1:
            results.append(bench_model(targets[0], opts, inputs_for, meter, idle))
        else:
            with typer.progressbar(
                targets,
                label=f"benchmarking {len(targets)} models",
                file=sys.stderr,
                item_show_func=lambda t: t.name if t is not None else None,
            ) as bar:
                try:
                    for target in bar:
                        results.append(bench_model(target, opts, inputs_for, meter, idle))
                except KeyboardInterrupt:  # keep (and print) the rows measured so far
                    if not results:
                        raise
                    header["interrupted"] = f"{len(results)} of {len(targets)}"
    finally:
        if meter is not None:
            meter.close()
    return results, header
