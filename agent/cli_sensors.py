"""``har-agent sensors probe`` and ``har-agent record``: the live-sensor commands (docs/sensors.md).

Registered by :mod:`agent.cli`; errors end like every other command: one line, exit status 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli_common import (
    DEFAULT_PROFILE,
    Command,
    Group,
    fail,
    load_profile_logged,
    profile_option,
    stop_on_signals,
)
from agent.clock import Clock, SystemClock
from agent.errors import AgentError, ConfigError, SensorNotFoundError
from agent.profile import Profile
from agent.sensors.bus import BusFactory

if TYPE_CHECKING:
    from agent.recording_writer import BlockRefused

sensors_app = typer.Typer(cls=Group, help="Live I2C sensors.", no_args_is_help=True)

ProfileOpt = Annotated[
    Path,
    profile_option("Profile (TOML) with the sensor settings."),
]


def _bus_factory() -> BusFactory:
    """Opens real I2C buses (tests substitute the emulation here)."""
    from agent.sensors.bus import open_smbus

    return open_smbus


def _clock() -> Clock:
    return SystemClock()


class _ProgressLine(logging.Filter):
    """Ends the progress line (written with a carriage return) before a log line or the final
    report, so that "received SIGINT" does not run into it."""

    def __init__(self) -> None:
        super().__init__()
        self.open = False

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open = False

    def filter(self, record: logging.LogRecord) -> bool:
        self.end()
        return True


@sensors_app.command("probe", cls=Command)
def probe(
    bus: Annotated[
        int, typer.Option("--bus", help="I2C bus number (/dev/i2c-N).", min=0, max=255)
    ] = 1,
) -> None:
    """Name the supported chips that answer on an I2C bus, with their addresses."""
    from agent.sensors.probe import INA_ADDRESSES, scan

    try:
        i2c = _bus_factory()(bus)
        try:
            found = scan(i2c)
        finally:
            i2c.close()
        if not found:
            raise SensorNotFoundError(
                f"no supported chip answers on I2C bus {bus} (looked at 0x68-0x6b and "
                f"0x{INA_ADDRESSES[0]:02x}-0x{INA_ADDRESSES[-1]:02x}); check the wiring and power"
            )
    except AgentError as exc:
        raise fail(exc) from None
    typer.echo(f"I2C bus {bus}:")
    for item in found:
        typer.echo(f"  {item.line()}")


def record(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Recording to write: .har.csv[.gz] (CSV) or .har.bin[.gz] (binary).",
        ),
    ],
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Seconds to record (default: until Ctrl-C).", min=0.001),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Activity label stamped on every sample.")
    ] = None,
) -> None:
    """Record the live sensor (the profile's sensor table) into a recording replay reads."""
    from agent.recording_writer import BlockRefused
    from agent.sensors.record import check_label, record_session

    shown: list[float] = []
    line = _ProgressLine()

    def progress(samples: int, seconds: float) -> None:
        if samples and (not shown or seconds - shown[-1] >= 1.0):
            shown.append(seconds)
            typer.echo(f"\rrecording: {samples} samples, {seconds:.1f} s", nl=False, err=True)
            line.open = True

    handlers = logging.getLogger().handlers
    for h in handlers:
        h.addFilter(line)
    try:
        if out.exists():
            raise ConfigError(f"{out} already exists; choose another --out or remove it")
        prof = load_profile_logged(profile)
        if label is not None:
            check_label(label)  # a label it cannot write is the one line, before any warning
            _warn_unknown_label(prof, label)
        with stop_on_signals() as stop:
            result = record_session(
                prof,
                out,
                clock=_clock(),
                stop=stop,
                duration_s=duration,
                label=label,
                bus_factory=_bus_factory(),
                progress=progress,
            )
    except BlockRefused as exc:  # a block the recording cannot hold: the file keeps the rest
        line.end()
        raise fail(AgentError(_stopped_at(exc))) from None
    except AgentError as exc:
        line.end()
        raise fail(exc) from None
    finally:
        for h in handlers:
            h.removeFilter(line)
    line.end()
    typer.echo(
        f"recorded {result.samples} samples ({result.duration_s:.1f} s, {result.gaps} gaps) "
        f"from the {result.sensor} to {result.path}",
        err=True,
    )


def _stopped_at(exc: BlockRefused) -> str:
    """The one line for a sensor block the writer refused (a NaN, a time that goes back): the
    recording stops there, unpublished, and keeps every sample before it, readable."""
    from agent.recording_csv import recover_command

    if not exc.rows:
        return f"{exc}; the recording stopped there, before any sample was written"
    return (
        f"{exc}; the recording stopped there: {exc.part} keeps the {exc.rows} samples before "
        f"it ({recover_command(str(exc.part))} publishes them)"
    )


def _warn_unknown_label(prof: Profile, label: str) -> None:
    """Warn when ``--label`` is no class of the profile's bank: a replay cannot score the
    recording's windows then (a typo such as WALKNG). The recording is still made."""
    from agent.manifest import load_manifest

    try:
        manifest = load_manifest(prof.resolve(prof.model.dir))
    except AgentError:  # no bank to compare with: recording needs none
        return
    classes = sorted({c for m in manifest.models for c in m.labels})
    if classes and label not in classes:
        logging.getLogger("agent.record").warning(
            "--label %r is not one of the models' classes (%s): replays will not score its windows",
            label,
            ", ".join(classes),
        )
