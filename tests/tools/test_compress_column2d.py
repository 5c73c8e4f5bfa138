"""Compression of a per-column 2-D (``wc-``) member: the parent rebuilt exactly from ONNX,
channel pruning through torch-pruning's dependency graph with the per-column classifier inputs
removed correctly, and the whole ``tools.bank.compress`` command (smoke) on a tiny parent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torch_pruning")

from onnx import numpy_helper  # noqa: E402

from agent.manifest import InputSpec, ModelEntry, load_manifest, sha256_file, write_manifest  # noqa: E402
from tests.tools.entries import model_entry  # noqa: E402
from tools.bank import compress  # noqa: E402
from tools.bank.evaluate import model_input  # noqa: E402
from tools.bank.importance import CRITERIA, activation_scores, convs  # noqa: E402
from tools.bank.parent import plain_from_onnx  # noqa: E402
from tools.bank.plain_arch import (  # noqa: E402
    COLUMN2D,
    CONV1D,
    PrunableColumnCNN,
    arch_of,
    to_plain,
    working_model,
)
from tools.bank.prune import channels_of, prune_layer  # noqa: E402
from tools.bank.quantize import QuantConfig, quantize_member  # noqa: E402
from tools.bank.supernet2d import ColumnConfig, PlainColumnCNN  # noqa: E402
from tools.export import export_onnx, ort_logits, session  # noqa: E402
from tools.hapt import CHANNELS, UNITS  # noqa: E402
from tools.models import count_macs_params  # noqa: E402

pytestmark = pytest.mark.tools

PARENT_CHANNELS = (16, 32, 64)
PARENT_ID = "wc-w1.00-r128"


def _tiny_plain(seed: int = 0) -> PlainColumnCNN:
    torch.manual_seed(seed)
    return PlainColumnCNN(PARENT_CHANNELS, ColumnConfig()).eval()


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    model = onnx.load(str(path))
    return {i.name: tuple(numpy_helper.to_array(i).shape) for i in model.graph.initializer}


def _x(n: int, length: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, length, 6)).astype(np.float32)


def _entry(path: Path, **changes: Any) -> ModelEntry:
    return model_entry(path, changes.pop("id", PARENT_ID), **changes)


def test_arch_is_read_from_the_entry(tmp_path: Path) -> None:
    path = export_onnx(_tiny_plain(), tmp_path / "p.onnx", (1, 64, 6))
    assert arch_of(_entry(path)) == COLUMN2D  # from the id
    assert arch_of(_entry(path, id="pr50-wc-w1.00-r128")) == COLUMN2D
    assert arch_of(_entry(path, id="q8-pr25-wc-w1.00-r128")) == COLUMN2D
    assert arch_of(_entry(path, id="wr-w1.00-r128")) == CONV1D
    prov = {"model_config": {"arch": "column2d"}}
    assert arch_of(_entry(path, id="x", provenance=prov)) == COLUMN2D


def test_parent_round_trips_through_onnx(tmp_path: Path) -> None:
    plain = _tiny_plain()
    path = export_onnx(plain, tmp_path / "p.onnx", (1, 64, 6))
    back = plain_from_onnx(path)
    assert isinstance(back, PlainColumnCNN) and channels_of(back) == PARENT_CHANNELS
    x = _x(8, 64)
    with torch.no_grad():
        ref = plain(torch.from_numpy(x))
        assert torch.equal(back(torch.from_numpy(x)), ref)
        prunable = working_model(back)
        assert isinstance(prunable, PrunableColumnCNN)
        assert torch.allclose(prunable(torch.from_numpy(x)), ref, atol=1e-5)
        # and back: the export form is the members' layout, bit for bit
        assert torch.equal(to_plain(prunable).classifier.weight, plain.classifier.weight)
    assert np.max(np.abs(ort_logits(session(path), x) - ref.numpy())) < 1e-4


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_pruning_the_last_conv_removes_its_inputs_in_every_column(
    tmp_path: Path, criterion: str
) -> None:
    plain = _tiny_plain()
    model = working_model(plain)
    batches = [torch.randn(8, 64, 6)]
    scores = CRITERIA[criterion](model, 2, batches)
    assert scores.shape == (64,)
    prune_layer(model, 2, 40, scores, 64)
    assert channels_of(model) == (16, 32, 40)
    removed = sorted(torch.argsort(scores, stable=True)[:24].tolist())
    kept = [c for c in range(64) if c not in removed]
    exported = to_plain(model)
    # the classifier kept exactly the kept channels of every one of the 6 columns
    w0 = plain.classifier.weight.detach()
    expected = w0.view(6, 6, 64)[:, :, kept].reshape(6, 6 * 40)
    assert torch.equal(exported.classifier.weight, expected)
    # same function as the parent with the removed channels silenced
    silenced = _tiny_plain()
    with torch.no_grad():
        conv = silenced.features[4]
        conv.weight[removed] = 0
        conv.bias[removed] = -1.0  # ReLU -> 0
    x = _x(16, 64, 3)
    with torch.no_grad():
        ref = silenced(torch.from_numpy(x)).numpy()
        got = exported(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(ref - got)) < 1e-4
    path = export_onnx(exported, tmp_path / "pruned.onnx", (1, 64, 6))
    shapes = _shapes(path)
    assert shapes["features.4.weight"] == (40, 32, 6, 1)
    assert shapes["classifier.weight"] == (6, 6 * 40)
    assert np.max(np.abs(got - ort_logits(session(path), x))) < 1e-4
    assert isinstance(plain_from_onnx(path), PlainColumnCNN)


def test_pruning_a_middle_conv_shrinks_the_next_conv_and_macs() -> None:
    model = working_model(_tiny_plain())
    before = count_macs_params(model, (1, 128, 6))[0]
    scores = activation_scores(model, 1, [torch.randn(4, 128, 6)])
    prune_layer(model, 1, 12, scores, 128)
    assert channels_of(model) == (16, 12, 64) and convs(model)[2].in_channels == 12
    assert count_macs_params(model, (1, 128, 6))[0] < before


def test_activation_importance_sees_dead_channels() -> None:
    model = working_model(_tiny_plain())
    with torch.no_grad():
        convs(model)[0].bias[3] = -1e3  # channel 3 never fires after ReLU
    scores = activation_scores(model, 0, [torch.randn(4, 64, 6)])
    assert scores[3] == 0 and int(torch.argmin(scores)) == 3


def _first_conv_stays_fp32(model: Any) -> None:
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    weights = {i.name: i for i in model.graph.initializer}
    assert weights[first.input[1]].data_type == onnx.TensorProto.FLOAT


def test_static_int8_of_a_column_member(tmp_path: Path) -> None:
    src = export_onnx(_tiny_plain(), tmp_path / "fp32.onnx", (1, 64, 6))
    spec = InputSpec("imu", "NTC", 64, 25.0, 32, CHANNELS, UNITS)
    calib = model_input(_x(32, 64, 0), spec)
    dst = quantize_member(src, tmp_path / "int8.onnx", calib, spec, QuantConfig())
    model = onnx.load(str(dst))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= 2  # 2 convs (the first conv and the classifier stay fp32)
    _first_conv_stays_fp32(model)
    fp, q = ort_logits(session(src), calib[:16]), ort_logits(session(dst), calib[:16])
    # an untrained net's logits are small (~0.1): a loose bound; the real members are checked
    # by the compress run's validation accuracy (keep rule)
    assert np.max(np.abs(fp - q)) < 0.25 * np.max(np.abs(fp)) + 1e-3
    assert dst.stat().st_size < src.stat().st_size


@pytest.fixture(scope="module")
def smoke_bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A bank holding one tiny wc- parent, compressed by the CLI on the 4 smoke subjects
    (no --parent: a column2d bank defaults to wc-w1.00-r128)."""
    out = tmp_path_factory.mktemp("wccbank")
    path = export_onnx(_tiny_plain(), out / f"{PARENT_ID}.onnx", (1, 128, 6))
    write_manifest(out, [_entry(path)], {"generator": "test"})
    data = "auto"  # data/hapt when imported, else the pickle
    args = compress.parse_args(["--smoke", "--out", str(out), "--data", str(data)])
    return out, compress.run(args)


def test_smoke_compress_of_a_column_bank(smoke_bank: tuple[Path, dict[str, Any]]) -> None:
    out, result = smoke_bank
    manifest = load_manifest(out)
    parent = manifest.get(PARENT_ID)
    assert result["report"]["pruning"]["arch"] == COLUMN2D
    pruned = [m for m in manifest.models if m.family == "pruned"]
    assert {m.id for m in pruned} == {f"pr50-{PARENT_ID}", f"pr25-{PARENT_ID}"}
    for m in pruned:
        path = manifest.path_of(m)
        assert m.sha256 == sha256_file(path) and m.file_bytes == path.stat().st_size
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        graph = onnx.load(str(path)).graph
        (inp,), (outp,) = graph.input, graph.output
        assert inp.name == "imu" and outp.name == "logits"
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 128, 6]
        assert [d.dim_value for d in outp.type.tensor_type.shape.dim] == [1, 6]
        shapes = _shapes(path)
        outs = [shapes[f"features.{i}.weight"][0] for i in (0, 2, 4)]
        assert sum(outs) < sum(PARENT_CHANNELS)
        assert all(o <= p for o, p in zip(outs, PARENT_CHANNELS, strict=True))
        assert shapes["features.2.weight"][1] == outs[0]
        assert shapes["features.4.weight"][1] == outs[1]
        assert shapes["classifier.weight"] == (6, 6 * outs[2])
        assert m.provenance["arch"] == COLUMN2D and arch_of(m) == COLUMN2D
        assert m.provenance["channels"] == outs
        assert m.macs <= m.provenance["target_macs_ratio"] * m.provenance["parent_macs"]
        assert m.metrics["ort_vs_torch_max_abs_diff"] < 1e-4
        assert m.provenance["parent_sha256"] == parent.sha256
        assert m.input == parent.input and m.normalization == parent.normalization
        assert 0 <= m.metrics["accuracy"] <= 1 and m.metrics["test_windows"] > 50
        x = _x(4, 128, 2)
        with torch.no_grad():
            ref = plain_from_onnx(path)(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(ref - ort_logits(session(path), x))) < 1e-4
    rows = result["report"]["int8"]
    assert {r["parent"] for r in rows} == {parent.id, *(m.id for m in pruned)}
    for m in (m for m in manifest.models if m.family == "int8"):
        assert arch_of(m) == COLUMN2D
        assert "QuantizeLinear" in {
            n.op_type for n in onnx.load(str(manifest.path_of(m))).graph.node
        }
