"""``har-agent recording info|convert``: inspect a recording, or re-encode it (CSV <-> binary)."""

from __future__ import annotations

import json
import math
import stat
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import Command, Group, fail
from agent.errors import AgentError
from agent.recording_header import Channel
from agent.regular_file import file_kind

recording_app = typer.Typer(
    cls=Group,
    help="Inspect, convert or recover recordings (docs/recording-format.md).",
    no_args_is_help=True,
)


def _check_destination(dst: Path, force: bool) -> None:
    """Refuse to write ``dst`` over anything but a regular file (and over that without
    ``--force``): the new recording replaces the name, which would turn a device node or a FIFO
    into a plain file, and a folder cannot be replaced at all."""
    try:
        mode = dst.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AgentError(f"{dst}: cannot write ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise AgentError(f"{dst}: is a folder; name the recording to write")
    if not stat.S_ISREG(mode):
        raise AgentError(
            f"{dst}: exists and is not a regular file ({file_kind(mode)}); refusing to "
            "replace it, with or without --force"
        )
    if not force:
        raise AgentError(f"{dst} exists (use --force to overwrite)")


@recording_app.command("info", cls=Command)
def info(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="Recording (.har.csv[.gz] or .har.bin[.gz]).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.", metavar="")
    ] = False,
) -> None:
    """Check every row of a recording and summarise it: header, length, gaps, labels."""
    from agent.recording import RecordingReader

    try:
        reader = RecordingReader(path)
        header, encoding, compression = reader.header, reader.encoding, reader.compression
        samples = gaps = 0
        first_t = last_t = math.nan
        labels: Counter[str] = Counter()
        period = 1.0 / header.sample_rate_hz
        for chunk in reader.chunks(4096):
            if samples == 0:
                first_t = float(chunk.t[0])
            elif chunk.t[0] - last_t > 1.5 * period:
                gaps += 1
            gaps += int((chunk.t[1:] - chunk.t[:-1] > 1.5 * period).sum())
            samples += len(chunk)
            last_t = float(chunk.t[-1])
            if chunk.labels is not None:
                labels.update(lbl or "(none)" for lbl in chunk.labels)
    except AgentError as exc:
        raise fail(exc) from None
    span = 0.0 if samples == 0 else last_t - first_t + period
    summary = {
        "path": str(path),
        "encoding": encoding,
        "compression": compression,
        "bytes": path.stat().st_size,
        "sample_rate_hz": header.sample_rate_hz,
        "channels": [_channel(c) for c in header.channels],
        "start_time": header.start_time,
        "samples": samples,
        "duration_s": round(span, 3),
        "gaps": gaps,
        "source": header.source,
        "labels": dict(labels.most_common()) if header.labelled else None,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    text = {
        **summary,
        "encoding": _encoding(encoding, compression),
        "channels": ", ".join(_channel(c) for c in header.channels),
        "source": json.dumps(header.source),
        "labels": ", ".join(f"{k} {v}" for k, v in labels.most_common()) or "(unlabelled)",
    }
    del text["compression"]  # said with the encoding
    for key, value in text.items():
        typer.echo(f"{key:<15} {value}")


def _encoding(encoding: str, compression: str | None) -> str:
    """``csv``, ``binary``; ``csv, gzip``, ``binary, gzip`` when compressed."""
    return f"{encoding}, {compression}" if compression else encoding


def _channel(c: Channel) -> str:
    """``acc_x [g]``, with the sensor's full scale when the recording has one (live sensors)."""
    scale = f", full scale {c.full_scale:.6g}" if c.full_scale else ""
    return f"{c.name} [{c.unit}{scale}]"


@recording_app.command("convert", cls=Command)
def convert(
    src: Annotated[Path, typer.Argument(metavar="SRC", help="Recording to read.")],
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="DST",
            help="Recording to write; the name picks the encoding: *.bin[.gz] binary, "
            "anything else CSV; *.gz compressed.",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite DST if it exists.", metavar="")
    ] = False,
) -> None:
    """Re-encode a recording, sample for sample (binary replays ~5x faster than gzipped CSV)."""
    from agent.recording import GZIP, RecordingReader
    from agent.recording_writer import RecordingWriter

    part = dst.with_name(dst.name + ".part")  # what the writer writes, renamed when complete
    ours = False  # whether a .part file there now is this command's
    try:
        if src.resolve() == dst.resolve():
            raise AgentError(f"{dst}: converting a recording onto itself")
        _check_destination(dst, force)
        if part.exists() or part.is_symlink():
            # perhaps a session cut off while being recorded: its only copy, never overwritten
            raise AgentError(
                f"{part} exists (a recording cut off while being written? 'har-agent recording "
                "recover' it, or remove it)"
            )
        ours = True
        with (
            RecordingReader(src) as reader,
            RecordingWriter(dst, reader.header, flush_every=100_000) as writer,
        ):
            for chunk in reader.chunks(4096):
                writer.write(chunk.t, chunk.values, chunk.labels)
    except (AgentError, OSError) as exc:
        if ours:
            part.unlink(missing_ok=True)  # nothing half-written is left behind
        if isinstance(exc, OSError):
            exc = AgentError(f"{dst}: cannot write the recording ({exc.strerror or exc})")
        raise fail(exc) from None
    compression = GZIP if dst.name.lower().endswith(".gz") else None  # as the writer picks it
    typer.echo(
        f"{dst}: {writer.rows} samples, {_encoding(writer.encoding, compression)}, "
        f"{dst.stat().st_size:,} bytes (from {src.stat().st_size:,})"
    )


@recording_app.command("recover", cls=Command)
def recover(
    part: Annotated[
        Path,
        typer.Argument(
            metavar="PART", help="A recording cut off while being written (e.g. *.part)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Recording to write (default: PART without its .part suffix)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite OUT if it exists.", metavar="")
    ] = False,
) -> None:
    """Keep every whole sample of a recording that was cut off (power cut, kill -9 during
    'har-agent record'): a gzip stream is read as far as it goes, a partial last sample dropped.
    Of a damaged gzip stream, the samples before the first bad one are kept."""
    from agent.recording_recover import salvage

    if out is None:
        if part.suffix != ".part":
            raise fail(AgentError(f"{part}: not a .part file; name the output with --out"))
        out = part.with_suffix("")
    try:
        _check_destination(out, force)
        if out.resolve() == part.resolve():
            raise AgentError(f"{out}: recovering a recording onto itself")
        result = salvage(part, out)
    except AgentError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(AgentError(f"{out}: cannot write ({exc.strerror or exc})")) from None
    done = f"{out}: {result.rows} samples recovered from {part}"
    if result.damage is None:
        cut = "" if result.gzip_complete else "; the gzip stream was cut off"
        typer.echo(f"{done} (dropped {result.dropped_bytes} bytes of a partial last sample{cut})")
    elif result.first_bad is not None:  # the rows before the first bad one
        typer.echo(
            f"{done}; {result.damage}; it and everything after it were dropped "
            f"({result.dropped_bytes:,} bytes)"
        )
    else:  # every row decoded passed the checks
        typer.echo(
            f"{done}; {result.damage}; kept every whole row decoded: each passed the checks, "
            f"but the damage may be among them (dropped {result.dropped_bytes} bytes of a "
            "partial last sample)"
        )
