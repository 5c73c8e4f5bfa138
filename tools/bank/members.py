"""One bank member: recalibrate, extract, export to ONNX, evaluate with ONNX Runtime, describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from torch import nn

from agent.manifest import InputSpec, ModelEntry, sha256_file
from agent.windowing import Normalizer
from tools import metrics
from tools.bank.arch import ops_for
from tools.bank.windows import ResWindows, rate_for
from tools.export import (
    INPUT_NAME,
    board_name,
    check_export,
    export_onnx,
    latency_ms,
    ort_logits,
    session,
    torch_logits,
)
from tools.hapt import ACTIVITIES, CHANNELS, UNITS
from tools.models import count_macs_params

FAMILY = "width-resolution"


def member_id(width: float, resolution: int, prefix: str = "wr") -> str:
    return f"{prefix}-w{width:.2f}-r{resolution:03d}"


@dataclass(frozen=True)
class MemberResult:
    entry: ModelEntry
    max_abs_diff: float  # ORT vs the plain PyTorch module
    extract_diff: float  # plain module vs the recalibrated supernet


def calib_batches(
    x: np.ndarray, norm: Normalizer, n_batches: int, batch: int, seed: int
) -> list[torch.Tensor]:
    """``n_batches`` random batches of normalised training windows of one resolution."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        idx = rng.choice(len(x), size=min(batch, len(x)), replace=False)
        out.append(torch.from_numpy(norm(x[idx])))
    return out


def build_member(
    model: nn.Module,
    width: float,
    resolution: int,
    calib: list[torch.Tensor],
    norm: Normalizer,
    test: ResWindows,
    val: ResWindows | None,
    out: Path,
    latency_runs: int,
    provenance: dict[str, Any],
) -> MemberResult:
    ops = ops_for(model)
    stats = ops.recalibrate_bn(model, width, calib)
    plain = ops.extract(model, width, stats)
    shape = (1, resolution, len(CHANNELS))
    mid = member_id(width, resolution, ops.id_prefix)
    path = export_onnx(plain, out / f"{mid}.onnx", shape)
    sess = session(path, threads=1)
    test_x = norm(test.x)
    check = test_x[:256]
    diff = float(np.max(np.abs(torch_logits(plain, check) - ort_logits(sess, check))))
    check_export(mid, path, diff)
    ref = ops.calibrated_reference(model, width, stats)
    with torch.no_grad():
        ref_logits = ref(torch.from_numpy(check), width).numpy()
    extract_diff = float(np.max(np.abs(torch_logits(plain, check) - ref_logits)))
    pred = ort_logits(sess, test_x).argmax(1)
    n = len(ACTIVITIES)
    m: dict[str, Any] = {
        "accuracy": round(metrics.accuracy(test.y, pred), 6),
        "f1_weighted": round(metrics.f1_weighted(test.y, pred, n), 6),
        "test_windows": len(test.y),
        "test_subjects": sorted(set(test.subject.tolist())),
        "per_class_recall": {
            c: round(float(r), 6)
            for c, r in zip(ACTIVITIES, metrics.per_class_recall(test.y, pred, n), strict=True)
        },
        "evaluated_with": "onnxruntime",
        "ort_vs_torch_max_abs_diff": diff,
    }
    if val is not None and len(val.y):
        vpred = torch_logits(plain, norm(val.x)).argmax(1)
        m["val_accuracy"] = round(metrics.accuracy(val.y, vpred), 6)
        m["val_windows"] = len(val.y)
        m["val_subjects"] = sorted(set(val.subject.tolist()))
    macs, params = count_macs_params(plain, shape)
    lat = latency_ms(
        sess,
        test_x[:1] if len(test_x) else np.zeros(shape, np.float32),
        runs=latency_runs,
        warmup=min(50, latency_runs),
    )
    entry = ModelEntry(
        id=mid,
        file=path.name,
        sha256=sha256_file(path),
        family=FAMILY,
        input=InputSpec(
            name=INPUT_NAME,
            layout="NTC",
            length=resolution,
            rate_hz=rate_for(resolution),
            hop=resolution // 2,
            channels=CHANNELS,
            units=UNITS,
        ),
        labels=ACTIVITIES,
        normalization=norm,
        width=width,
        resolution=resolution,
        macs=macs,
        params=params,
        file_bytes=path.stat().st_size,
        metrics=m,
        latency_ms={
            "p50": lat["p50"],
            "p90": lat["p90"],
            "runs": lat["runs"],
            "board": board_name(),
            "threads": 1,
            "onnxruntime": onnxruntime.__version__,
        },
        provenance={**provenance, "channels": list(ops.channels_at(model.cfg, width))},
    )
    return MemberResult(entry, diff, extract_diff)
