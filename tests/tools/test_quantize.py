"""The int8 quantizer: which nodes stay fp32, how activation ranges are calibrated, and its
configuration as a member's provenance records it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from agent.manifest import InputSpec  # noqa: E402
from tools.bank.evaluate import model_input  # noqa: E402
from tools.bank.quantize import QuantConfig, quantization_text, quantize_member  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402
from tools.hapt import CHANNELS, UNITS  # noqa: E402

SPEC = InputSpec("imu", "NTC", 64, 25.0, 32, CHANNELS, UNITS)


def test_int8_members_record_the_onnxruntime_that_quantized_them() -> None:
    """quantize_stage writes ``asdict(QuantConfig)`` as an int8 member's ``quant_config``; the
    committed int8 members say which quantization recipe made them, not which quantizer."""
    assert asdict(QuantConfig())["onnxruntime"] == ort.__version__


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    plain = PlainCNN((8, 16, 16), SlimConfig()).eval()
    return export_onnx(plain, tmp_path_factory.mktemp("q") / "fp32.onnx", (1, 64, 6))


def _calib(spike: float = 0.0, n: int = 64) -> np.ndarray:
    """``n`` normal windows; with ``spike``, one sample of one window that large."""
    x = np.random.default_rng(0).standard_normal((n, 64, 6)).astype(np.float32)
    x[5, 10, :] += spike
    return model_input(x, SPEC)


def _node(model: onnx.ModelProto, op: str, last: bool = False) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.op_type == op]
    return nodes[-1] if last else nodes[0]


def _quantized(parent: Path, tmp: Path, **cfg: object) -> onnx.ModelProto:
    return onnx.load(str(quantize_member(parent, tmp, _calib(), SPEC, QuantConfig(**cfg))))


@pytest.mark.parametrize("fp32_classifier", [True, False])
def test_the_classifier_stays_fp32_by_default(
    parent: Path, tmp_path: Path, fp32_classifier: bool
) -> None:
    """Its logits were quantized per tensor, so close logits could fall on one int8 step."""
    model = _quantized(parent, tmp_path / "q.onnx", fp32_classifier=fp32_classifier)
    weights = {i.name: i for i in model.graph.initializer}
    head = _node(model, "Gemm", last=True)
    # in fp32 its weight is a float initializer; quantized, a DequantizeLinear feeds it
    assert (head.input[1] in weights) is fp32_classifier
    produced_by_q = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert (model.graph.output[0].name in produced_by_q) is not fp32_classifier
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs[0].input[1] in weights  # the first conv stays fp32 either way
    assert all(c.input[1] not in weights for c in convs[1:])  # the others are int8


def _second_conv_input_scale(model: onnx.ModelProto) -> float:
    """The int8 step of the second conv's input (the first ReLU's output, pooled)."""
    second = [n for n in model.graph.node if n.op_type == "Conv"][1]
    dq = next(n for n in model.graph.node if n.output[0] == second.input[0])
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(init[dq.input[1]])


@pytest.mark.parametrize(
    ("calibration", "tracks_the_spike"), [("MinMax", True), ("Percentile", False)]
)
def test_percentile_calibration_ignores_a_rare_spike(
    parent: Path, tmp_path: Path, calibration: str, tracks_the_spike: bool
) -> None:
    """One sample in 2048 windows 50x larger widens a MinMax range (and every int8 step) many
    times over; the 99.99th percentile leaves the range where the other windows put it."""
    scales = []
    for spike in (0.0, 50.0):
        dst = tmp_path / f"q{spike}.onnx"
        cfg = QuantConfig(calibration=calibration)
        scales.append(
            _second_conv_input_scale(
                onnx.load(str(quantize_member(parent, dst, _calib(spike, 2048), SPEC, cfg)))
            )
        )
    grew = scales[1] / scales[0]
    assert (grew > 3) is tracks_the_spike, scales


def test_quantization_text_names_the_recipe() -> None:
    assert quantization_text(QuantConfig()).endswith(
        "percentile 99.99 calibration, the first convolution and the classifier left in fp32"
    )
    text = quantization_text(
        QuantConfig(calibration="MinMax", fp32_first_conv=False, fp32_classifier=False)
    )
    assert text.endswith("QInt8 activations and weights, MinMax calibration")
