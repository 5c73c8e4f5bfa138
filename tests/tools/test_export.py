"""check_export: the gate every exported member passes (parity with PyTorch, BatchNorm folded)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tools.export import PARITY_TOLERANCE, check_export


def _graph(path: Path, with_bn: bool) -> Path:
    """A 1x2x4 input through an identity (and a BatchNormalization node when asked)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4])
    nodes = [helper.make_node("Identity", ["x"], ["h"])]
    inits = []
    if with_bn:
        for name, value in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
            inits.append(numpy_helper.from_array(np.full(2, value, np.float32), name))
        nodes.append(helper.make_node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["h"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))
    onnx.checker.check_model(model)
    out = path / ("bn.onnx" if with_bn else "plain.onnx")
    onnx.save(model, str(out))
    return out


def test_a_folded_graph_within_tolerance_passes(tmp_path: Path) -> None:
    check_export("m", _graph(tmp_path, with_bn=False), PARITY_TOLERANCE)
    check_export("m", _graph(tmp_path, with_bn=False), 0.0)


@pytest.mark.parametrize("diff", [PARITY_TOLERANCE * 1.01, 1.0, math.nan, math.inf])
def test_parity_over_the_tolerance_is_refused(tmp_path: Path, diff: float) -> None:
    with pytest.raises(RuntimeError, match="m: ONNX Runtime and PyTorch logits differ by"):
        check_export("m", _graph(tmp_path, with_bn=False), diff)


def test_a_batchnorm_node_left_is_refused(tmp_path: Path) -> None:
    path = _graph(tmp_path, with_bn=True)
    with pytest.raises(RuntimeError, match="m: a BatchNormalization node is left in"):
        check_export("m", path, 0.0)
