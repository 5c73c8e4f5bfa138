"""The restricted unpickler and the HAPT loader."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import subprocess

import numpy as np
import pytest

from tools import hapt


def _global_pickle(module: str, name: str, arg: str = "echo pwned") -> bytes:
    """A protocol-2 pickle that calls ``module.name(arg)`` when loaded (hand-assembled)."""
    head = b"\x80\x02c%s\n%s\n" % (module.encode(), name.encode())
    return head + b"X" + len(arg).to_bytes(4, "little") + arg.encode() + b"\x85R."


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy.testing", "_private"),
        ("copyreg", "__newobj__"),
    ],
)
def test_foreign_globals_are_refused(module: str, name: str) -> None:
    data = _global_pickle(module, name)
    with pytest.raises(pickle.UnpicklingError, match=rf"{module}.*{name}|{name}"):
        hapt.restricted_loads(data)


def test_refusal_names_the_global() -> None:
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        hapt.restricted_loads(_global_pickle("os", "system"))


def test_real_pickles_of_dangerous_callables_are_refused() -> None:
    # what the standard pickler writes for these objects
    for obj in (os.system, eval, subprocess.Popen):
        with pytest.raises(pickle.UnpicklingError):
            hapt.restricted_loads(pickle.dumps(obj, protocol=2))


def test_reconstructor_only_builds_placeholders() -> None:
    # copy_reg._reconstructor(builtins.object, builtins.object, None) must not be honoured
    data = b"\x80\x02ccopy_reg\n_reconstructor\nc__builtin__\nobject\nq\x00h\x00N\x87R."
    with pytest.raises(pickle.UnpicklingError, match="_reconstructor"):
        hapt.restricted_loads(data)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.array([1, -1, 7], dtype=np.int64),
        np.array([[1.5, 2.5]], dtype=np.float32).T,
        np.array(["acc-x", "label"], dtype=object),
    ],
)
def test_numpy_arrays_round_trip(array: np.ndarray) -> None:
    for protocol in (2, 4):  # protocol 5 rebuilds arrays with _frombuffer: not allowed
        back = hapt.restricted_loads(pickle.dumps(array, protocol=protocol))
        assert isinstance(back, np.ndarray)
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)


def test_pandas_names_become_inert_placeholders() -> None:
    data = b"\x80\x02cpandas.core.frame\nDataFrame\n)R}X\x01\x00\x00\x00aK\x01sb."
    obj = hapt.restricted_loads(data)
    assert isinstance(obj, hapt.Placeholder)
    assert obj.pandas_name == "pandas.core.frame.DataFrame"
    assert obj.state == {"a": 1}


def test_real_file_uses_only_the_expected_globals() -> None:
    import gzip

    with gzip.open(hapt.find_hapt_pickle(), "rb") as fh:
        data = fh.read()
    found = {arg for op, arg, _ in pickletools.genops(io.BytesIO(data)) if op.name == "GLOBAL"}
    assert found == {
        "copy_reg _reconstructor",
        "__builtin__ object",
        "__builtin__ slice",
        "_codecs encode",
        "numpy.core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
        "pandas.core.frame DataFrame",
        "pandas.core.internals.managers BlockManager",
        "pandas.core.indexes.base _new_Index",
        "pandas.core.indexes.base Index",
        "pandas.core.indexes.range RangeIndex",
    }


def test_real_file_totals(experiments: list[hapt.Experiment]) -> None:
    assert len(experiments) == 61
    assert sum(len(e) for e in experiments) == 1_122_772
    assert sorted({e.subject for e in experiments}) == list(range(1, 31))
    assert [e.experiment for e in experiments] == list(range(1, 62))


def test_real_file_arrays_are_clean(experiments: list[hapt.Experiment]) -> None:
    for e in experiments:
        assert e.values.dtype == np.float32 and e.values.shape == (len(e), 6)
        assert e.labels.dtype == np.int64
        assert np.all(np.isfinite(e.values))
        assert set(np.unique(e.labels).tolist()) <= {-1, *range(1, 13)}
    first = experiments[0]
    assert (first.subject, first.experiment) == (1, 1)
    # a phone at the waist: total acceleration near 1 g on average
    norm = np.linalg.norm(first.values[:, :3], axis=1)
    assert 0.9 < float(np.median(norm)) < 1.1
    # activity labels cover all 12 classes across the dataset
    assert set(np.concatenate([e.labels for e in experiments]).tolist()) == {-1, *range(1, 13)}


def test_splits_follow_uci_har(experiments: list[hapt.Experiment]) -> None:
    test = {e.subject for e in experiments if e.split == "test"}
    assert test == set(hapt.TEST_SUBJECTS)
