"""``har-agent models list``: the bank's members, each file checked against its sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import DEFAULT_PROFILE, fail, profile_option
from agent.errors import AgentError
from agent.profile import load_profile

models_app = typer.Typer(help="Inspect the model bank.", no_args_is_help=True)

ProfileOpt = Annotated[Path, profile_option("Profile (TOML) whose model folder to list.")]


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
        raise fail(exc) from None

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
        raise fail(
            AgentError(
                f"{len(bad)} model file(s) missing or not as the manifest says: {', '.join(bad)}"
            )
        )
