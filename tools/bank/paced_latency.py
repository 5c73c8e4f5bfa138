"""Paced latency of every bank member, recorded in the manifest: what the adaptive policy starts
from when the profile names no latency table.

The daemon runs a model once per hop, with its caches cooled by everything else it did
meanwhile; such a run takes several times longer than one in a back-to-back loop (the
``latency_ms.p50`` the build records). A policy seeded with back-to-back figures reads an idle
board as loaded (docs/adaptive.md). Here each member is timed one run at a time, each run after
a pause of :data:`agent.bench.PACED_GAP_S`, with the members interleaved (the order rotates every
round) so that a change in the machine's load falls on all of them alike. The session options
are the agent's (one intra-op thread, spinning off), and every file is checked against the
manifest's sha256 before it is loaded.

    python -m tools.bank.paced_latency                 # models/, 40 rounds
    python -m tools.bank.paced_latency --bank build/x --rounds 10

Writes ``paced_p50``, ``paced_p90``, ``paced_runs``, ``paced_gap_ms``, ``paced_board`` and
``paced_onnxruntime`` into each member's ``latency_ms`` (nothing else changes; the model files
are untouched) and ``paced_latency_by``/``paced_latency_at`` into the manifest's header.
``har-agent bench -m all --table FILE`` measures the same figures on a board, for its profile's
``[policy] latency_table``, which takes precedence.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from agent.bench import PACED_GAP_S
from agent.inference import SessionSettings, session_options, verified_bytes
from agent.manifest import ModelEntry, write_manifest
from tools.bank.staging import bank_lock, existing_manifest
from tools.cli import ArgumentParser, CommandError, path_arg, plural, positive_int, run_main, seed
from tools.export import board_name

WARMUP = 10
"""Untimed runs per member first (allocations, lazy initialisation)."""


def paced_latency(
    sessions: dict[str, ort.InferenceSession],
    feeds: dict[str, np.ndarray],
    rounds: int,
    gap_s: float = PACED_GAP_S,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Milliseconds of ``rounds`` runs per session, each timed alone after ``gap_s`` of sleep;
    the sessions take turns (the order rotates every round)."""
    names = list(sessions)
    inputs = {n: {sessions[n].get_inputs()[0].name: feeds[n]} for n in names}
    for n in names:
        for _ in range(WARMUP):
            sessions[n].run(None, inputs[n])
    times: dict[str, list[float]] = {n: [] for n in names}
    perf = time.perf_counter
    for r in tqdm(range(rounds), desc="paced rounds", unit="round", disable=not progress):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            sess, feed = sessions[n], inputs[n]
            time.sleep(gap_s)
            t0 = perf()
            sess.run(None, feed)
            times[n].append((perf() - t0) * 1000.0)
    return times


def figures(ms: list[float], gap_s: float) -> dict[str, object]:
    """The ``latency_ms`` fields for one member's paced runs."""
    ordered = sorted(ms)
    return {
        "paced_p50": round(statistics.median(ordered), 4),
        "paced_p90": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "paced_runs": len(ordered),
        "paced_gap_ms": round(gap_s * 1000.0, 3),
        "paced_board": board_name(),
        "paced_onnxruntime": ort.__version__,
    }


def _session(bank: Path, entry: ModelEntry) -> ort.InferenceSession:
    blob = verified_bytes(bank / entry.file, entry)  # ModelError: missing or not the manifest's
    opts = session_options(SessionSettings(intra_op_threads=1, allow_spinning=False))
    return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def run(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    bank: Path = args.bank
    with bank_lock(bank):
        manifest = existing_manifest(bank)
        if manifest is None:
            raise SystemExit(f"error: {bank}: no manifest.json (build the bank first)")
        if not os.access(bank, os.W_OK | os.X_OK):  # before the rounds, not after them
            raise CommandError(
                f"{bank}: cannot rewrite its manifest.json (the folder is read-only); "
                "nothing was measured"
            )
        entries = list(manifest.models)
        sessions = {e.id: _session(bank, e) for e in entries}
        rng = np.random.default_rng(args.seed)
        feeds = {e.id: rng.standard_normal(e.input.shape).astype(np.float32) for e in entries}
        gap_s = args.gap_ms / 1000.0
        times = paced_latency(sessions, feeds, args.rounds, gap_s, progress=not args.quiet)
        found = {mid: figures(ms, gap_s) for mid, ms in times.items()}
        updated = [
            dataclasses.replace(e, latency_ms={**e.latency_ms, **found[e.id]}) for e in entries
        ]
        meta = dict(manifest.meta)
        meta.pop("manifest_version", None)
        meta["paced_latency_by"] = "python -m tools.bank.paced_latency"
        meta["paced_latency_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        if not args.quiet:  # before the write: a failed write still shows what was measured
            width = max(len(mid) for mid in found)
            for e in entries:
                f = found[e.id]
                print(
                    f"{e.id:<{width}}  paced p50 {f['paced_p50']:.4f} ms  "
                    f"(back-to-back p50 {e.latency_ms.get('p50', float('nan')):.4f} ms)"
                )
        try:
            path = write_manifest(bank, updated, meta)
        except OSError as exc:  # disk full, or the folder became read-only meanwhile
            with contextlib.suppress(OSError):
                (bank / "manifest.json.tmp").unlink(missing_ok=True)
            raise CommandError(
                f"{bank / 'manifest.json'}: cannot rewrite it ({exc.strerror or exc}); "
                "it was left as it was"
            ) from None
    print(f"wrote the paced figures of {plural(len(entries), 'member')} into {path}")
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog="python -m tools.bank.paced_latency",
        description="Time every bank member one run at a time, each after a pause (as the "
        "daemon runs a model), and record the figures in the manifest.",
        epilog="Rewrites BANK/manifest.json (paced_* fields); about 40 s for the 48 members "
        "of models/ (2026-12-05).",
    )
    ap.add_argument("--bank", type=path_arg, default=Path("models"), help="bank folder (models)")
    ap.add_argument("--rounds", type=positive_int, default=40, help="runs per member (40)")
    ap.add_argument(
        "--gap-ms",
        type=float,
        default=PACED_GAP_S * 1000.0,
        help=f"pause before each run, ms ({PACED_GAP_S * 1000:g}, as har-agent bench --table)",
    )
    ap.add_argument("--seed", type=seed, default=0, help="seed of the random inputs (0)")
    ap.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar, no table (the last line, saying what was written, stays)",
    )
    args = ap.parse_args(argv)
    if not 0.0 <= args.gap_ms <= 1000.0:
        ap.error(f"--gap-ms must be within [0, 1000] (got {args.gap_ms:g})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
