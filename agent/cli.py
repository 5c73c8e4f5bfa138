"""``har-agent``: the command line.

Errors we raise on purpose (:class:`AgentError`) end in one line on stderr and exit status 1;
usage errors exit 2 (typer). SIGTERM and SIGINT (Ctrl-C) set the stop event: the agent finishes the
chunk in hand, marks itself offline on MQTT and exits 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from agent import __version__
from agent.cli_bench import register as register_bench
from agent.cli_common import (
    DEFAULT_PROFILE,
    Command,
    Group,
    count,
    fail,
    load_profile_logged,
    os_error,
    stop_on_signals,
)
from agent.cli_models import models_app
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
from agent.cli_recording import recording_app
from agent.cli_replay import register as register_replay
from agent.cli_sensors import record, sensors_app
from agent.cli_service import service_app
from agent.errors import AgentError
from agent.profile import with_broker
from agent.stdout_pipe import StdoutClosed

app = typer.Typer(
    cls=Group,
    help="On-device human activity recognition: IMU windows -> ONNX models -> MQTT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # (subcommands inherit it)
)
app.add_typer(models_app, name="models")
app.add_typer(sensors_app, name="sensors")
app.add_typer(service_app, name="service")
app.add_typer(recording_app, name="recording")

log = logging.getLogger("agent")


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", metavar="")
    ] = False,
) -> None:
    if version:
        typer.echo(f"har-agent {__version__}")
        raise typer.Exit()


@app.command(cls=Command)
def run(
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    model: ModelOpt = None,
    print_: PrintOpt = False,
    policy: PolicyOpt = None,
    force: ForceOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Run the agent as configured in a profile (what the systemd service runs)."""
    from agent.instance import claim_device
    from agent.wiring import RunOptions, build_agent, option_conflict

    claim = None
    running = False
    try:
        opts = RunOptions(
            model_id=model, policy_mode=policy.value if policy else None, force_model=force
        )
        if (conflict := option_conflict(opts)) is not None:  # before anything is opened
            raise AgentError(conflict)
        refuse_force_when_static(policy, force, "model.id in the profile")
        prof = load_profile_logged(profile)
        if broker is not None:
            prof = with_broker(prof, broker)
        claim = claim_device(prof.device.id)  # held while this agent runs
        with stop_on_signals() as stop:
            agent = build_agent(
                prof, options=opts, stop=stop, observer=print_prediction if print_ else None
            )
            running = True
            stats = agent.run()
    except StdoutClosed:  # run --print | head: the journal says why the daemon ended
        log.warning("stopped: stdout was closed (what read --print's lines has gone)")
        raise
    except AgentError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(os_error(exc, running)) from None
    finally:
        if claim is not None:
            claim.close()
    log.info("stopped after %s", count(stats.windows, "window"))


register_replay(app)
# after run and replay, so that --help lists the daemon's commands first
app.command(cls=Command)(record)
register_bench(app)


def main() -> None:
    """(Installations made before ``agent.entry`` point here.)"""
    from agent.entry import main as entry

    entry()


if __name__ == "__main__":
    main()
