"""Static post-training int8 quantization of a bank member with ONNX Runtime (seed paper 004).

``quant_pre_process`` (shape inference and graph optimisation), then ``quantize_static`` in the
QDQ format with signed int8 activations and weights, per-channel weight scales, percentile
calibration (each activation's range cut at its 99.99th percentile: a few rare spikes, up to five
times the 99.9th percentile, set a MinMax range whose int8 steps were coarser than most values),
the first convolution left in fp32 (``QuantConfig.fp32_first_conv``: its input is the normalised
window) and the classifier too (``fp32_classifier``: its int8 output rounded close logits to
one step). The calibration reader feeds real training windows exactly as the agent
feeds the member: cut at the member's resolution by the agent's rule, normalised with the manifest's
normalisation, in the member's input layout, batch 1.

Whether int8 pays is measured, not assumed: ONNX Runtime's int8 kernels need dot-product
instructions (x86 VNNI, Arm dot-product) to beat fp32, and small CNNs are dominated by per-call
overhead. :func:`keep_int8` keeps a variant only when it is within ``max_drop`` of its fp32
parent on the validation subjects and faster in the same interleaved latency run.
"""

from __future__ import annotations

import contextlib
import io
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
    # the classifier's pooled input and its logits were quantized per tensor: close logits fell
    # on one step. It is at most a few thousand MACs (9,216 in the widest member): in fp32 it
    # changes no latency figure
    fp32_classifier: bool = True
    # "MinMax" or "Percentile" (ORT's CalibrationMethod names). On a selection bank's held-out
    # validation, percentile 99.99 took the int8 graphs' disagreement with their fp32 parents
    # from 2.5 to 0.9 % of windows (docs/model-bank.md "Percentile calibration")
    calibration: str = "Percentile"
    percentile: float = 99.99
    version: int = 4
    # the quantizer is ONNX Runtime's own: another version may write other int8 graphs from the
    # same parent and windows, so a member's quant_config (its provenance) records which one
    onnxruntime: str = onnxruntime.__version__


CALIBRATION = {"MinMax": CalibrationMethod.MinMax, "Percentile": CalibrationMethod.Percentile}


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
        keep = fp32_nodes(pre, cfg)
        # ORT's histogram calibrators print their progress: it would cut through the bars
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(pre),
                str(dst),
                WindowReader(spec.name, inputs),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                calibrate_method=CALIBRATION[cfg.calibration],
                nodes_to_exclude=keep,
                extra_options=(
                    {"CalibPercentile": cfg.percentile} if cfg.calibration == "Percentile" else {}
                ),
            )
    return dst


def fp32_nodes(path: Path, cfg: QuantConfig) -> list[str]:
    """The names of the nodes of the graph at ``path`` that ``cfg`` leaves in fp32: its first
    Conv and its classifier (the last Gemm or MatMul), where the graph has them."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"][:1]
    heads = [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")][-1:]
    return [*(convs if cfg.fp32_first_conv else []), *(heads if cfg.fp32_classifier else [])]


def quantization_text(cfg: QuantConfig) -> str:
    """How a variant was quantized, in words (its manifest provenance)."""
    calib = (
        f"percentile {cfg.percentile:g} calibration"
        if cfg.calibration == "Percentile"
        else f"{cfg.calibration} calibration"
    )
    fp32 = [
        *(["the first convolution"] if cfg.fp32_first_conv else []),
        *(["the classifier"] if cfg.fp32_classifier else []),
    ]
    return (
        "onnxruntime.quantization quant_pre_process + quantize_static, QDQ, QInt8 activations "
        f"and weights, {calib}" + (f", {' and '.join(fp32)} left in fp32" if fp32 else "")
    )


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
