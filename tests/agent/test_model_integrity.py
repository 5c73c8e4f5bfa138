"""Model files are checked before they run: checksum, loadability, shape, external data."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ModelError
from agent.inference import OrtEngine, SessionSettings
from agent.manifest import ModelEntry, load_manifest, sha256_file
from tests.agent.helpers import MODELS, default_entry


def _copy(tmp_path: Path) -> tuple[Path, ModelEntry]:
    entry = default_entry()
    dst = tmp_path / entry.file
    shutil.copy(MODELS / entry.file, dst)
    return dst, entry


def test_good_model_runs(tmp_path: Path) -> None:
    path, entry = _copy(tmp_path)
    out = OrtEngine(path, entry, SessionSettings()).run(np.zeros(entry.input.shape, np.float32))
    assert out.shape == (1, len(entry.labels))


def test_checksum_mismatch(tmp_path: Path) -> None:
    path, entry = _copy(tmp_path)
    with open(path, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\xff\xff")
    with pytest.raises(ModelError, match="sha256 .* does not match"):
        OrtEngine(path, entry, SessionSettings())


def test_truncated_model_with_matching_checksum(tmp_path: Path) -> None:
    path, entry = _copy(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    entry = dataclasses.replace(entry, sha256=sha256_file(path))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load the model"):
        OrtEngine(path, entry, SessionSettings())


def test_missing_file(tmp_path: Path) -> None:
    _, entry = _copy(tmp_path)
    with pytest.raises(ModelError, match="missing"):
        OrtEngine(tmp_path / "nope.onnx", entry, SessionSettings())


def test_unexpected_input_shape(tmp_path: Path) -> None:
    path, entry = _copy(tmp_path)
    spec = dataclasses.replace(entry.input, length=entry.input.length * 2)
    with pytest.raises(ModelError, match="input shape"):
        OrtEngine(path, dataclasses.replace(entry, input=spec), SessionSettings())


def test_unexpected_input_name(tmp_path: Path) -> None:
    path, entry = _copy(tmp_path)
    spec = dataclasses.replace(entry.input, name="other")
    with pytest.raises(ModelError, match="inputs"):
        OrtEngine(path, dataclasses.replace(entry, input=spec), SessionSettings())


def test_external_data_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((6, 6), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    _, base = _copy(tmp_path)
    spec = dataclasses.replace(base.input, name="x", layout="NTC", length=1)
    entry = dataclasses.replace(base, input=spec, sha256=sha256_file(path), file="ext.onnx")
    monkeypatch.chdir(tmp_path)  # even with the data file right there in the working directory
    with pytest.raises(ModelError, match="external data"):
        OrtEngine(path, entry, SessionSettings())


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda e: e.update(file="../etc/passwd"), "plain file name"),
        (lambda e: e["input"].update(layout="TNC"), "layout"),
        (lambda e: e.pop("sha256"), "malformed"),
        (
            lambda e: e["normalization"].update(std=[0.0] * 6),
            r"normalization.std\[0\] must be a pos",
        ),
    ],
)
def test_manifest_entries_are_validated(tmp_path: Path, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    import json

    raw = json.loads((MODELS / "manifest.json").read_text())
    edit(raw["models"][0])
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=match):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "unreadable"),
        ('{"manifest_version": 9, "models": []}', "not supported"),
        ('{"manifest_version": 1, "models": {}}', "must be a list"),
        ("[]", r"not a model manifest \(a JSON object expected, got an array\)"),
        ('"models"', "got a string"),
        ("3", "got a number"),
        ("null", "got null"),
    ],
)
def test_bad_manifests(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ModelError, match=match):
        load_manifest(tmp_path)
