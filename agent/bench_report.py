"""What ``har-agent bench`` prints: the terminal report and the CSV (the JSON is
:meth:`agent.bench_figures.BenchResult.to_dict`)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.bench_figures import BenchResult

TABLE_PACED_RUNS = 40
"""With --table: paced runs per model (40 x 20 ms: about a second each)."""


def csv_text(results: list[BenchResult]) -> str:
    buf = io.StringIO()
    rows = [r.flat() for r in results]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue().rstrip("\n")


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def terminal_lines(results: list[BenchResult], header: dict[str, Any]) -> list[str]:
    lines = [
        f"board        {header['board']}",
        f"onnxruntime  {header['onnxruntime']}, {header['threads']} intra-op thread(s), "
        f"spinning {'on' if header['spinning'] else 'off'}",
        f"energy       {header['meter'] or 'no meter'}"
        + (
            f"; idle {header['idle_w']:.3f} W ({_IDLE_SOURCE[header['idle_source']]})"
            if header["idle_w"] is not None
            else ""
        ),
    ]
    lines += [f"             skipped {n}" for n in header["meter_skipped"]]
    if header.get("startup_mb") is not None:
        lines.append(
            f"start-up     {header['startup_mb']:.1f} MiB: ONNX Runtime's one-time cost in this "
            f"process, paid by a throwaway session of {header['startup_model']} and charged to "
            "no model"
        )
    if len(results) == 1:
        return lines + [""] + _one(results[0])
    mw = max(16, *(len(r.model) for r in results))  # the model column fits the longest id
    head = (
        f"{'model':<{mw}} {'KiB':>6} {'MACs':>10} {'init ms':>7} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'mean ms':>7} {'inf/s':>7} {'CPU %':>6} {'mJ/inf':>7} {'acc %':>6}"
    )
    paced = any(r.paced is not None for r in results)
    if paced:  # --table: the figure the table records, beside the back-to-back one
        head += f" {'paced p50':>9}"
    lines += ["", head, "-" * len(head)]
    for r in results:
        lat = r.latency
        e = r.energy.mj_per_inference if r.energy else None
        acc = 100 * r.accuracy if r.accuracy is not None else None
        lines.append(
            f"{r.model:<{mw}} {r.file_bytes / 1024:>6.1f} {_fmt(r.macs, ',d'):>10} "
            f"{r.init_ms:>7.1f} {lat.p50_ms:>7.4f} {lat.p90_ms:>7.4f} {lat.p99_ms:>7.4f} "
            f"{lat.mean_ms:>7.4f} {r.ips:>7.0f} {r.cpu_percent:>6.1f} {_fmt(e, '.4f'):>7} "
            f"{_fmt(acc, '.2f'):>6}"
            + (f" {_fmt(r.paced.p50_ms if r.paced else None, '.4f'):>9}" if paced else "")
        )
    if paced:
        lines += ["", _PACED_NOTE]
    plains = [r.plain for r in results if r.plain is not None]
    if plains:
        lines.append("")
        for r in results:
            if r.plain is not None:
                p = r.plain
                lines.append(
                    f"{r.model:<{mw}} bench p50 {p.bench_p50_ms:.4f} ms, plain session.run p50 "
                    f"{p.plain_p50_ms:.4f} ms, ratio {p.ratio:.3f}"
                )
    return lines


_PACED_NOTE = (
    "paced: one run at a time after a pause, as the daemon runs a model once per hop; "
    "the figures --table records"
)
_IDLE_SOURCE = {"measured": "measured", "profile": "the profile's energy.idle_w"}


def _one(r: BenchResult) -> list[str]:
    lat = r.latency
    out = [
        f"model        {r.model} ({r.path}; "
        + (
            "sha256 verified against the manifest)"
            if r.source == "manifest"
            else "not in the manifest: no sha256 check)"
        ),
        f"size         {r.file_bytes / 1024:.1f} KiB, {_fmt(r.params, ',d')} params, "
        f"{_fmt(r.macs, ',d')} MACs",
        f"input        {r.input_shape} from {r.inputs}"
        + (f" ({r.windows} windows)" if r.windows else ""),
        f"session init {r.init_ms:.1f} ms (read + verify + create)",
        f"first run    {r.first_ms:.3f} ms",
        f"timed runs   {r.runs} after {r.warmup} warm-up, {r.wall_s:.2f} s",
        f"latency ms   min {lat.min_ms:.4f}  mean {lat.mean_ms:.4f}  std {lat.std_ms:.4f}",
        f"             p50 {lat.p50_ms:.4f}  p90 {lat.p90_ms:.4f}  p95 {lat.p95_ms:.4f}  "
        f"p99 {lat.p99_ms:.4f}  max {lat.max_ms:.4f}",
        f"throughput   {r.ips:.1f} inferences/s",
        *(
            [
                f"paced ms     p50 {r.paced.p50_ms:.4f}  p90 {r.paced.p90_ms:.4f}  "
                f"p99 {r.paced.p99_ms:.4f}  ({TABLE_PACED_RUNS} runs one at a time after a "
                "pause, as the daemon runs a model once per hop: what --table records)",
            ]
            if r.paced is not None
            else []
        ),
        f"CPU          {r.cpu_percent:.1f} % of one core (process CPU time / wall, timed loop)",
        f"memory       RSS {r.rss_mb:.1f} MiB (session + first runs {r.session_mb:.1f} MiB), "
        f"process peak {r.peak_rss_mb:.1f} MiB",
    ]
    e = r.energy
    if e is not None:
        work = _fmt(e.mj_per_inference, ".4f")
        idle = "" if e.idle_w is None else f", idle {e.idle_w:.3f} W ({e.idle_source})"
        out.append(
            f"energy       {work} mJ/inference above idle, {e.total_mj_per_inference:.4f} mJ "
            f"with idle{idle}; {e.kind} by {e.meter}"
        )
    elif r.energy_note:
        out.append(f"energy       not reported: {r.energy_note}")
    if r.accuracy is not None:
        out.append(f"accuracy     {100 * r.accuracy:.2f} % on {r.labelled} labelled windows")
    if r.plain is not None:
        p = r.plain
        out.append(
            f"plain check  bench p50 {p.bench_p50_ms:.4f} ms vs plain session.run p50 "
            f"{p.plain_p50_ms:.4f} ms: ratio {p.ratio:.3f} ({p.blocks} alternating blocks, "
            f"{p.runs_each} runs each)"
        )
    out += [f"note         {n}" for n in r.notes]
    return out
