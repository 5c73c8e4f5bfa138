"""Static post-training int8 quantization of a bank member with ONNX Runtime (seed paper 004).

``quant_pre_process`` (shape inference and graph optimisation), then ``quantize_static`` in the
QDQ format with signed int8 activations and weights, per-channel weight scales, MinMax
calibration, the first convolution left in fp32 (``QuantConfig.fp32_first_conv``: its input is
the normalised window). The calibration reader feeds real training windows exactly as the agent
feeds the member: cut at the member's resolution by the agent's rule, normalised with the manifest's
normalisation, in the member's input layout, batch 1.

Whether int8 pays is measured, not assumed: ONNX Runtime's int8 kernels need dot-product
instructions (x86 VNNI, Arm dot-product) to beat fp32, and small CNNs are dominated by per-call
overhead. :func:`keep_int8` keeps a variant only when it is within ``max_drop`` of its fp32
parent on the validation subjects and faster in the same interleaved latency run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from agent.manifest import InputSpec
from agent.windowing import Normalizer


@dataclass(frozen=True)
class QuantConfig:
    calib_windows: int = 256
    per_channel: bool = True
    reduce_range: bool = False
    max_drop: float = 0.005  # accuracy (fraction) an int8 variant may lose against its parent
    # fp32 p50 / int8 p50 an int8 variant must reach: interleaved ratios of one pair moved from
    # 0.89x to 1.05x between two runs on one machine, so "faster at all" kept a member by chance
    min_speedup: float = 1.1
    seed: int = 0
    # the first convolution reads the normalised window, whose per-tensor int8 steps cost the
    # members trained with random rotations 1-3 pt; left in fp32 it halved the loss on a
    # selection bank's validation subjects (docs/model-bank.md)
    fp32_first_conv: bool = True
    version: int = 3
    # the quantizer is ONNX Runtime's own: another version may write other int8 graphs from the
    # same parent and windows, so a member's quant_config (its provenance) records which one
    onnxruntime: str = onnxruntime.__version__


class WindowReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration windows one by one as ``{input_name: [1, ...]}``."""

    def __init__(self, input_name: str, inputs: np.ndarray) -> None:
        self.input_name = input_name
        self.inputs = inputs.astype(np.float32)
        self._it: Iterator[dict[str, np.ndarray]] = self._feeds()

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self.inputs)):
            yield {self.input_name: self.inputs[i : i + 1]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._feeds()


def calibration_inputs(
    windows: np.ndarray, norm: Normalizer, spec: InputSpec, n: int, seed: int
) -> np.ndarray:
    """``n`` seeded random raw windows [N, T, C], normalised and laid out for the model."""
    from tools.bank.evaluate import model_input

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(windows), size=min(n, len(windows)), replace=False))
    return model_input(norm(windows[idx]), spec).astype(np.float32)


def quantize_member(
    src: Path, dst: Path, inputs: np.ndarray, spec: InputSpec, cfg: QuantConfig
) -> Path:
    """Pre-process ``src`` and write its static QDQ int8 version to ``dst``."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        keep = first_conv(pre) if cfg.fp32_first_conv else []
        quantize_static(
            str(pre),
            str(dst),
            WindowReader(spec.name, inputs),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep,
        )
    return dst


def first_conv(path: Path) -> list[str]:
    """The name of the first Conv node of the graph at ``path`` (none: an empty list)."""
    import onnx

    graph = onnx.load(str(path)).graph
    return [n.name for n in graph.node if n.op_type == "Conv"][:1]


def keep_int8(
    fp32_acc: float, int8_acc: float, fp32_p50: float, int8_p50: float, cfg: QuantConfig
) -> tuple[bool, str]:
    """Whether the int8 variant earns its place, and why (one line)."""
    drop = fp32_acc - int8_acc
    if drop > cfg.max_drop + 1e-9:
        return False, f"loses {100 * drop:.2f} pt on validation (limit {100 * cfg.max_drop:.2f})"
    if int8_p50 * cfg.min_speedup > fp32_p50:
        return False, (
            f"not {cfg.min_speedup:g}x faster (p50 {int8_p50:.4f} ms vs {fp32_p50:.4f} ms)"
        )
    return True, f"{fp32_p50 / int8_p50:.2f}x faster, {100 * drop:+.2f} pt validation drop"
