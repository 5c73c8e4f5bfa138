"""The restricted unpickler and the HAPT loader."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools import hapt, safe_pickle


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
        safe_pickle.restricted_loads(data)


def test_refusal_names_the_global() -> None:
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        safe_pickle.restricted_loads(_global_pickle("os", "system"))


def test_real_pickles_of_dangerous_callables_are_refused() -> None:
    # what the standard pickler writes for these objects
    for obj in (os.system, eval, subprocess.Popen):
        with pytest.raises(pickle.UnpicklingError):
            safe_pickle.restricted_loads(pickle.dumps(obj, protocol=2))


def test_reconstructor_only_builds_placeholders() -> None:
    # copy_reg._reconstructor(builtins.object, builtins.object, None) must not be honoured
    data = b"\x80\x02ccopy_reg\n_reconstructor\nc__builtin__\nobject\nq\x00h\x00N\x87R."
    with pytest.raises(pickle.UnpicklingError, match="_reconstructor"):
        safe_pickle.restricted_loads(data)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.array([1, -1, 7], dtype=np.int64),
        np.array([[1.5, 2.5]], dtype=np.float32).T,
        np.array(["acc-x", "label"], dtype=object),
        np.arange(6, dtype=">f8").reshape(2, 3),  # big-endian: the dtype's BUILD sets '>'
        np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        np.array(3.5),
        np.array([True, False]),
    ],
)
def test_numpy_arrays_round_trip(array: np.ndarray) -> None:
    for protocol in (2, 4):  # protocol 5 rebuilds arrays with _frombuffer: not allowed
        data = pickle.dumps(array, protocol=protocol)
        back = safe_pickle.restricted_loads(data)
        ref = pickle.loads(data)  # our own pickle: what numpy makes of it (native byte order)
        assert type(back) is np.ndarray
        assert back.dtype == ref.dtype and back.flags.f_contiguous == ref.flags.f_contiguous
        np.testing.assert_array_equal(back, array)


def test_pandas_names_become_inert_placeholders() -> None:
    data = b"\x80\x02cpandas.core.frame\nDataFrame\n)R}X\x01\x00\x00\x00aK\x01sb."
    obj = safe_pickle.restricted_loads(data)
    assert isinstance(obj, safe_pickle.Placeholder)
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


# --------------------------------------------------------------------------- numpy, fenced in
#
# Each crafted pickle below would, through an unpickler that trusts numpy's constructors, build an
# object array (or scalar) whose entries are attacker-chosen bytes read as PyObject pointers:
# reading them (load_hapt's astype) segfaults or worse. They are loaded in a subprocess that then
# uses what it got, so a regression fails the test instead of killing pytest.

ROOT = Path(__file__).resolve().parents[2]
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy._core.multiarray._reconstruct
_SCALAR = np.float64(1.0).__reduce__()[0]  # numpy._core.multiarray.scalar
POINTERS = b"A" * 16  # two "pointers" to 0x4141414141414141

_RUNNER = """
import pickle, sys
import numpy as np
from tools import safe_pickle
try:
    obj = safe_pickle.restricted_loads(sys.stdin.buffer.read())
except pickle.UnpicklingError as exc:
    print("REFUSED", exc)
except Exception as exc:
    print("OTHER", type(exc).__name__, exc)
else:
    # what load_hapt does with an array: this reads an object array's pointers
    for x in obj if isinstance(obj, list) else [obj]:
        np.asarray(x).astype(np.float32)
    print("ACCEPTED", type(obj).__name__)
"""


class _Reduce:
    """Pickles as the ``__reduce__`` value it is given: (callable, args[, state])."""

    def __init__(self, *value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return self.value


def _newobj(module: str, name: str, args: tuple[Any, ...]) -> bytes:
    """A protocol-2 pickle of ``module.name.__new__(module.name, *args)`` (the NEWOBJ opcode)."""
    body = pickle.dumps(args, protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c%s\n%s\n" % (module.encode(), name.encode()) + body + b"\x81."


def _array_state(dtype: Any, data: Any, shape: tuple[int, ...] = (2,)) -> _Reduce:
    """numpy's own reduce of an array: _reconstruct(ndarray, (0,), b'b') then BUILD(state)."""
    return _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


OBJECT_DTYPE_NO_FLAGS = _Reduce(  # dtype('O'), its state clearing the "pickle as a list" flags
    np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0)
)
VOID_WITH_OBJECT_FIELD = _Reduce(  # a structured dtype with an object field, flags cleared
    np.dtype,
    ("V8", False, True),
    (3, "|", None, ("a",), {"a": (np.dtype(object), 0)}, 8, 1, 0),
)

ATTACKS: dict[str, tuple[bytes, str]] = {
    "ndarray called (REDUCE)": (
        pickle.dumps(_Reduce(np.ndarray, ((2,), np.dtype(object), POINTERS)), protocol=2),
        "numpy.ndarray may only be the first argument of _reconstruct",
    ),
    "ndarray constructed (NEWOBJ)": (
        _newobj("numpy", "ndarray", ((2,), np.dtype(object), POINTERS)),
        "NEWOBJ refused",
    ),
    "scalar: object dtype from raw bytes": (
        pickle.dumps(_Reduce(_SCALAR, (np.dtype(object), POINTERS[:8])), protocol=2),
        r"global 'numpy\._?core\.multiarray\.scalar' is not allowed",
    ),
    "_reconstruct of object": (
        pickle.dumps(_Reduce(_RECONSTRUCT, (object, (0,), b"b")), protocol=2),
        "_reconstruct refused for",
    ),
    "_reconstruct of slice": (
        pickle.dumps(_Reduce(_RECONSTRUCT, (slice, (0,), b"b")), protocol=2),
        "_reconstruct refused for",
    ),
    "_reconstruct of dtype": (
        pickle.dumps(_Reduce(_RECONSTRUCT, (np.dtype, (0,), b"b")), protocol=2),
        "_reconstruct refused for",
    ),
    "_reconstruct of uninitialised memory": (
        pickle.dumps(_Reduce(_RECONSTRUCT, (np.ndarray, (64,), b"b")), protocol=2),
        "_reconstruct: unexpected shape",
    ),
    "setstate: object dtype from raw bytes": (
        pickle.dumps(_array_state(np.dtype(object), POINTERS), protocol=2),
        "object array may only be filled from a list",
    ),
    "setstate: object dtype, flags cleared, from raw bytes": (
        pickle.dumps(_array_state(OBJECT_DTYPE_NO_FLAGS, POINTERS), protocol=2),
        "dtype state refused",
    ),
    "setstate: structured dtype with an object field, from raw bytes": (
        pickle.dumps(_array_state(VOID_WITH_OBJECT_FIELD, POINTERS[:8], (1,)), protocol=2),
        r"numpy\.dtype\('V8'.* refused",
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_numpy_pointer_attacks_are_refused(name: str) -> None:
    data, message = ATTACKS[name]
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=data,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}: {out} {proc.stderr[-2000:]!r}"
    assert out.startswith("REFUSED"), out
    assert re.search(message, out), out


def test_numpy_global_shapes_refused_in_process() -> None:
    # the refusals that never get as far as numpy, checked without a subprocess too
    with pytest.raises(pickle.UnpicklingError, match="NEWOBJ refused"):
        safe_pickle.restricted_loads(_newobj("numpy", "dtype", ("O8", False, True)))
    with pytest.raises(pickle.UnpicklingError, match="refused: only plain numeric and object"):
        safe_pickle.restricted_loads(pickle.dumps(np.dtype("U5"), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="_codecs.encode is allowed only as"):
        safe_pickle.restricted_loads(_global_pickle("_codecs", "encode", "x"))


def test_numpy_dtype_state_cannot_change_the_dtype() -> None:
    for state in (
        (3, "|", None, None, None, -1, -1, 63),  # float64 claiming to hold objects
        (3, "<", None, ("a",), {"a": (np.dtype(object), 0)}, 8, 8, 0),  # float64 with a field
        (3, "<", (np.dtype(object), (1,)), None, None, 8, 8, 0),  # float64 as a sub-array
        (3, "<", None, None, None, 16, 8, 0),  # another size
    ):
        data = pickle.dumps(_Reduce(np.dtype, ("f8", False, True), state), protocol=2)
        with pytest.raises(pickle.UnpicklingError, match="dtype state refused"):
            safe_pickle.restricted_loads(data)
    assert np.dtype(np.float64).flags == 0 and np.dtype(object).flags == 63


def test_numpy_array_is_built_once_with_its_own_bytes() -> None:
    f8 = np.dtype(np.float64)
    with pytest.raises(pickle.UnpicklingError, match="needs 16 bytes of data, not bytes of 8"):
        safe_pickle.restricted_loads(pickle.dumps(_array_state(f8, b"\0" * 8), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="needs 16 bytes of data, not list"):
        safe_pickle.restricted_loads(pickle.dumps(_array_state(f8, [1.0, 2.0]), protocol=2))
    # BUILD again on the array just built (still on top of the stack), with a second state
    once = pickle.dumps(_array_state(f8, b"\0" * 16), protocol=2)[:-1]
    again = pickle.dumps((1, (1,), f8, False, b"\0" * 8), protocol=2)[2:-1]
    with pytest.raises(pickle.UnpicklingError, match="BUILD refused for an array not new"):
        safe_pickle.restricted_loads(once + again + b"b.")


# sha256 over every experiment's subject, number, shapes, dtypes and bytes, as load_hapt returned
# them before numpy's reconstruction was fenced in (same file, same result)
REAL_DATA_SHA256 = "1bace8c9f417f5e96d45d1dd9913c65e3b16834ee3176a8c7864feb22d9cf006"


def test_real_file_loads_as_before(experiments: list[hapt.Experiment]) -> None:
    h = hashlib.sha256()
    for e in experiments:
        h.update(
            f"{e.subject},{e.experiment},{e.values.shape},{e.values.dtype},{e.labels.dtype}".encode()
        )
        h.update(e.values.tobytes())
        h.update(e.labels.tobytes())
    assert h.hexdigest() == REAL_DATA_SHA256
