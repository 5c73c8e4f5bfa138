"""Parameter count of an ONNX file without the onnx package: a minimal protobuf walk over the
graph's initializers (``har-agent bench`` reports it for files outside the manifest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message (varints and length-delimited)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, wire, value
        elif wire == 2:
            n, i = _varint(buf, i)
            yield number, wire, buf[i : i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")


def onnx_param_count(blob: bytes) -> int:
    """Elements in the graph's initializers (ModelProto.graph = 7, GraphProto.initializer = 5,
    TensorProto.dims = 1): the model's parameters, without the onnx package."""
    total = 0
    for number, _, graph in _fields(blob):
        if number != 7 or not isinstance(graph, bytes):
            continue
        for gnum, _, tensor in _fields(graph):
            if gnum != 5 or not isinstance(tensor, bytes):
                continue
            dims: list[int] = []
            for tnum, wire, value in _fields(tensor):
                if tnum != 1:
                    continue
                if wire == 0 and isinstance(value, int):
                    dims.append(value)
                elif isinstance(value, bytes):  # packed repeated int64
                    j = 0
                    while j < len(value):
                        d, j = _varint(value, j)
                        dims.append(d)
            total += int(np.prod(dims)) if dims else 1
    return total


def params_of_file(path: Path) -> int | None:
    try:
        return onnx_param_count(path.read_bytes())
    except (OSError, ValueError, IndexError):
        return None
