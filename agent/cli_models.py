"""``har-agent models list`` and ``models show``: the bank's members, each file checked against
its sha256, and one member in full."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import DEFAULT_PROFILE, Command, Group, count, fail, profile_option
from agent.errors import AgentError
from agent.manifest import Manifest, ModelEntry
from agent.profile import load_profile

models_app = typer.Typer(cls=Group, help="Inspect the model bank.", no_args_is_help=True)

ProfileOpt = Annotated[Path, profile_option("Profile (TOML) whose model folder to read.")]
DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="Model folder (default: the profile's).")
]


@models_app.command("list", cls=Command)
def models_list(
    models_dir: DirOpt = None,
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output.", metavar="")
    ] = False,
) -> None:
    """List the bank's models with their accuracy, size and latency, and check each file
    against its sha256 (exit status 1 when one is missing or altered)."""
    try:
        manifest, default = _bank(models_dir, profile)
    except AgentError as exc:
        raise fail(exc) from None
    folder = manifest.root
    checks = {m.id: _check(manifest.path_of(m), m.sha256) for m in manifest.models}
    if as_json:
        rows = [{**m.to_dict(), "file_check": checks[m.id]} for m in manifest.models]
        typer.echo(json.dumps(rows, indent=2))
    else:
        head = (
            f"{'id':<28} {'family':<17} {'width':>5} {'res':>4} {'MACs':>10} {'params':>8} "
            f"{'KiB':>7} {'acc %':>6} {'F1 %':>6} {'p50 ms':>7} {'paced':>7}  file"
        )
        typer.echo(head)
        typer.echo("-" * len(head))
        for m in manifest.models:
            acc = m.metrics.get("accuracy")
            f1 = m.metrics.get("f1_weighted")
            p50 = m.latency_ms.get("p50")
            paced = m.latency_ms.get("paced_p50")
            mark = "*" if m.id == default else " "
            typer.echo(
                f"{mark}{m.id:<27} {m.family:<17} {m.width:>5.2f} {m.resolution:>4} {m.macs:>10,} "
                f"{m.params:>8,} {m.file_bytes / 1024:>7.1f} "
                f"{'' if acc is None else f'{100 * acc:.2f}':>6} "
                f"{'' if f1 is None else f'{100 * f1:.2f}':>6} "
                f"{'' if p50 is None else f'{p50:.3f}':>7} "
                f"{'' if paced is None else f'{paced:.3f}':>7}  {checks[m.id]}"
            )
        typer.echo(f"\n{len(manifest.models)} model(s) in {folder.resolve()}")
        if default is not None:
            typer.echo(
                f"* the profile's model ({default}); 'har-agent models show ID' for one in full"
            )
        typer.echo(
            "p50 ms: batch 1, back to back, where the member was built ('models show ID' says "
            "where)\npaced:  p50 of runs one at a time after a pause, as the daemon runs a model "
            "(the adaptive policy starts from it)"
        )
    bad = [f"{i} ({c})" for i, c in checks.items() if c != "ok"]
    if bad:
        raise fail(
            AgentError(
                f"{len(bad)} model file(s) missing or not as the manifest says: {', '.join(bad)}"
            )
        )


@models_app.command("show", cls=Command)
def models_show(
    model_id: Annotated[
        str, typer.Argument(metavar="ID", help="Bank member, as models list names it.")
    ],
    models_dir: DirOpt = None,
    profile: ProfileOpt = Path(DEFAULT_PROFILE),
    as_json: Annotated[
        bool, typer.Option("--json", help="The manifest entry as JSON.", metavar="")
    ] = False,
) -> None:
    """Show one member in full: input the agent feeds it, classes, accuracy, latency, how it
    was made, and whether its file matches the manifest's sha256 (exit status 1 if not)."""
    try:
        manifest, default = _bank(models_dir, profile)
        entry = manifest.get(model_id)
    except AgentError as exc:
        raise fail(exc) from None
    status = _check(manifest.path_of(entry), entry.sha256)
    if as_json:
        typer.echo(json.dumps({**entry.to_dict(), "file_check": status}, indent=2))
    else:
        for line in describe(entry, manifest.path_of(entry), status, entry.id == default):
            typer.echo(line)
    if status != "ok":
        raise fail(AgentError(f"{entry.id}: model file {status} ({manifest.path_of(entry)})"))


def describe(entry: ModelEntry, path: Path, status: str, is_default: bool) -> list[str]:
    """``models show``'s text: one ``name: value`` line per fact, the way a user reads it."""
    spec = entry.input
    acc, f1 = _number(entry.metrics.get("accuracy")), _number(entry.metrics.get("f1_weighted"))
    prov = entry.provenance
    lines = [
        f"id:            {entry.id}" + ("  (the profile's model)" if is_default else ""),
        f"family:        {entry.family}"
        + (f", width {entry.width:g}, resolution {entry.resolution}" if entry.resolution else ""),
        f"file:          {path} ({_size(entry, path, status)}, sha256 {status})",
        f"input:         {spec.length} samples x {len(spec.channels)} channels at "
        f"{spec.rate_hz:g} Hz ({spec.window.duration_s:g} s), a window every {spec.hop} samples, "
        f"layout {spec.layout}",
        f"channels:      {', '.join(map('{} [{}]'.format, spec.channels, spec.units))}",
        f"classes:       {', '.join(entry.labels)}",
        f"size:          {entry.macs:,} MACs, {entry.params:,} parameters",
    ]
    if acc is not None:
        where = entry.metrics.get("test_windows")
        lines.append(
            f"test accuracy: {100 * acc:.2f} %"
            + (f", weighted F1 {100 * f1:.2f} %" if f1 is not None else "")
            + (f" on {where} windows of the test subjects" if where else "")
        )
    lat = entry.latency_ms
    if isinstance(lat.get("p50"), int | float):
        p90 = lat.get("p90")
        threads = lat.get("threads", 1)
        runs_on = f", {count(threads, 'thread')}" if type(threads) is int else ""
        lines.append(
            f"latency:       p50 {lat['p50']:.3f} ms"
            + (f", p90 {p90:.3f} ms" if isinstance(p90, int | float) else "")
            + (f" ({lat['board']}{runs_on})" if lat.get("board") else "")
        )
    if _number(lat.get("paced_p50")) is not None:
        p90, gap = lat.get("paced_p90"), lat.get("paced_gap_ms")
        lines.append(
            f"paced latency: p50 {lat['paced_p50']:.3f} ms"
            + (f", p90 {p90:.3f} ms" if _number(p90) is not None else "")
            + (f", one run at a time after a {gap:g} ms pause" if _number(gap) is not None else "")
            + (f" ({lat['paced_board']})" if lat.get("paced_board") else "")
            + "; the adaptive policy starts from it"
        )
    # provenance is free-form JSON: every value shown as text, whatever its type
    made = prov.get("command")
    if made:
        lines.append(f"made by:       {made}")
    for step in ("distilled", "pruned", "quantized"):
        part = prov.get(step)
        if isinstance(part, dict) and part.get("command"):
            lines.append(f"  then {step}: {part['command']}")
    if prov.get("parent"):
        lines.append(f"parent:        {prov['parent']}")
    if prov.get("date"):
        commit = str(prov.get("git_commit") or "")
        lines.append(f"date:          {prov['date']}" + (f", git {commit[:12]}" if commit else ""))
    return lines


def _number(value: object) -> float | None:
    """A manifest figure as a number, or None when it is missing or not one (free-form JSON)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bank(models_dir: Path | None, profile: Path) -> tuple[Manifest, str | None]:
    """The bank to show and the id of the member the profile would run (None with ``--dir``
    or when the profile's choice is not in this bank)."""
    from agent.manifest import load_manifest
    from agent.model_choice import profile_bank

    if models_dir is not None:
        return load_manifest(models_dir), None
    prof = load_profile(profile)
    manifest = profile_bank(prof)
    try:
        from agent.wiring import pick_model

        default: str | None = pick_model(manifest, prof.model.id).id
    except AgentError:
        default = None
    return manifest, default


def _size(entry: ModelEntry, path: Path, status: str) -> str:
    """The file's size as the manifest gives it; for an altered file, also what is on disk."""
    size = f"{entry.file_bytes / 1024:.1f} KiB"
    if status == "altered":
        try:
            on_disk = path.stat().st_size
        except OSError:
            return size
        if on_disk != entry.file_bytes:
            return f"{size} in the manifest, {on_disk / 1024:.1f} KiB on disk"
    return size


def _check(path: Path, sha256: str) -> str:
    """ "ok", "altered", "missing" or why the file cannot be read."""
    from agent.manifest import sha256_file
    from agent.regular_file import NotARegularFile

    try:
        return "ok" if sha256_file(path) == sha256 else "altered"
    except FileNotFoundError:
        return "missing"
    except NotARegularFile as exc:  # a FIFO would hang the read, /dev/zero never ends
        return f"unreadable (not a regular file: {exc.kind})"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
