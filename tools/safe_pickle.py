"""A restricted unpickler for the HAPT dataset's pandas-1.0 pickle (:mod:`tools.hapt` reads it).

Unpickling an arbitrary file runs code, so :class:`RestrictedUnpickler` lets through only numpy's
array reconstruction, ``_codecs.encode`` and ``slice``, and turns every ``pandas.*`` global into an
inert :class:`Placeholder` that merely stores its arguments and state. numpy's reconstruction is
itself fenced in: arrays and dtypes can only be rebuilt in exactly the shape numpy pickles them
(``_reconstruct(ndarray, (0,), b'b')`` then BUILD; plain ``dtype(code)`` then BUILD), each state
is checked first, and raw bytes never become the data of an object array (they would be read as
pointers). Anything else is a :class:`pickle.UnpicklingError`.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import struct
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np


class Placeholder:
    """An inert stand-in for a pandas class or function: it only records what it was given.

    Every ``pandas.*`` global becomes a subclass named after it (``pandas_name``). Calling it (the
    pickle REDUCE opcode) stores the arguments; BUILD stores the state. Nothing else happens.
    """

    pandas_name = ""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<Placeholder {self.pandas_name}>"


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Placeholder:
    """Our ``copy_reg._reconstructor``: it only ever instantiates a :class:`Placeholder`."""
    if not (isinstance(cls, type) and issubclass(cls, Placeholder)):
        raise pickle.UnpicklingError(f"copy_reg._reconstructor refused for {cls!r}")
    if base is not object or state is not None:
        raise pickle.UnpicklingError("copy_reg._reconstructor: unexpected base or state")
    obj = Placeholder.__new__(cls)
    obj.args = ()
    obj.state = None
    return obj


class _NdarrayToken:
    """What the global ``numpy.ndarray`` unpickles to: a token that :meth:`RestrictedUnpickler.
    _reconstruct` accepts as its first argument and nothing else does. The real class would be a
    general constructor: ``ndarray(shape, dtype=object, buffer=raw)`` turns attacker-chosen bytes
    into object pointers, which crash (or worse) the first time anything reads them."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NdarrayToken:
        raise pickle.UnpicklingError(
            "numpy.ndarray may only be the first argument of _reconstruct, not called"
        )


# The dtypes an array in this pickle may have: numpy's fixed-size scalar types, by the code numpy
# pickles them under (``dtype("f8", False, True)``), and object, which takes its data from a list.
# No void, structured, sub-array, string or datetime dtypes.
_PLAIN_DTYPES: dict[str, np.dtype[Any]] = {
    np.dtype(t).__reduce__()[1][0]: np.dtype(t)
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
        np.complex64,
        np.complex128,
        np.object_,
    )
}


def _is_plain_dtype(dtype: Any) -> bool:
    """``dtype`` is one of :data:`_PLAIN_DTYPES` (either byte order) with numpy's own flags."""
    if not isinstance(dtype, np.dtype) or dtype.fields is not None or dtype.subdtype is not None:
        return False
    native = _PLAIN_DTYPES.get(dtype.__reduce__()[1][0])  # its code, whatever the byte order
    return native is not None and (dtype.kind, dtype.itemsize, dtype.flags) == (
        native.kind,
        native.itemsize,
        native.flags,
    )


def _latin1_encode(text: Any, encoding: Any = None, *rest: Any) -> bytes:
    """Our ``_codecs.encode``: only what a protocol-2 pickle writes for ``bytes``."""
    if type(text) is not str or encoding not in ("latin1", "latin-1") or rest:
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: see below
    """An unpickler that can rebuild numpy arrays and nothing executable.

    Allowed globals: numpy's ``_reconstruct``, ``numpy.ndarray`` (only as ``_reconstruct``'s
    first argument), ``numpy.dtype`` (plain scalar and object dtypes only), ``_codecs.encode``
    (``str`` to latin-1 ``bytes`` only), ``builtins.slice``, ``builtins.object``;
    ``copy_reg._reconstructor`` is replaced by :func:`_safe_reconstructor`; every ``pandas.*``
    name becomes a :class:`Placeholder` subclass. Anything else raises
    :class:`pickle.UnpicklingError` naming the global.

    The state numpy's ``__setstate__`` would receive is checked before it gets it, so this is the
    pure-Python unpickler (``pickle._Unpickler``): the C one offers no hook on BUILD. BUILD is
    honoured only for a Placeholder, for an array from ``_reconstruct`` not yet built (its data:
    raw bytes of the exact size, or a list for an object array) and for a dtype from
    ``numpy.dtype`` not yet built (its state may change the byte order, nothing else: numpy
    would otherwise let a state clear an object dtype's flags and fill it from raw bytes).
    NEWOBJ, NEWOBJ_EX, OBJ and INST can only build Placeholders. Anything refused, and any
    malformed stream, raises :class:`pickle.UnpicklingError`; nothing refused reaches numpy.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # the pure-Python unpickler's stack, and its append
    append: Callable[[Any], None]

    def __init__(self, file: io.BufferedIOBase | Any) -> None:
        super().__init__(file)
        self._placeholders: dict[str, type[Placeholder]] = {}
        # arrays from _reconstruct and dtypes from numpy.dtype that still await their one BUILD,
        # and every dtype this pickle made (by id, holding a reference so ids stay unique)
        self._unbuilt_arrays: dict[int, np.ndarray] = {}
        self._unbuilt_dtypes: dict[int, np.dtype[Any]] = {}
        self._dtypes: dict[int, np.dtype[Any]] = {}
        self._allowed: dict[tuple[str, str], Any] = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy", "ndarray"): _NdarrayToken,
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): _latin1_encode,
            ("builtins", "slice"): slice,
            ("builtins", "object"): object,
            ("copyreg", "_reconstructor"): _safe_reconstructor,
        }

    def load(self) -> Any:
        try:
            return super().load()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, struct.error) as exc:
            # what the pure-Python unpickler raises on a malformed stream (unknown opcode, stack
            # underflow, bad memo key, ...), where the C one says UnpicklingError
            raise pickle.UnpicklingError(f"malformed pickle: {type(exc).__name__}: {exc}") from exc

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles from Python 2 name __builtin__ / copy_reg: map them the way the
        # standard unpickler would, but without importing anything.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if module == "pandas" or module.startswith("pandas."):
            return self._placeholder(f"{module}.{name}")
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in this pickle")

    def _placeholder(self, qualname: str) -> type[Placeholder]:
        cls = self._placeholders.get(qualname)
        if cls is None:
            short = qualname.rsplit(".", 1)[-1]
            cls = type(short, (Placeholder,), {"pandas_name": qualname})
            self._placeholders[qualname] = cls
        return cls

    # ------------------------------------------------------------------ numpy, fenced in

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        """Our numpy ``_reconstruct`` (``numpy.core.multiarray`` in 1.x, ``numpy._core`` in 2.x):
        only ``(ndarray, (0,), b'b')``, the empty base array that numpy's pickles then fill by
        BUILD (see :meth:`_build_array`)."""
        if subtype is not _NdarrayToken:
            raise pickle.UnpicklingError(
                f"_reconstruct refused for {subtype!r}: only numpy.ndarray"
            )
        if (
            type(shape) is not tuple
            or shape != (0,)
            or type(typecode) not in (bytes, str)
            or typecode not in (b"b", "b")
        ):
            raise pickle.UnpicklingError(
                f"_reconstruct: unexpected shape {shape!r} or type code {typecode!r}"
            )
        array = np.ndarray((0,), np.int8)
        self._unbuilt_arrays[id(array)] = array
        return array

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
        """Our ``numpy.dtype``: a fresh copy (never numpy's shared instance, which BUILD would
        change for the whole process) of a plain dtype named the way numpy pickles it."""
        if type(spec) is not str or spec not in _PLAIN_DTYPES or type(align) not in (bool, int):
            raise pickle.UnpicklingError(
                f"numpy.dtype{(spec, align, copy)!r} refused: only plain numeric and object dtypes"
            )
        if align:
            raise pickle.UnpicklingError(f"numpy.dtype({spec!r}, align={align!r}) refused")
        dtype = np.dtype(_PLAIN_DTYPES[spec], align=False, copy=True)
        self._unbuilt_dtypes[id(dtype)] = dtype
        self._dtypes[id(dtype)] = dtype
        return dtype

    def _build_dtype(self, dtype: np.dtype[Any], state: Any) -> None:
        """dtype BUILD: numpy's state for a plain dtype, ``(3, byteorder, None, None, None, -1, -1,
        flags)``, which may set the byte order of a multi-byte number and change nothing else."""
        if self._unbuilt_dtypes.pop(id(dtype), None) is not dtype:
            raise pickle.UnpicklingError(f"BUILD refused for {dtype!r}: not a new numpy.dtype")
        orders = ("|",) if dtype.kind == "O" or dtype.itemsize == 1 else ("<", ">", "=")
        if not (
            type(state) is tuple
            and len(state) == 8
            and all(type(x) is int for x in (state[0], *state[5:]))
            and (state[0], state[5], state[6], state[7]) == (3, -1, -1, dtype.flags)
            and type(state[1]) is str
            and state[1] in orders
            and state[2] is None  # sub-array
            and state[3] is None  # field names
            and state[4] is None  # fields
        ):
            raise pickle.UnpicklingError(f"dtype state refused for {dtype!r}: {state!r}")
        before = (dtype.kind, dtype.itemsize, dtype.flags)
        dtype.__setstate__(state)  # type: ignore[attr-defined]
        if not _is_plain_dtype(dtype) or (dtype.kind, dtype.itemsize, dtype.flags) != before:
            raise pickle.UnpicklingError(f"dtype state changed more than the byte order: {state!r}")

    def _build_array(self, array: np.ndarray, state: Any) -> None:
        """ndarray BUILD: ``(1, shape, dtype, is_fortran, data)`` with a dtype this pickle made;
        ``data`` is a list of the objects of an object array, raw bytes of the exact size for any
        other dtype. Raw bytes are never read as an object array's pointers."""
        if self._unbuilt_arrays.pop(id(array), None) is not array:
            raise pickle.UnpicklingError("BUILD refused for an array not new from _reconstruct")
        if not (type(state) is tuple and len(state) == 5):
            raise pickle.UnpicklingError(
                "ndarray state is not (version, shape, dtype, fortran, data)"
            )
        version, shape, dtype_arg, fortran, data = state
        if type(version) is not int or version != 1 or type(fortran) is not bool:
            raise pickle.UnpicklingError(f"ndarray state: version {version!r}, fortran {fortran!r}")
        if not (type(shape) is tuple and all(type(n) is int and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"ndarray state: bad shape {shape!r}")
        dtype = self._dtypes.get(id(dtype_arg))
        if dtype is None or dtype is not dtype_arg or not _is_plain_dtype(dtype):
            raise pickle.UnpicklingError(f"ndarray state: dtype {dtype_arg!r} refused")
        count = math.prod(shape)
        if dtype.hasobject or dtype.kind == "O":
            if type(data) is not list or len(data) != count:
                raise pickle.UnpicklingError(
                    f"an object array may only be filled from a list of {count} objects, "
                    f"not {type(data).__name__} (raw bytes would be read as pointers)"
                )
        elif type(data) is not bytes or len(data) != count * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"ndarray state: {dtype} {shape} needs {count * dtype.itemsize} bytes of data, "
                f"not {type(data).__name__} of {len(data) if isinstance(data, bytes) else '?'}"
            )
        array.__setstate__(state)

    # ------------------------------------------------------------------ opcodes, overridden

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Placeholder):
            inst.__setstate__(state)
        elif type(inst) is np.ndarray:
            self._build_array(inst, state)
        elif isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
        else:
            raise pickle.UnpicklingError(f"BUILD refused for {type(inst).__name__}")

    def _placeholder_class(self, cls: Any, opcode: str) -> type[Placeholder]:
        if not (isinstance(cls, type) and issubclass(cls, Placeholder)):
            raise pickle.UnpicklingError(f"{opcode} refused for {cls!r}: only pandas placeholders")
        return cls

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self._placeholder_class(self.stack.pop(), "NEWOBJ")
        self.append(cls.__new__(cls, *args))

    def _load_refused(self) -> None:
        raise pickle.UnpicklingError("NEWOBJ_EX, OBJ and INST are not allowed in this pickle")

    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_refused
    dispatch[pickle.OBJ[0]] = _load_refused
    dispatch[pickle.INST[0]] = _load_refused


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data)).load()
