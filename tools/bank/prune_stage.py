"""The pruning stage of ``tools.bank.compress``: parent -> sensitivity -> pruned members.

For every criterion the parent is pruned iteratively to each MACs target in turn (a chain:
100 % -> 50 % -> 25 %, each target continuing from the previous one), with fine-tuning; per
target the criterion with the higher validation accuracy is shipped. Each shipped member is
exported to ONNX, checked against PyTorch, evaluated on the test subjects and timed in the same
interleaved run as its parent.

Both bank architectures are handled (:mod:`tools.bank.plain_arch`, chosen from the parent's
manifest entry): a ``wc-`` parent is pruned as a :class:`~tools.bank.plain_arch.PrunableColumnCNN`
and exported back in the members' layout; its pruned members' provenance says ``arch``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.manifest import ModelEntry
from tools.bank.augment import supernet_rotation
from tools.bank.evaluate import derived_entry, latency_block, member_metrics
from tools.bank.finetune import FinetuneConfig, torch_accuracy
from tools.bank.importance import CRITERIA
from tools.bank.latency import interleaved_latency
from tools.bank.parent import plain_from_onnx
from tools.bank.plain_arch import (
    CONV1D,
    arch_of,
    input_shape,
    like,
    model_config,
    to_plain,
    working_model,
)
from tools.bank.prune import PruneConfig, channels_of, plan_channels, prune_iteratively, sensitivity
from tools.bank.staging import check_member_files
from tools.bank.train import norm_tensors
from tools.bank.windows import aligned_windows, eval_windows
from tools.export import check_export, export_onnx, ort_logits, session
from tools.hapt import Experiment
from tools.models import count_macs_params

PRUNED = "pruned"
SMOKE_CONFIG = PruneConfig(
    sensitivity_ratios=(0.5,),
    steps=1,
    channel_multiple=4,
    importance_batches=2,
    importance_batch=16,
    finetune=FinetuneConfig(epochs_per_step=1, final_epochs=0, max_steps=3),
)


@dataclass(frozen=True)
class StageData:
    fit: list[Experiment]
    val: list[Experiment]
    test: list[Experiment]


def pruned_id(parent_id: str, target: float) -> str:
    return f"pr{round(100 * target):02d}-{parent_id}"


def _macs_fn(length: int, model: torch.nn.Module) -> Callable[[tuple[int, ...]], int]:
    """MACs of a plain network of ``model``'s architecture with the given channels (kernels,
    pools and strides of the supernet)."""

    def macs_of(chans: tuple[int, ...]) -> int:
        return count_macs_params(like(model, chans), input_shape(model, length))[0]

    return macs_of


def run_pruning(
    parent: ModelEntry,
    out: Path,
    data: StageData,
    provenance: dict[str, Any],
    seed: int,
    smoke: bool = False,
    finetune_max_steps: int | None = None,
) -> tuple[list[ModelEntry], dict[str, Any]]:
    """Prune ``parent`` to every target; returns the shipped entries and a report block.
    ``finetune_max_steps`` caps each fine-tuning call (quick trials only)."""
    cfg = SMOKE_CONFIG if smoke else PruneConfig()
    if finetune_max_steps is not None:
        cfg = replace(cfg, finetune=replace(cfg.finetune, max_steps=finetune_max_steps))
    check_member_files(out, [parent])  # its sha256 is recorded as the members' parent_sha256
    rot = supernet_rotation(parent)  # the fine-tunes augment as the parent's training did
    cfg = replace(cfg, finetune=replace(cfg.finetune, rotate_deg=rot))
    r = parent.resolution
    norm = parent.normalization
    turn = norm_tensors(norm) if rot else None
    arch, mcfg = arch_of(parent), model_config(parent)
    model0 = working_model(plain_from_onnx(out / parent.file, mcfg), mcfg)
    fit = aligned_windows(data.fit, (r,), hop128=32)
    fit_x = torch.from_numpy(norm(fit.x[r]))
    fit_y = torch.from_numpy(fit.y)
    val = eval_windows(data.val, r)
    val_x = torch.from_numpy(norm(val.x))
    rng = np.random.default_rng(seed)
    batches = [
        fit_x[rng.choice(len(fit_x), size=min(cfg.importance_batch, len(fit_x)), replace=False)]
        for _ in range(cfg.importance_batches)
    ]
    sens = sensitivity(model0, val_x, val.y, batches, cfg)
    print(sensitivity_text(sens.base, sens.acc))
    shape = (1, r, len(parent.input.channels))
    parent_macs = count_macs_params(model0, shape)[0]
    macs_of = _macs_fn(r, model0)

    runs: dict[str, list[dict[str, Any]]] = {}
    models: dict[tuple[str, float], torch.nn.Module] = {}
    for crit in CRITERIA:
        gen = torch.Generator().manual_seed(seed)
        model = copy.deepcopy(model0)
        runs[crit] = []
        for target in cfg.targets:
            plan, tol = plan_channels(
                channels_of(model0),
                sens.drops(crit),
                int(target * parent_macs),
                macs_of,
                cfg.channel_multiple,
            )
            final = tuple(min(a, b) for a, b in zip(plan, channels_of(model), strict=True))
            print(f"{crit} -> {target:.0%} MACs: plan {final} (tolerated val drop {tol:.4f})")
            steps = prune_iteratively(
                model,
                model0,
                final,
                crit,
                fit_x,
                fit_y,
                val_x,
                val.y,
                batches,
                cfg,
                gen,
                label=f"{crit} {target:.0%}",
                norm=turn,
            )
            models[(crit, target)] = copy.deepcopy(model)
            runs[crit].append(
                {
                    "target": target,
                    "plan": list(final),
                    "tolerated_val_drop": tol,
                    "steps": [asdict(s) for s in steps],
                    "val_accuracy": steps[-1].val_accuracy,
                }
            )

    entries: list[ModelEntry] = []
    shipped: list[dict[str, Any]] = []
    test = eval_windows(data.test, r)
    parent_sess = session(out / parent.file)
    for i, target in enumerate(cfg.targets):
        crit = max(CRITERIA, key=lambda c: (runs[c][i]["val_accuracy"], -list(CRITERIA).index(c)))
        model = models[(crit, target)]
        mid = pruned_id(parent.id, target)
        exported = to_plain(model).eval()  # the members' layout (a no-op for conv1d)
        path = export_onnx(exported, out / f"{mid}.onnx", shape)
        sess = session(path)
        check = norm(test.x[:256])
        with torch.no_grad():
            ref = model(torch.from_numpy(check)).numpy()
            if exported is not model:  # the conversion itself must not move the logits
                conv_diff = float(np.max(np.abs(ref - exported(torch.from_numpy(check)).numpy())))
                if conv_diff > 1e-4:
                    raise RuntimeError(f"{mid}: export conversion changed logits by {conv_diff}")
        diff = float(np.max(np.abs(ref - ort_logits(sess, check)))) if len(check) else 0.0
        check_export(mid, path, diff)
        m = member_metrics(sess, test, norm, parent.input)
        m["ort_vs_torch_max_abs_diff"] = diff
        m["val_accuracy"] = round(torch_accuracy(model, val_x, val.y), 6)
        m["val_windows"] = len(val.y)
        m["val_subjects"] = sorted(set(val.subject.tolist()))
        m["parent_val_accuracy"] = round(sens.base, 6)
        m["parent_accuracy"] = parent.metrics.get("accuracy")
        feed = norm(test.x[:1]) if len(test.x) else np.zeros(shape, np.float32)
        lat = interleaved_latency(
            {"parent": parent_sess, "pruned": sess},
            {"parent": feed, "pruned": feed},
            rounds=4 if smoke else 10,
            runs=10 if smoke else 50,
            warmup=10 if smoke else 50,
        )
        macs, params = count_macs_params(model, shape)
        chans = channels_of(model)
        width = round(float(np.mean(np.array(chans) / np.array(channels_of(model0)))), 4)
        entry = derived_entry(
            parent,
            mid,
            path,
            PRUNED,
            width=width,
            macs=macs,
            params=params,
            metrics=m,
            latency_ms=latency_block(lat["pruned"], parent_p50_same_run=lat["parent"]["p50"]),
            provenance={
                **provenance,
                "parent": parent.id,
                "parent_sha256": parent.sha256,
                "parent_macs": parent_macs,
                "target_macs_ratio": target,
                "macs_ratio": round(macs / parent_macs, 4),
                "importance": crit,
                "channels": list(chans),
                "parent_channels": list(channels_of(model0)),
                "width_note": "width = mean over conv layers of kept / parent channels",
                "prune_config": asdict(cfg),
                "library": "torch-pruning " + _tp_version(),
                **({} if arch == CONV1D else {"arch": arch, "model_config": asdict(mcfg)}),
            },
        )
        entries.append(entry)
        shipped.append({"id": mid, "criterion": crit, "macs": macs, "diff": diff})
        print(
            f"{mid}: {crit}, channels {chans}, MACs {macs:,} ({macs / parent_macs:.1%}), "
            f"test acc {m['accuracy']:.4f} (parent {acc_text(parent.metrics.get('accuracy'))}), "
            f"val {m['val_accuracy']:.4f}, p50 {lat['pruned']['p50']} ms vs parent "
            f"{lat['parent']['p50']} ms, ORT-torch {diff:.2g}"
        )
    report = {
        "parent": parent.id,
        **({} if arch == CONV1D else {"arch": arch}),
        "parent_macs": parent_macs,
        "sensitivity": {
            "val_base": sens.base,
            "ratios": list(cfg.sensitivity_ratios),
            "acc": {c: {str(k): v for k, v in by.items()} for c, by in sens.acc.items()},
        },
        "runs": runs,
        "shipped": shipped,
    }
    return entries, report


def sensitivity_text(base: float, acc: dict[str, dict[int, dict[float, float]]]) -> str:
    """The sensitivity scan as lines to read: per criterion, each conv's validation accuracy
    with that conv alone pruned at each ratio."""
    lines = [f"sensitivity (val acc with one conv pruned alone; unpruned {base:.4f}):"]
    for crit, layers in acc.items():
        cells = "; ".join(
            f"conv {layer}: " + ", ".join(f"{ratio:.0%} off {a:.4f}" for ratio, a in by.items())
            for layer, by in layers.items()
        )
        lines.append(f"  {crit}: {cells}")
    return "\n".join(lines)


def acc_text(value: object) -> str:
    """An accuracy from a manifest entry, to 4 decimals (``?`` when it has none)."""
    return f"{value:.4f}" if isinstance(value, int | float) else "?"


def _tp_version() -> str:
    from importlib.metadata import version

    return version("torch-pruning")
