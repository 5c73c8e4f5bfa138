"""Minimal walks over an ONNX file's protobuf (wire format), without the onnx package.

Two readers share one strict low-level field reader: the parameter count of the graph's
initializers (``har-agent bench`` reports it for files outside the manifest), and the check that
no tensor anywhere in the model refers to external data files (``OrtEngine`` refuses those).
Field numbers are those of ``onnx/onnx.proto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

_Buffer = bytes | memoryview
_MAX_VARINT_BYTES = 10
_MAX_TAG = 0xFFFF_FFFF  # protobuf reads tags as uint32
_U64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: _Buffer, i: int) -> tuple[int, int]:
    """The varint at ``buf[i]`` (truncated to 64 bits, as protobuf does) and the next offset."""
    start, out, shift = i, 0, 0
    end = min(len(buf), i + _MAX_VARINT_BYTES)
    while i < end:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out & _U64, i
        shift += 7
    if i - start == _MAX_VARINT_BYTES:
        raise ProtobufError(f"varint longer than {_MAX_VARINT_BYTES} bytes at byte {start}")
    raise ProtobufError(f"truncated varint at byte {start}")


def _fields(buf: _Buffer) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of a protobuf message: an int for a varint,
    a view of the payload for length-delimited and fixed-width fields. Groups (wire types 3 and
    4, deprecated) and anything that runs past the end raise :class:`ProtobufError`."""
    view = memoryview(buf)
    i, size = 0, len(view)
    while i < size:
        start = i
        key, i = _varint(view, i)
        number, wire = key >> 3, key & 7
        if number == 0 or key > _MAX_TAG:
            raise ProtobufError(f"invalid field tag {key} at byte {start}")
        if wire == 0:
            value, i = _varint(view, i)
            yield number, wire, value
            continue
        if wire == 2:
            n, i = _varint(view, i)
        elif wire == 1:
            n = 8
        elif wire == 5:
            n = 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} at byte {start}")
        if n > size - i:
            raise ProtobufError(f"field {number} at byte {start} runs past the end")
        yield number, wire, view[i : i + n]
        i += n


# Where TensorProtos live: message kind -> {field number: kind of the embedded message}.
_TENSOR = "tensor"
_CHILDREN: dict[str, dict[int, str]] = {
    # ModelProto: graph = 7, training_info = 20, functions = 25
    "model": {7: "graph", 20: "training", 25: "function"},
    # TrainingInfoProto: initialization = 1, algorithm = 2
    "training": {1: "graph", 2: "graph"},
    # FunctionProto: node = 7, attribute_proto = 11 (attribute defaults)
    "function": {7: "node", 11: "attribute"},
    # GraphProto: node = 1, initializer = 5, sparse_initializer = 15
    "graph": {1: "node", 5: _TENSOR, 15: "sparse"},
    # NodeProto: attribute = 5
    "node": {5: "attribute"},
    # AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11, sparse_tensor = 22,
    # sparse_tensors = 23
    "attribute": {5: _TENSOR, 6: "graph", 10: _TENSOR, 11: "graph", 22: "sparse", 23: "sparse"},
    # SparseTensorProto: values = 1, indices = 2
    "sparse": {1: _TENSOR, 2: _TENSOR},
}


def _tensors(blob: _Buffer) -> Iterator[memoryview]:
    """Every TensorProto in a ModelProto: initializers, sparse initializers, attribute tensors,
    subgraphs (If/Loop/Scan bodies) and function bodies, at any depth (an explicit stack: no
    recursion limit to hit)."""
    stack: list[tuple[str, _Buffer]] = [("model", blob)]
    while stack:
        kind, buf = stack.pop()
        children = _CHILDREN[kind]
        for number, wire, value in _fields(buf):
            child = children.get(number)
            if child is None or wire != 2 or isinstance(value, int):
                continue  # a mismatched wire type is an unknown field to protobuf, too
            if child == _TENSOR:
                yield value
            else:
                stack.append((child, value))


def _is_external(tensor: _Buffer) -> bool:
    """Whether a TensorProto has any ``external_data`` entry (field 13, whatever the order of its
    key and value) or a ``data_location`` (field 14) other than a plain DEFAULT (0); EXTERNAL is
    1."""
    for number, wire, value in _fields(tensor):
        if number == 13 or (number == 14 and (wire != 0 or value != 0)):
            return True
    return False


def refers_to_external_data(blob: _Buffer) -> bool:
    """Whether any tensor of the ONNX model in ``blob`` refers to external data; raises
    :class:`ProtobufError` if the bytes are not a well-formed protobuf along the way."""
    return any(_is_external(t) for t in _tensors(blob))


def onnx_param_count(blob: bytes) -> int:
    """Elements in the graph's initializers (ModelProto.graph = 7, GraphProto.initializer = 5,
    TensorProto.dims = 1): the model's parameters, without the onnx package."""
    total = 0
    for number, wire, graph in _fields(blob):
        if number != 7 or wire != 2 or isinstance(graph, int):
            continue
        for gnum, gwire, tensor in _fields(graph):
            if gnum != 5 or gwire != 2 or isinstance(tensor, int):
                continue
            dims: list[int] = []
            for tnum, twire, value in _fields(tensor):
                if tnum != 1:
                    continue
                if isinstance(value, int):
                    dims.append(value)
                elif twire == 2:  # packed repeated int64
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


def op_types(blob: bytes) -> frozenset[tuple[str, str]]:
    """(domain, op_type) of every node of the main graph (ModelProto.graph = 7, GraphProto.node
    = 1, NodeProto.op_type = 4, NodeProto.domain = 7): which kernels a session of it runs."""
    out: set[tuple[str, str]] = set()
    for number, wire, graph in _fields(blob):
        if number != 7 or wire != 2 or isinstance(graph, int):
            continue
        for gnum, gwire, node in _fields(graph):
            if gnum != 1 or gwire != 2 or isinstance(node, int):
                continue
            op = domain = ""
            for nnum, nwire, value in _fields(node):
                if nwire == 2 and not isinstance(value, int) and nnum in (4, 7):
                    text = bytes(value).decode("utf-8", "replace")
                    op, domain = (text, domain) if nnum == 4 else (op, text)
            out.add((domain, op))
    return frozenset(out)


def op_types_of_file(path: Path) -> frozenset[tuple[str, str]] | None:
    try:
        return op_types(path.read_bytes())
    except (OSError, ValueError, IndexError):
        return None
