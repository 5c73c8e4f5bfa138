"""The int8 stage of ``tools.bank.compress``: quantize every fp32 member, keep those that pay.

For each candidate: calibration windows from the fit subjects at the member's resolution,
static QDQ int8 quantization, validation accuracy of fp32 and int8 (the keep decision), test
metrics of the int8 graph (reported), and p50 latency of fp32 and int8 timed in one interleaved
run. Every trial is reported; only kept variants enter the manifest (their files stay in OUT).

The accuracy half of the keep rule reads this bank's validation subjects, unless ``decide_on``
gives held-out figures: the trials of a selection bank (the same recipe trained without the
validation subjects, whose compress report this reads), matched by id. A refit bank trained on
its validation subjects, so its own validation drop says little about new subjects.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agent.manifest import InputSpec, ModelEntry
from agent.windowing import Normalizer
from tools import metrics
from tools.bank.evaluate import derived_entry, latency_block, member_metrics, model_input, predict
from tools.bank.latency import interleaved_latency
from tools.bank.prune_stage import acc_text
from tools.bank.quantize import (
    QuantConfig,
    calibration_inputs,
    keep_int8,
    quantization_text,
    quantize_member,
)
from tools.bank.staging import check_member_files
from tools.bank.windows import ResWindows, eval_windows
from tools.cli import CommandError
from tools.export import session
from tools.hapt import Experiment

INT8 = "int8"


def int8_id(parent_id: str) -> str:
    return f"q8-{parent_id}"


def held_out_decisions(report: Path) -> dict[str, tuple[float, float]]:
    """``{int8 id: (fp32 val accuracy, int8 val accuracy)}`` from a selection bank's
    ``compress-report.json``; a file that is no such report is a :class:`CommandError`."""
    try:
        rows = json.loads(report.read_text(encoding="utf-8"))["int8"]
        found = {
            r["id"]: (float(r["fp32_val_accuracy"]), float(r["int8_val_accuracy"])) for r in rows
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = (
            exc.strerror if isinstance(exc, OSError) else f"no int8 trials with validation ({exc})"
        )
        raise CommandError(f"{report}: not a compress report to decide int8 on: {why}") from None
    if not found:
        raise CommandError(f"{report}: has no int8 trials to decide on")
    return found


def _val_figures(
    fp_sess: Any, q_sess: Any, val: ResWindows, norm: Normalizer, spec: InputSpec
) -> tuple[float, float, float]:
    """fp32 and int8 validation accuracy, and the share of validation windows whose class the
    int8 graph changes (its fidelity to the parent: flips both ways cancel in an accuracy)."""
    x = model_input(norm(val.x), spec)
    fp, q = predict(fp_sess, x), predict(q_sess, x)
    flips = float(np.mean(fp != q)) if len(val.y) else 0.0
    fp_acc, q_acc = metrics.accuracy(val.y, fp), metrics.accuracy(val.y, q)
    return round(fp_acc, 6), round(q_acc, 6), round(flips, 6)


def run_quantization(
    candidates: list[ModelEntry],
    out: Path,
    data: Any,
    provenance: dict[str, Any],
    seed: int,
    smoke: bool = False,
    decide_on: Path | None = None,
) -> tuple[list[ModelEntry], list[dict[str, Any]]]:
    """Quantize every candidate; returns the kept int8 entries and one report row per trial.
    With ``decide_on`` (a selection bank's compress report) a variant is kept only if that
    bank's trial of the same id lost at most the limit on its held-out validation subjects."""
    held_out = held_out_decisions(decide_on) if decide_on is not None else None
    cfg = QuantConfig(seed=seed, calib_windows=32 if smoke else QuantConfig.calib_windows)
    cache: dict[tuple[str, int], ResWindows] = {}

    def windows(split: str, exps: list[Experiment], r: int) -> ResWindows:
        if (split, r) not in cache:
            cache[(split, r)] = eval_windows(exps, r)
        return cache[(split, r)]

    kept: list[ModelEntry] = []
    rows: list[dict[str, Any]] = []
    for parent in tqdm(candidates, desc="int8", unit="model"):
        check_member_files(out, [parent])  # its sha256 is recorded as parent_sha256
        r, spec, norm = parent.resolution, parent.input, parent.normalization
        fit_x = windows("fit", data.fit, r).x
        calib = calibration_inputs(fit_x, norm, spec, cfg.calib_windows, seed)
        mid = int8_id(parent.id)
        path = quantize_member(out / parent.file, out / f"{mid}.onnx", calib, spec, cfg)
        fp_sess, q_sess = session(out / parent.file), session(path)
        val = windows("val", data.val, r)
        test = windows("test", data.test, r)
        fp_val, q_val, flips = _val_figures(fp_sess, q_sess, val, norm, spec)
        m = member_metrics(q_sess, test, norm, spec)
        m.update(
            val_accuracy=q_val,
            parent_val_accuracy=fp_val,
            val_windows=len(val.y),
            parent_accuracy=parent.metrics.get("accuracy"),
        )
        feed = norm(test.x[:1]) if len(test.x) else np.zeros(spec.shape, np.float32)
        lat = interleaved_latency(
            {"fp32": fp_sess, "int8": q_sess},
            {"fp32": feed, "int8": feed},
            rounds=4 if smoke else 10,
            runs=10 if smoke else 50,
            warmup=10 if smoke else 50,
        )
        if held_out is None:
            keep, why = keep_int8(fp_val, q_val, lat["fp32"]["p50"], lat["int8"]["p50"], cfg)
        elif mid not in held_out:
            keep, why = False, f"no trial of {mid} in {decide_on} to decide on"
        else:
            keep, why = keep_int8(*held_out[mid], lat["fp32"]["p50"], lat["int8"]["p50"], cfg)
            why = f"{why} on the held-out validation of {decide_on}"
        row = {
            "id": mid,
            "parent": parent.id,
            "parent_family": parent.family,
            "macs": parent.macs,
            "fp32_accuracy": parent.metrics.get("accuracy"),
            "int8_accuracy": m["accuracy"],
            "int8_f1_weighted": m["f1_weighted"],
            "fp32_val_accuracy": fp_val,
            "int8_val_accuracy": q_val,
            "val_flip_rate": flips,
            "fp32_p50": lat["fp32"]["p50"],
            "int8_p50": lat["int8"]["p50"],
            "fp32_bytes": parent.file_bytes,
            "int8_bytes": path.stat().st_size,
            "kept": keep,
            "why": why,
            **(
                {}
                if held_out is None or mid not in held_out
                else {
                    "held_out_fp32_val_accuracy": held_out[mid][0],
                    "held_out_int8_val_accuracy": held_out[mid][1],
                }
            ),
        }
        rows.append(row)
        tqdm.write(
            f"{mid}: test {m['accuracy']:.4f} vs fp32 {acc_text(parent.metrics.get('accuracy'))}, "
            f"val {q_val:.4f} vs {fp_val:.4f} ({100 * flips:.2f} % flipped), "
            f"p50 {lat['int8']['p50']} vs {lat['fp32']['p50']} ms: "
            f"{'kept' if keep else 'dropped'} ({why})"
        )
        if not keep:
            path.unlink()
            continue
        kept.append(
            derived_entry(
                parent,
                mid,
                path,
                INT8,
                metrics=m,
                latency_ms=latency_block(lat["int8"], parent_p50_same_run=lat["fp32"]["p50"]),
                provenance={
                    **provenance,
                    "parent": parent.id,
                    "parent_sha256": parent.sha256,
                    "quantization": quantization_text(cfg),
                    "quant_config": asdict(cfg),
                    "calibration": f"{len(calib)} windows of the fit subjects, agent windowing "
                    "at the member's resolution, manifest normalisation, batch 1",
                    "keep_reason": why,
                },
            )
        )
    return kept, rows
