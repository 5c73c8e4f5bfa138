"""Export a PyTorch model to ONNX, check it, run it with ONNX Runtime, time it."""

from __future__ import annotations

import platform
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17
INPUT_NAME = "imu"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, path: Path, input_shape: Sequence[int]) -> Path:
    """Export ``model`` (eval mode) with one fixed-shape float32 input ``imu`` and one output
    ``logits``, opset 17, then run the ONNX checker on the file.

    Uses the TorchScript exporter (``dynamo=False``): the torch.export-based one needs onnxscript,
    which the tools extra does not pull in. Its deprecation warnings are silenced here.
    """
    model.eval()
    dummy = torch.zeros(*input_shape, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU ONNX Runtime session limited to ``threads`` intra-op threads, sequential."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def ort_logits(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Logits for windows ``x`` [N, T, C], one session.run per window (the model has batch 1)."""
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: x[i : i + 1].astype(np.float32)})[0] for i in range(len(x))]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def torch_logits(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    parts = []
    with torch.no_grad():
        for a in range(0, len(x), batch):
            parts.append(model(torch.from_numpy(x[a : a + batch])).numpy())
    return np.concatenate(parts)


def max_abs_diff(model: nn.Module, sess: ort.InferenceSession, x: np.ndarray) -> float:
    """Largest |torch - ORT| logit difference over windows ``x``."""
    return float(np.max(np.abs(torch_logits(model, x) - ort_logits(sess, x))))


def latency_ms(
    sess: ort.InferenceSession, window: np.ndarray, runs: int = 500, warmup: int = 50
) -> dict[str, float]:
    """Median (and p90, mean) wall time of one ``session.run`` on a [1, T, C] input, in ms."""
    name = sess.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(window, dtype=np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {
        "p50": round(statistics.median(times), 4),
        "p90": round(times[int(0.9 * (len(times) - 1))], 4),
        "mean": round(statistics.fmean(times), 4),
        "runs": runs,
    }


def board_name() -> str:
    """Where the latency was measured: architecture, CPU model and OS."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {cpu} ({platform.system()} {platform.release()})".strip()


PARITY_TOLERANCE = 1e-4
"""Largest |ONNX Runtime - PyTorch| logit difference an exported fp32 member may show."""


def check_export(member_id: str, path: Path, max_abs_diff: float) -> None:
    """Refuse an export whose ONNX Runtime logits stray from PyTorch's, or whose graph still
    holds a BatchNormalization node (every member must have its BN folded into the convolutions)."""
    if not max_abs_diff <= PARITY_TOLERANCE:
        raise RuntimeError(
            f"{member_id}: ONNX Runtime and PyTorch logits differ by {max_abs_diff:.3g} "
            f"(> {PARITY_TOLERANCE:g}): the export is wrong"
        )
    if any(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node):
        raise RuntimeError(f"{member_id}: a BatchNormalization node is left in {path}")
