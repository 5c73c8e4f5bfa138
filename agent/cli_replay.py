"""``har-agent replay``: a recorded session through the agent, and its summary line (and
``--timing``'s overhead report)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli_common import (
    DEFAULT_PROFILE,
    Command,
    clock_text,
    count,
    fail,
    load_profile_logged,
    os_error,
    seconds_text,
    signal_name,
    stop_on_signals,
)
from agent.cli_options import (
    BrokerOpt,
    ForceOpt,
    ModelOpt,
    PolicyOpt,
    PrintOpt,
    ProfileOpt,
    print_prediction,
    refuse_force_when_static,
)
from agent.errors import AgentError, ModelError, PublishError
from agent.profile import with_broker, with_device
from agent.profile_checks import check_speed

if TYPE_CHECKING:
    from agent.pipeline import Pipeline
    from agent.run_stats import RunStats

log = logging.getLogger("agent")


def register(app: typer.Typer) -> None:
    app.command("replay", cls=Command)(replay)


def _speed_option(value: float | None) -> float | None:
    """``--speed`` out of its range (NaN included) is a usage error, as a value of the wrong
    type is: one line, exit status 2."""
    if value is not None and (problem := check_speed(value)) is not None:
        raise typer.BadParameter(problem)
    return value


def replay(
    session: Annotated[
        Path,
        typer.Argument(
            metavar="SESSION",
            help="Recording to replay (.har.csv, .har.bin, either optionally .gz).",
        ),
    ],
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    speed: Annotated[
        float | None,
        typer.Option(
            help="Replay speed: 1 = real time, 10 = ten times faster (0.001 to 1e6), 0 = as fast "
            "as possible (as --fast; default: the profile's source.speed); not with --fast.",
            callback=_speed_option,
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option("--fast", help="As fast as possible: no pacing (as --speed 0).", metavar=""),
    ] = False,
    model: ModelOpt = None,
    no_mqtt: Annotated[
        bool,
        typer.Option(
            "--no-mqtt",
            help="Write messages to stdout instead of MQTT, one 'topic payload' line each "
            "(as mosquitto_sub -v shows them; jq: cut -d' ' -f2-).",
            metavar="",
        ),
    ] = False,
    print_: PrintOpt = False,
    timing: Annotated[
        bool,
        typer.Option(
            "--timing",
            help="Report agent overhead vs raw session.run; implies --fast (pacing would be "
            "counted as overhead), so not with a --speed other than 0.",
            metavar="",
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
            "needed beside an agent running as that device.id (a replay as its device is "
            "refused).",
        ),
    ] = None,
    homeassistant: Annotated[
        bool,
        typer.Option(
            "--homeassistant",
            help="Announce the replay to Home Assistant (discovery configs, removed again when "
            "it ends); without it a replay announces nothing.",
            metavar="",
        ),
    ] = False,
    broker: BrokerOpt = None,
) -> None:
    """Replay a recorded session through the agent and publish its predictions."""
    from agent.instance import REPLAY_ADVICE, claim_device
    from agent.mqtt_settings import broker_address
    from agent.publishers import Publisher, StdoutPublisher
    from agent.wiring import RunOptions, build_agent, option_conflict

    claim = None
    running = False
    try:
        # options that contradict each other: one line, before anything is loaded
        policy_mode = policy.value if policy else None
        conflict = option_conflict(
            RunOptions(model_id=model, force_model=force, policy_mode=policy_mode)
        )
        if conflict is not None:
            raise AgentError(conflict)
        refuse_force_when_static(policy, force, "-m ID")
        if fast and speed is not None:
            raise AgentError("--fast and --speed both set the pace: use one (--fast is --speed 0)")
        if broker is not None and no_mqtt:
            raise AgentError("--broker names a broker; --no-mqtt publishes to none: use one")
        if homeassistant and no_mqtt:
            raise AgentError(
                "--homeassistant announces the replay on the MQTT broker; --no-mqtt publishes "
                "nothing there: use one"
            )
        if timing:
            # the time spent waiting for the next chunk would be counted as recording decode
            if speed is not None and speed != 0:
                why = "--timing measures an unpaced replay (it implies --fast)"
                raise AgentError(f"{why}: drop --speed {speed:g}")
            fast = True
        prof = load_profile_logged(profile)
        if device is not None:
            prof = with_device(prof, device)
        if broker is not None:
            prof = with_broker(prof, broker)
        if not no_mqtt:
            # its retained status, config and metrics would overwrite a running agent's
            claim = claim_device(prof.device.id, REPLAY_ADVICE)  # held while this replay runs
        # a replay is no device for Home Assistant to keep: announced only when asked, and
        # then removed again at the end (retract_discovery)
        ha = dataclasses.replace(prof.homeassistant, discovery=homeassistant)
        prof = dataclasses.replace(prof, homeassistant=ha)
        if speed is None:  # a profile made for replays may set its pace (0: no pacing)
            speed = prof.source.speed
        # unpaced, the lines are flushed at the end (or when the buffer fills), not one by one
        paced = not fast and speed > 0
        publisher: Publisher | None = StdoutPublisher(flush_each=paced) if no_mqtt else None
        opts = RunOptions(
            recording=session,
            speed=0.0 if fast else speed,
            loop=False,
            model_id=model,
            chunk_samples=None,
            record_timings=timing,
            use_outbox=False,
            policy_mode=policy_mode,
            force_model=force,
            retract_discovery=True,
        )
        if fast:
            # one hop of source samples per chunk: each completes one window (per-window timings)
            from agent.model_choice import chosen_model_id, profile_bank
            from agent.recording import RecordingReader
            from agent.timing import hop_in_source_samples
            from agent.wiring import pick_model

            manifest = profile_bank(prof)
            if force is not None and any(m.id == force for m in manifest.models):
                entry = manifest.get(force)  # the adaptive runtime starts on the pinned member
            else:
                entry = pick_model(manifest, chosen_model_id(prof, manifest, model))
            with RecordingReader(session) as reader:
                hop = hop_in_source_samples(entry.input, reader.header.sample_rate_hz)
            opts = RunOptions(**{**opts.__dict__, "chunk_samples": hop})
        with stop_on_signals() as stop:
            agent = build_agent(
                prof,
                options=opts,
                publisher=publisher,
                stop=stop,
                observer=(lambda p: print_prediction(p, err=no_mqtt)) if print_ else None,
            )
            running = True
            if paced and not no_mqtt and not print_:  # else minutes without a line here
                log.info(
                    "replaying at %gx; predictions go to %s on the MQTT broker at %s "
                    "(--print shows them here too)",
                    speed,
                    agent.pipeline.topics.prediction,
                    broker_address(prof.mqtt.host, prof.mqtt.port),
                )
            stats = agent.run()
    except PublishError as exc:  # a replay needs no broker: say how to go on without one
        raise fail(PublishError(f"{exc}; to replay without a broker, add --no-mqtt")) from None
    except AgentError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(os_error(exc, running)) from None
    finally:
        if claim is not None:
            claim.close()
    acc = stats.accuracy
    summary = f"{count(stats.windows, 'window')} in {seconds_text(stats.wall_s)}"
    if acc is not None:
        summary += f"; accuracy {100 * acc:.1f}% on {stats.labelled} labelled windows"
    # (no accuracy, as for a recording without labels: no windows 'with missing labels' either)
    mixed = stats.windows - stats.labelled - stats.unscored_windows if acc is not None else 0
    summary += _unscored_text(stats.unscored_windows, mixed)
    if stats.switches:
        n = stats.switches
        summary += f"; {n} configuration switch{'es' if n != 1 else ''}"
    if stats.windows and not no_mqtt and not agent.lost and prof.mqtt.qos > 0:
        address = broker_address(prof.mqtt.host, prof.mqtt.port)
        summary += f"; all acknowledged by the MQTT broker at {address}"
    if stats.windows == 0 and stats.rejected == 0 and stop.is_set():
        summary += " (stopped before the first window)"
    elif stats.windows == 0 and stats.rejected == 0:
        entry = agent.pipeline.classifier.entry
        src_hz = agent.pipeline.source.header.sample_rate_hz
        resampled = (
            f" once resampled to {entry.input.rate_hz:g} Hz (its filter takes a few samples)"
            if abs(src_hz - entry.input.rate_hz) > 1e-9
            else ""
        )
        summary += (
            f" (the recording holds {count(stats.samples, 'sample')}, "
            f"{stats.samples / src_hz:.2f} s: not enough for one "
            f"{entry.input.window.duration_s:g} s window of {entry.id}{resampled}, "
            "or there are gaps in every stretch that long)"
        )
    if stop.signal is not None:  # an incomplete replay: said, and its exit status says so too
        src_hz = agent.pipeline.source.header.sample_rate_hz
        where = clock_text(stats.samples / src_hz)
        summary += f"; interrupted ({signal_name(stop.signal)}) at {where} of the recording"
    typer.echo(summary, err=True)
    if agent.energy is not None and stats.windows:  # a line of its own: it is long
        text = agent.energy.summary(stats.windows)
        typer.echo(f"energy {text}" if agent.energy.why("run") else f"energy: {text}", err=True)
    if agent.lost:
        raise fail(
            AgentError(f"{agent.lost} messages were not delivered to the MQTT broker (see above)")
        )
    if timing:
        try:
            lines = _timing_lines(agent.pipeline, stats)
        except AgentError as exc:  # a session that fails in the bare loop
            raise fail(exc) from None
        for line in lines:
            typer.echo(line, err=no_mqtt)  # stdout carries the messages with --no-mqtt
    if stop.signal is not None:
        raise typer.Exit(128 + stop.signal)  # as a shell reports a command a signal ended


def _unscored_text(outside: int, mixed: int) -> str:
    """The replay summary's windows that were not scored, and why: ``; 120 windows not scored
    (4 with a label the model has not, 116 with mixed or missing labels)``, or ``""``."""
    why = [
        (n, text)
        for n, text in ((outside, "a label the model has not"), (mixed, "mixed or missing labels"))
        if n
    ]
    if not why:
        return ""
    if len(why) == 1:
        return f"; {count(why[0][0], 'window')} not scored (with {why[0][1]})"
    parts = ", ".join(f"{n} with {text}" for n, text in why)
    return f"; {count(outside + mixed, 'window')} not scored ({parts})"


def _timing_lines(pipe: Pipeline, stats: RunStats) -> list[str]:
    """``replay --timing``'s report: the bare ``session.run`` loop runs every window on the
    member that classified it (an adaptive run switches members; the final member could not
    even take the others' windows), normalised with that member's statistics."""
    from agent.timing import nothing_to_time, overhead_report, raw_times_on_own_members

    if (nothing := nothing_to_time(stats)) is not None:
        return [nothing]  # a replay that classified nothing is no error (exit 0, as without it)
    sessions = {pipe.classifier.entry.id: pipe.classifier}
    pool = pipe.controller.pool if pipe.controller is not None else None
    for mid in dict.fromkeys(stats.models):
        if mid not in sessions:
            if pool is None:  # only the adaptive runtime switches members
                raise ModelError(f"no session for {mid}, which classified windows of this run")
            sessions[mid] = pool.get(mid) or pool.load_now(mid)  # evicted: loaded again
    raw = raw_times_on_own_members(stats, sessions, pipe.clock.perf)
    return overhead_report(stats, raw).lines()
