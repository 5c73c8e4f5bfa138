"""A model whose tensors refer to external data files is refused, wherever the tensor sits and
however its ``external_data`` entries are ordered; malformed protobuf is a clean ModelError."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent import onnx_params
from agent.errors import ModelError
from agent.inference import OrtEngine, SessionSettings
from agent.manifest import load_manifest, sha256_file
from tests.agent.helpers import MODELS

onnx = pytest.importorskip("onnx")  # the tools extra: needed only to write such files
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

REFUSED = "refers to external data files, which are refused"
LOCATION_FIRST = b"\n\x08location\x12\x05w.bin"  # {key: "location", value: "w.bin"}
VALUE_FIRST = b"\x12\x05w.bin\n\x08location"  # the same entry, value before key


# -- building models ---------------------------------------------------------------------------


def _tensor(name: str, how: str) -> Any:
    """A 6x6 float tensor marked external: ``entries`` (location and data_location, as onnx
    writes it) or ``location-only`` (data_location = EXTERNAL, no entries); ``plain`` unmarked."""
    t = numpy_helper.from_array(np.ones((6, 6), dtype=np.float32), name)
    if how == "entries":
        t.ClearField("raw_data")
        t.external_data.add(key="location", value="w.bin")
        t.data_location = TensorProto.EXTERNAL
    elif how == "location-only":
        t.data_location = TensorProto.EXTERNAL
    return t


def _io() -> tuple[list[Any], list[Any]]:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])
    return [x], [y]


def _model(graph: Any, **kw: Any) -> Any:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **kw)
    model.ir_version = 8
    return model


def _matmul(how: str = "plain") -> Any:
    inputs, outputs = _io()
    node = helper.make_node("MatMul", ["x", "W"], ["y"])
    return _model(helper.make_graph([node], "g", inputs, outputs, [_tensor("W", how)]))


def _constant(how: str) -> Any:
    """A Constant node whose ``value`` attribute (a tensor) is marked."""
    inputs, outputs = _io()
    nodes = [
        helper.make_node("Constant", [], ["W"], value=_tensor("W", how)),
        helper.make_node("MatMul", ["x", "W"], ["y"]),
    ]
    return _model(helper.make_graph(nodes, "g", inputs, outputs))


def _branch(out: str, how: str) -> Any:
    node = helper.make_node("MatMul", ["x", "W"], [out])
    vi = helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 6])
    return helper.make_graph([node], f"branch_{out}", [], [vi], [_tensor("W", how)])


def _if(how: str) -> Any:
    """An If node: the then-branch's initializer is marked, the else-branch is plain."""
    inputs, outputs = _io()
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    node = helper.make_node(
        "If", ["c"], ["y"], then_branch=_branch("a", how), else_branch=_branch("b", "plain")
    )
    return _model(helper.make_graph([node], "g", [*inputs, cond], outputs))


def _sparse(how: str) -> Any:
    inputs, outputs = _io()
    values = numpy_helper.from_array(np.ones(3, dtype=np.float32), "W")
    if how == "entries":
        values.external_data.add(key="location", value="w.bin")
    if how != "plain":
        values.data_location = TensorProto.EXTERNAL
    indices = numpy_helper.from_array(np.arange(3, dtype=np.int64), "W_idx")
    sparse = helper.make_sparse_tensor(values, indices, [6, 6])
    node = helper.make_node("MatMul", ["x", "W"], ["y"])
    graph = helper.make_graph([node], "g", inputs, outputs, sparse_initializer=[sparse])
    return _model(graph)


def _attribute_list(how: str) -> Any:
    """A (custom-domain) node with a ``tensors`` list attribute, one of them marked."""
    inputs, outputs = _io()
    node = helper.make_node(
        "Op", ["x"], ["y"], domain="x.test", ts=[_tensor("A", "plain"), _tensor("B", how)]
    )
    return _model(helper.make_graph([node], "g", inputs, outputs))


def _graph_list(how: str) -> Any:
    """A (custom-domain) node with a ``graphs`` list attribute, the second one marked."""
    inputs, outputs = _io()
    node = helper.make_node(
        "Op", ["x"], ["y"], domain="x.test", gs=[_branch("a", "plain"), _branch("b", how)]
    )
    return _model(helper.make_graph([node], "g", inputs, outputs))


def _nested(how: str) -> Any:
    """The marked tensor in an If branch inside a Loop body inside an If branch."""
    inner = _if(how).graph.node[0]
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    body = helper.make_graph([inner], "body", [cond], [])
    loop = helper.make_node("Loop", ["", "c"], [], body=body)
    outer = helper.make_graph([loop], "outer", [], [])
    inputs, outputs = _io()
    node = helper.make_node("If", ["c"], ["y"], then_branch=outer, else_branch=outer)
    return _model(helper.make_graph([node], "g", [*inputs, cond], outputs))


def _function(how: str) -> Any:
    """A model-local function whose body holds a Constant node with a marked tensor."""
    body = [
        helper.make_node("Constant", [], ["W"], value=_tensor("W", how)),
        helper.make_node("MatMul", ["fx", "W"], ["fy"]),
    ]
    fn = helper.make_function("x.test", "F", ["fx"], ["fy"], body, [helper.make_opsetid("", 17)])
    inputs, outputs = _io()
    node = helper.make_node("F", ["x"], ["y"], domain="x.test")
    graph = helper.make_graph([node], "g", inputs, outputs)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("x.test", 1)]
    model = helper.make_model(graph, opset_imports=opsets, functions=[fn])
    model.ir_version = 8
    return model


def _function_default(how: str) -> Any:
    """A function whose attribute default (FunctionProto.attribute_proto) is a marked tensor."""
    model = _function("plain")
    model.functions[0].attribute_proto.append(helper.make_attribute("w", _tensor("W", how)))
    return model


def _training(how: str) -> Any:
    """A TrainingInfoProto whose initialization graph holds the marked tensor."""
    model = _matmul()
    info = model.training_info.add()
    info.initialization.CopyFrom(_branch("a", how))
    return model


WHERE: dict[str, Callable[[str], Any]] = {
    "initializer": _matmul,
    "constant-value": _constant,
    "if-branch": _if,
    "sparse-initializer": _sparse,
    "attribute-tensors": _attribute_list,
    "attribute-graphs": _graph_list,
    "nested-subgraphs": _nested,
    "function-body": _function,
    "function-attribute-default": _function_default,
    "training-info": _training,
}


def _value_first(blob: bytes) -> bytes:
    """The reviewer's bypass: every ``{location: w.bin}`` entry rewritten value-first."""
    assert LOCATION_FIRST in blob
    out = blob.replace(LOCATION_FIRST, VALUE_FIRST)
    assert b"\n\x08location\x12" not in out
    return out


def _engine(tmp_path: Path, blob: bytes) -> OrtEngine:
    """OrtEngine on ``blob`` as a manifest member (sha256 matching)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(blob)
    base = load_manifest(MODELS).models[0]
    spec = dataclasses.replace(base.input, name="x", layout="NTC", length=1)
    entry = dataclasses.replace(base, input=spec, sha256=sha256_file(path), file=path.name)
    return OrtEngine(path, entry, SessionSettings())


# -- refusals through the engine ---------------------------------------------------------------


def test_external_data_written_by_onnx_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        _matmul(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    monkeypatch.chdir(tmp_path)  # even with the data file right there in the working directory
    with pytest.raises(ModelError, match=REFUSED):
        _engine(tmp_path, path.read_bytes())


def test_the_bypass_really_reads_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The value-first bytes are a real attack: bare ONNX Runtime reads the data file from the
    working directory (what the reviewer showed); this keeps the next test honest."""
    ort = pytest.importorskip("onnxruntime")
    blob = _value_first(_matmul("entries").SerializeToString())
    entry = onnx.load_model_from_string(blob).graph.initializer[0].external_data[0]
    assert (entry.key, entry.value) == ("location", "w.bin")
    secret = np.arange(36, dtype=np.float32).reshape(6, 6)
    (tmp_path / "w.bin").write_bytes(secret.tobytes())
    monkeypatch.chdir(tmp_path)
    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a later ONNX Runtime may refuse it by itself: fine too
        pytest.skip(f"this ONNX Runtime refuses the bypass itself ({exc})")
    x = np.zeros((1, 6), dtype=np.float32)
    x[0, 0] = 1.0
    (y,) = session.run(["y"], {"x": x})
    np.testing.assert_array_equal(y[0], secret[0])


def test_the_value_first_bypass_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = _value_first(_matmul("entries").SerializeToString())
    (tmp_path / "w.bin").write_bytes(np.zeros(36, dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=REFUSED):
        _engine(tmp_path, blob)


def test_bench_of_a_model_file_refuses_the_bypass_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``har-agent bench -m FILE.onnx`` opens files outside the manifest: the same refusal."""
    from typer.testing import CliRunner

    from agent.cli import app

    path = tmp_path / "bypass.onnx"
    path.write_bytes(_value_first(_matmul("entries").SerializeToString()))
    (tmp_path / "w.bin").write_bytes(np.zeros(36, dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["bench", "-m", str(path), "--runs", "5", "--warmup", "1"])
    assert res.exit_code == 1
    assert "the model refers to external data files, which are refused" in res.output


def test_data_location_external_without_entries_is_refused(tmp_path: Path) -> None:
    blob = _matmul("location-only").SerializeToString()
    assert b"location" not in blob
    with pytest.raises(ModelError, match=REFUSED):
        _engine(tmp_path, blob)


@pytest.mark.parametrize("where", ["if-branch", "constant-value"])
@pytest.mark.parametrize("order", ["location-first", "value-first"])
def test_external_data_in_subgraphs_and_attributes_is_refused(
    tmp_path: Path, where: str, order: str
) -> None:
    blob = WHERE[where]("entries").SerializeToString()
    if order == "value-first":
        blob = _value_first(blob)
    with pytest.raises(ModelError, match=REFUSED):
        _engine(tmp_path, blob)


def test_every_committed_model_still_loads() -> None:
    manifest = load_manifest(MODELS)
    assert manifest.models
    for entry in manifest.models:
        engine = OrtEngine(MODELS / entry.file, entry, SessionSettings())
        out = engine.run(np.zeros(entry.input.shape, np.float32))
        assert out.size == len(entry.labels), entry.id


# -- the walker --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize("how", ["entries", "value-first", "location-only"])
def test_walker_finds_every_external_tensor(where: str, how: str) -> None:
    plain = WHERE[where]("plain").SerializeToString()
    assert onnx_params.refers_to_external_data(plain) is False
    blob = WHERE[where]("location-only" if how == "location-only" else "entries")
    data = blob.SerializeToString()
    if how == "value-first":
        data = _value_first(data)
    assert onnx_params.refers_to_external_data(data) is True


def test_entries_without_data_location_are_refused() -> None:
    model = _matmul()
    model.graph.initializer[0].external_data.add(key="location", value="w.bin")
    assert onnx_params.refers_to_external_data(_value_first(model.SerializeToString())) is True


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _msg(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_odd_encodings_of_data_location_are_refused() -> None:
    def model_with(tensor: bytes) -> bytes:
        return _msg(7, _msg(5, tensor))  # ModelProto.graph.initializer

    assert (
        onnx_params.refers_to_external_data(model_with(_msg(8, b"W") + b"\x70\x00")) is False
    )  # DEFAULT
    for field in (
        b"\x70\x01",  # EXTERNAL
        b"\x70\x81\x80\x80\x80\x10",  # 2**32 + 1: an int32 enum reads it as 1
        b"\x70\x81\x00",  # EXTERNAL with a redundant varint byte
        b"\x72\x01\x01",  # field 14 length-delimited
        b"\x6a\x00",  # an empty external_data entry
    ):
        assert onnx_params.refers_to_external_data(model_with(_msg(8, b"W") + field)) is True, field


def test_deep_nesting_does_not_recurse() -> None:
    """If in If in If ... 5000 deep: no RecursionError, the innermost tensor is found."""
    inner = _msg(5, b"\x70\x01")  # GraphProto.initializer: a tensor with data_location 1
    for _ in range(5000):
        inner = _msg(1, _msg(5, _msg(6, inner)))  # graph.node.attribute.g
    assert onnx_params.refers_to_external_data(_msg(7, inner)) is True


# -- malformed bytes ---------------------------------------------------------------------------


def _largest_model() -> bytes:
    files = [MODELS / e.file for e in load_manifest(MODELS).models]
    return max(files, key=lambda p: p.stat().st_size).read_bytes()


@pytest.mark.parametrize(
    "blob",
    [
        b"this is not a protobuf" * 10,
        b"\x3a\xff\xff\xff\xff\x0f",  # graph of length 2**32 - 1
        b"\x3a\x05abc",  # graph running past the end
        b"\x3a",  # tag without a length
        b"\xff" * 11,  # varint too long
        b"\x00\x01",  # field number 0
        b"\x3b",  # start group
        b"\x3f",  # wire type 7
        b"\x3a\x02\x2a\x05",  # initializer running past the end of its graph
    ],
)
def test_garbage_is_a_model_error(tmp_path: Path, blob: bytes) -> None:
    with pytest.raises(onnx_params.ProtobufError):
        onnx_params.refers_to_external_data(blob)
    with pytest.raises(ModelError, match="not a well-formed ONNX protobuf"):
        _engine(tmp_path, blob)


def test_truncated_models_are_a_model_error(tmp_path: Path) -> None:
    blob = _if("plain").SerializeToString()
    for n in range(1, len(blob)):
        try:
            onnx_params.refers_to_external_data(blob[:n])
        except onnx_params.ProtobufError:
            pass
    big = _largest_model()
    for n in (1, 2, 100, 1000, len(big) // 2, len(big) - 1):
        with pytest.raises(ModelError, match="cannot load the model"):
            _engine(tmp_path, big[:n])


def test_fuzzed_bytes_only_raise_protobuf_errors() -> None:
    """Random flips, cuts and splices of real models: a bool or ProtobufError, nothing else."""
    rng = random.Random(20261203)
    seeds = [WHERE[w]("plain").SerializeToString() for w in sorted(WHERE)]
    seeds += [WHERE[w]("entries").SerializeToString() for w in sorted(WHERE)]
    for _ in range(3000):
        blob = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op, i = rng.randrange(3), rng.randrange(len(blob))
            if op == 0:
                blob[i] = rng.randrange(256)
            elif op == 1:
                del blob[i : i + rng.randint(1, 8)]
            else:
                blob[i:i] = rng.randbytes(rng.randint(1, 8))
        try:
            assert isinstance(onnx_params.refers_to_external_data(bytes(blob)), bool)
        except onnx_params.ProtobufError:
            pass
