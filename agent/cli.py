"""``har-agent``: the command line.

Errors we raise on purpose (:class:`AgentError`) end in one line on stderr and exit status 1;
usage errors exit 2 (typer). SIGTERM and SIGINT (Ctrl-C) set the stop event: the agent finishes the
chunk in hand, marks itself offline on MQTT and exits 0.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from agent import __version__
from agent.cli_bench import register as register_bench
from agent.cli_recording import recording_app
from agent.cli_sensors import record, sensors_app
from agent.cli_service import service_app
from agent.errors import AgentError
from agent.payload import Prediction
from agent.profile import Profile, load_profile, with_device
from agent.profile_checks import check_speed

DEFAULT_PROFILE = "profiles/default.toml"

app = typer.Typer(
    help="On-device human activity recognition: IMU windows -> ONNX models -> MQTT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Inspect the model bank.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(sensors_app, name="sensors")
app.add_typer(service_app, name="service")
app.add_typer(recording_app, name="recording")

ProfileOpt = Annotated[
    Path,
    typer.Option(
        "--profile",
        "-p",
        envvar="HAR_AGENT_PROFILE",
        help="Profile (TOML) to run with; the default is looked for here, then beside the "
        "installation. \\[env: HAR_AGENT_PROFILE]",
        show_envvar=False,
    ),
]
PrintOpt = Annotated[
    bool, typer.Option("--print", help="Also show each prediction as a line on the terminal.")
]

log = logging.getLogger("agent")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(exc: AgentError) -> typer.Exit:
    typer.echo(f"har-agent: error: {exc}", err=True)
    return typer.Exit(1)


def _os_error(exc: OSError) -> AgentError:
    """A file the agent could not open (name too long, a permission, ...) that no check before
    it caught: one line naming the file, not a traceback."""
    name = exc.filename if exc.filename is not None else "a file"
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    shown = name if len(str(name)) <= 200 else f"{str(name)[:160]}... ({len(str(name))} characters)"
    return AgentError(f"{shown}: cannot open ({exc.strerror or exc})")


def _on_stop_signal(
    stop: threading.Event, signum: int, exit_now: Callable[[int], object] = os._exit
) -> None:
    """The first SIGINT/SIGTERM asks the agent to stop; a second one while it stops ends the
    process at once (exit 128 + signal number, as a shell reports it)."""
    name = signal.Signals(signum).name
    if stop.is_set():
        log.warning("received %s again, exiting now", name)
        logging.shutdown()
        exit_now(128 + signum)
        return
    log.info("received %s, stopping", name)
    stop.set()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """A stop event that SIGTERM and SIGINT set; the previous handlers come back afterwards. A
    second signal while stopping ends the process at once (what the outbox holds is on disk)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        _on_stop_signal(stop, signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _count(n: int, noun: str) -> str:
    """``1 window``, ``2 windows``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _print_prediction(p: Prediction, err: bool = False) -> None:
    """One human line per prediction (``--print``); on stderr when stdout carries the messages
    (``--no-mqtt``), so that stream stays machine-readable."""
    truth = f"  truth {p.truth}" if p.truth else ""
    smooth = ""
    if p.smoothed_index is not None:
        smooth = f"  smoothed {p.labels[p.smoothed_index]}"
    typer.echo(
        f"#{p.seq:<5} {p.window_end[11:23]}  {p.label:<18} {p.probs[p.index]:5.2f}"
        f"{smooth}{truth}  {p.latency_ms:.2f} ms",
        err=err,
    )


def _load(profile: Path) -> Profile:
    prof = load_profile(profile)
    _setup_logging(prof.logging.level)
    return prof


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"har-agent {__version__}")
        raise typer.Exit()


class PolicyMode(enum.StrEnum):
    adaptive = "adaptive"
    static = "static"


PolicyOpt = Annotated[
    PolicyMode | None,
    typer.Option(
        "--policy",
        help="adaptive: switch bank members to keep the deadline; static: one member "
        "(default: the profile's policy.mode).",
    ),
]
ForceOpt = Annotated[
    str | None,
    typer.Option(
        "--force",
        metavar="ID",
        help="Adaptive runtime with this member pinned (the manual override; MQTT "
        "'release' lets the policy choose again).",
    ),
]


@app.command()
def run(
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    print_: PrintOpt = False,
    policy: PolicyOpt = None,
    force: ForceOpt = None,
) -> None:
    """Run the agent as configured in a profile (what the systemd service runs)."""
    from agent.instance import claim_device
    from agent.wiring import RunOptions, build_agent

    claim = None
    try:
        prof = _load(profile)
        claim = claim_device(prof.device.id)  # held while this agent runs
        opts = RunOptions(policy_mode=policy.value if policy else None, force_model=force)
        with _stop_on_signals() as stop:
            agent = build_agent(
                prof, options=opts, stop=stop, observer=_print_prediction if print_ else None
            )
            stats = agent.run()
    except AgentError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(_os_error(exc)) from None
    finally:
        if claim is not None:
            claim.close()
    log.info("stopped after %d windows", stats.windows)


@app.command()
def replay(
    session: Annotated[
        Path,
        typer.Argument(help="Recording to replay (.har.csv, .har.bin, either optionally .gz)."),
    ],
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    speed: Annotated[
        float | None,
        typer.Option(
            help="Replay speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible "
            "(as --fast; default: the profile's source.speed).",
            min=0.0,
        ),
    ] = None,
    fast: Annotated[bool, typer.Option("--fast", help="As fast as possible (no pacing).")] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Bank member to use (default: profile's).")
    ] = None,
    no_mqtt: Annotated[
        bool,
        typer.Option(
            "--no-mqtt",
            help="Write messages to stdout instead of MQTT, one 'topic payload' line each "
            "(as mosquitto_sub -v shows them; jq: cut -d' ' -f2-).",
        ),
    ] = False,
    print_: PrintOpt = False,
    timing: Annotated[
        bool,
        typer.Option(
            "--timing", help="Report agent overhead vs raw session.run (use with --fast)."
        ),
    ] = False,
    policy: PolicyOpt = None,
    force: ForceOpt = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            metavar="ID",
            help="Publish as this device (topics har/ID/...) instead of the profile's device.id; "
            "use it when replaying with a running daemon's profile.",
        ),
    ] = None,
) -> None:
    """Replay a recorded session through the agent and publish its predictions."""
    from agent.publishers import Publisher, StdoutPublisher
    from agent.wiring import RunOptions, build_agent

    try:
        prof = _load(profile)
        if device is not None:
            prof = with_device(prof, device)
        if speed is None:  # a profile made for replays may set its pace (0: no pacing)
            speed = prof.source.speed
        elif (speed_problem := check_speed(speed)) is not None:
            raise AgentError(f"--speed {speed_problem}")
        publisher: Publisher | None = StdoutPublisher() if no_mqtt else None
        opts = RunOptions(
            recording=session,
            speed=0.0 if fast else speed,
            loop=False,
            model_id=model,
            chunk_samples=None,
            record_timings=timing,
            use_outbox=False,
            policy_mode=policy.value if policy else None,
            force_model=force,
        )
        if fast:
            # one hop of source samples per chunk: each completes one window (per-window timings)
            from agent.manifest import load_manifest
            from agent.recording import RecordingReader
            from agent.timing import hop_in_source_samples
            from agent.wiring import pick_model

            entry = pick_model(load_manifest(prof.resolve(prof.model.dir)), model or prof.model.id)
            with RecordingReader(session) as reader:
                hop = hop_in_source_samples(entry.input, reader.header.sample_rate_hz)
            opts = RunOptions(**{**opts.__dict__, "chunk_samples": hop})
        with _stop_on_signals() as stop:
            agent = build_agent(
                prof,
                options=opts,
                publisher=publisher,
                stop=stop,
                observer=(lambda p: _print_prediction(p, err=no_mqtt)) if print_ else None,
            )
            stats = agent.run()
    except AgentError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(_os_error(exc)) from None
    acc = stats.accuracy
    summary = f"{_count(stats.windows, 'window')} in {stats.wall_s:.1f} s"
    if acc is not None:
        summary += f"; accuracy {100 * acc:.1f}% on {stats.labelled} labelled windows"
    if stats.switches:
        summary += f"; {stats.switches} configuration switches"
    if agent.energy_j is not None and agent.meter is not None and stats.windows:
        summary += (
            f"; {1000 * agent.energy_j / stats.windows:.3f} mJ per window ({agent.meter.name})"
        )
    if stats.windows == 0 and stats.rejected == 0:
        entry = agent.pipeline.classifier.entry
        src_hz = agent.pipeline.source.header.sample_rate_hz
        resampled = (
            f" once resampled to {entry.input.rate_hz:g} Hz (its filter takes a few samples)"
            if abs(src_hz - entry.input.rate_hz) > 1e-9
            else ""
        )
        summary += (
            f" (the recording holds {_count(stats.samples, 'sample')}, "
            f"{stats.samples / src_hz:.2f} s: not enough for one "
            f"{entry.input.window.duration_s:g} s window of {entry.id}{resampled}, "
            "or there are gaps in every stretch that long)"
        )
    typer.echo(summary, err=True)
    if agent.lost:
        raise _fail(
            AgentError(f"{agent.lost} messages were not delivered to the MQTT broker (see above)")
        )
    if timing:
        from agent.inference import to_model_input
        from agent.timing import overhead_report, raw_session_times

        pipe = agent.pipeline
        entry = pipe.classifier.entry
        inputs = [
            to_model_input(entry.normalization(w), entry.input.layout) for w in stats.windows_data
        ]
        raw = raw_session_times(pipe.classifier.engine.run, inputs, pipe.clock.perf)
        for line in overhead_report(stats, raw).lines():
            typer.echo(line, err=no_mqtt)  # stdout carries the messages with --no-mqtt


# after run and replay, so that --help lists the daemon's commands first
app.command()(record)
register_bench(app)


@models_app.command("list")
def models_list(
    models_dir: Annotated[
        Path | None, typer.Option("--dir", help="Model folder (default: the profile's).")
    ] = None,
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the bank's models with their accuracy, size and latency, and check each file
    against its sha256 (exit status 1 when one is missing or altered)."""
    from agent.manifest import load_manifest, sha256_file
    from agent.regular_file import NotARegularFile

    try:
        if models_dir is not None:
            folder = models_dir
        else:
            prof = load_profile(profile)
            folder = prof.resolve(prof.model.dir)
        manifest = load_manifest(folder)
    except AgentError as exc:
        raise _fail(exc) from None

    def check(path: Path, sha256: str) -> str:
        try:
            return "ok" if sha256_file(path) == sha256 else "altered"
        except FileNotFoundError:
            return "missing"
        except NotARegularFile as exc:  # a FIFO would hang the read, /dev/zero never ends
            return f"unreadable (not a regular file: {exc.kind})"
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"

    checks = {m.id: check(manifest.path_of(m), m.sha256) for m in manifest.models}
    if as_json:
        rows = [{**m.to_dict(), "file_check": checks[m.id]} for m in manifest.models]
        typer.echo(json.dumps(rows, indent=2))
    else:
        head = (
            f"{'id':<28} {'family':<17} {'width':>5} {'res':>4} {'MACs':>10} {'params':>8} "
            f"{'KiB':>7} {'acc %':>6} {'F1 %':>6} {'p50 ms':>7}  file"
        )
        typer.echo(head)
        typer.echo("-" * len(head))
        for m in manifest.models:
            acc = m.metrics.get("accuracy")
            f1 = m.metrics.get("f1_weighted")
            p50 = m.latency_ms.get("p50")
            typer.echo(
                f"{m.id:<28} {m.family:<17} {m.width:>5.2f} {m.resolution:>4} {m.macs:>10,} "
                f"{m.params:>8,} {m.file_bytes / 1024:>7.1f} "
                f"{'' if acc is None else f'{100 * acc:.2f}':>6} "
                f"{'' if f1 is None else f'{100 * f1:.2f}':>6} "
                f"{'' if p50 is None else f'{p50:.3f}':>7}  {checks[m.id]}"
            )
        typer.echo(f"\n{len(manifest.models)} model(s) in {folder.resolve()}")
    bad = [f"{i} ({c})" for i, c in checks.items() if c != "ok"]
    if bad:
        raise _fail(
            AgentError(
                f"{len(bad)} model file(s) missing or not as the manifest says: {', '.join(bad)}"
            )
        )


def main() -> None:
    """(Installations made before ``agent.entry`` point here.)"""
    from agent.entry import main as entry

    entry()


if __name__ == "__main__":
    main()
