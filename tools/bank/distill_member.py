"""Distil one member (:mod:`tools.bank.distill`): train it from its teacher's soft targets, export
it, check the ONNX graph against PyTorch, evaluate it with ONNX Runtime on the test subjects and
time it; returns its new manifest entry (same id and family, ``provenance.distilled``,
``metrics.supernet_accuracy``) and its report row.

The student is the member rebuilt from its ONNX graph (BN already folded), trained on the
windows of its own resolution with :func:`tools.bank.finetune.finetune` (``0.5 * KL + 0.5 * CE``,
random gains, AdamW, cosine decay), from a generator seeded afresh for every member. With
``soup`` > 1 it is trained that many times from the same start, seeds ``seed``, ``seed + 1``, …
(the global torch generator, which drives dropout, seeded the same way), and the member is the
mean of the runs' weights (:mod:`tools.bank.soup`); each run's validation and test accuracy
(PyTorch) are kept beside the soup's."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.manifest import ModelEntry, sha256_file
from agent.windowing import Normalizer
from tools.bank.distill_data import DistillData
from tools.bank.evaluate import latency_block, member_metrics
from tools.bank.finetune import FinetuneConfig, finetune, torch_accuracy
from tools.bank.parent import plain_from_onnx
from tools.bank.plain_arch import model_config
from tools.bank.soup import average_weights
from tools.bank.train import norm_tensors
from tools.bank.windows import ResWindows
from tools.export import (
    check_export,
    export_onnx,
    latency_ms,
    ort_logits,
    session,
    torch_logits,
)


def distil_member(
    entry: ModelEntry,
    desc: str,
    bank_dir: Path,
    staging: Path,
    data: DistillData,
    cfg: FinetuneConfig,
    epochs: int,
    seed: int,
    latency_runs: int,
    distilled: dict[str, Any],
    soup: int = 1,
) -> tuple[ModelEntry, dict[str, Any]]:
    """Train ``entry`` (its file in ``bank_dir``) for ``epochs`` (``soup`` times, averaged) and
    export it into ``staging``; ``distilled`` is the run's ``provenance.distilled`` block, which
    gains the member's own figures."""
    r = entry.resolution
    assert r is not None
    norm = data.norm
    x, val, test = data.inputs[r], data.vals[r], data.tests[r]
    start = plain_from_onnx(bank_dir / entry.file, model_config(entry))  # read once
    before = _val_accuracy(start, val, norm)
    turn = norm_tensors(norm) if cfg.rotate_deg else None  # rotations turn raw windows
    t0 = time.time()
    runs, losses = [], []
    for k in range(soup):
        run = copy.deepcopy(start)
        gen = torch.Generator().manual_seed(seed + k)
        if soup > 1:  # each run from its own seed, whatever ran before it (dropout)
            torch.manual_seed(seed + k)
        what = desc if soup == 1 else f"{desc} run {k + 1}/{soup}"
        soft = data.soft_at[r]
        losses.append(
            finetune(run, None, x, data.y, epochs, cfg, gen, desc=what, soft=soft, norm=turn)
        )
        runs.append(run)
    student = runs[0] if soup == 1 else average_weights(runs)
    after = _val_accuracy(student, val, norm)
    ingredients = _run_figures(runs, losses, seed, val, test, norm) if soup > 1 else []
    shape = (1, r, len(entry.input.channels))
    path = export_onnx(student, staging / entry.file, shape)
    sess = session(path, threads=1)
    check = norm(test.x[:256])
    diff = float(np.max(np.abs(torch_logits(student, check) - ort_logits(sess, check))))
    check_export(entry.id, path, diff)
    m = member_metrics(sess, test, norm, entry.input)
    m["ort_vs_torch_max_abs_diff"] = diff
    m["supernet_accuracy"] = entry.metrics.get("accuracy")
    m["supernet_f1_weighted"] = entry.metrics.get("f1_weighted")
    if val is not None and before is not None and after is not None:
        m["val_accuracy"] = round(after, 6)
        m["val_windows"] = len(val.y)
        m["val_subjects"] = sorted(set(val.subject.tolist()))
        m["supernet_val_accuracy"] = round(before, 6)
    feed = check[:1] if len(check) else np.zeros(shape, np.float32)
    lat = latency_ms(sess, feed, runs=latency_runs, warmup=50)
    new = dataclasses.replace(
        entry,
        sha256=sha256_file(path),
        file_bytes=path.stat().st_size,
        metrics=m,
        latency_ms=latency_block(lat),
        provenance={
            **entry.provenance,
            "distilled": {
                **distilled,
                "seconds": round(time.time() - t0, 1),
                "last_epoch_loss": round(float(sum(losses) / len(losses)), 6),
                "supernet_sha256": entry.sha256,
                **({"soup": soup, "runs": ingredients} if soup > 1 else {}),
            },
        },
    )
    row = {
        "id": entry.id,
        "val_before": before,
        "val_after": after,
        "test_before": entry.metrics.get("accuracy"),
        "test_after": m["accuracy"],
        "ort_vs_torch": diff,
        "seconds": round(time.time() - t0, 1),
        "runs": ingredients,
    }
    return new, row


def _run_figures(
    runs: list[torch.nn.Module],
    losses: list[float],
    seed: int,
    val: ResWindows | None,
    test: ResWindows,
    norm: Normalizer,
) -> list[dict[str, Any]]:
    """Each run of a soup: its seed, validation and test accuracy (PyTorch) and last loss."""
    test_x = torch.from_numpy(norm(test.x))
    return [
        {
            "seed": seed + k,
            "val_accuracy": _val_accuracy(run, val, norm),
            "test_accuracy": torch_accuracy(run, test_x, test.y),
            "last_epoch_loss": round(loss, 6),
        }
        for k, (run, loss) in enumerate(zip(runs, losses, strict=True))
    ]


def _val_accuracy(model: torch.nn.Module, val: ResWindows | None, norm: Normalizer) -> float | None:
    return None if val is None else torch_accuracy(model, torch.from_numpy(norm(val.x)), val.y)
