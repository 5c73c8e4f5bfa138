"""``har-agent service install``: install the hardened systemd service (see README.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import Command, Group, fail
from agent.errors import AgentError

service_app = typer.Typer(cls=Group, help="Install the systemd service.", no_args_is_help=True)
SOURCE = Path(__file__).resolve().parents[1]


@service_app.command("install", cls=Command)
def install(
    profile: Annotated[
        Path,
        typer.Option("--profile", "-p", help="Profile to install as /etc/har-agent/profile.toml."),
    ] = Path("profiles/pi4.toml"),
    prefix: Annotated[Path, typer.Option(help="Where the code and models go.")] = Path(
        "/opt/har-agent"
    ),
    root: Annotated[
        Path, typer.Option(help="Install below this folder instead of / (packaging).")
    ] = Path("/"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print the steps.", metavar="")
    ] = False,
) -> None:
    """Create the har-agent user, copy the agent and models, write the config, install the unit."""
    from agent.service import plan_install

    system = root == Path("/")
    if not profile.is_absolute() and not profile.exists() and (SOURCE / profile).is_file():
        profile = SOURCE / profile  # the default, run from outside the checkout
    try:
        if system and not dry_run and os.geteuid() != 0:
            raise AgentError("service install changes the system: run it as root (sudo)")
        steps = plan_install(
            source=SOURCE, profile=profile, prefix=prefix, root=root, system=system, venv=True
        )
        for i, step in enumerate(steps, 1):
            typer.echo(f"[{i}/{len(steps)}] {step.description}")
            if not dry_run:
                step.action()
    except AgentError as exc:
        raise fail(exc) from None
    if not dry_run:
        typer.echo(
            "installed: start it with 'systemctl enable --now har-agent', "
            "follow it with 'journalctl -u har-agent -f'"
        )
