"""The options ``run`` and ``replay`` share, and ``--print``'s line (:mod:`agent.cli` uses them)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import profile_option
from agent.errors import AgentError
from agent.payload import Prediction

ProfileOpt = Annotated[
    Path,
    profile_option(
        "Profile (TOML) to run with; the default is looked for here, then beside the installation."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Run this bank member alone, static, whatever the profile's policy.mode "
        "(default: the profile's model.id); not with --force or --policy adaptive.",
    ),
]
PrintOpt = Annotated[
    bool,
    typer.Option(
        "--print", help="Also show each prediction as a line on the terminal.", metavar=""
    ),
]


def print_prediction(p: Prediction, err: bool = False) -> None:
    """One human line per prediction (``--print``); on stderr when stdout carries the messages
    (``--no-mqtt``), so that stream stays machine-readable."""
    # fixed-width columns (a run's lines all have the same ones); the truth, when known, last
    smooth = ""
    if p.smoothed_index is not None:
        smooth = f"  smoothed {p.labels[p.smoothed_index]:<18}"
    truth = f"  truth {p.truth}" if p.truth else ""
    typer.echo(
        f"#{p.seq:<5} {p.window_end[11:23]}  {p.label:<18} {p.probs[p.index]:5.2f}"
        f"{smooth} {p.latency_ms:7.2f} ms{truth}",
        err=err,
    )


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
        "'release' lets the policy choose again); not with --policy static.",
    ),
]

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        metavar="HOST[:PORT]",
        help="MQTT broker to publish to instead of the profile's mqtt.host/port (TLS and "
        "credentials stay the profile's); an IPv6 address as [ADDRESS]:PORT.",
    ),
]


def refuse_force_when_static(policy: PolicyMode | None, force: str | None, alone: str) -> None:
    """``--force`` asks for the adaptive runtime, ``--policy static`` for one member: say so
    rather than pick one (``alone``: how this command runs one member by itself)."""
    if force is not None and policy is PolicyMode.static:
        raise AgentError(
            "--force pins a member in the adaptive runtime; it cannot be combined with "
            f"--policy static ({alone} runs one member alone)"
        )
