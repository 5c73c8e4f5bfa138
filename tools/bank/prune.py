"""Structured channel pruning of a bank member (seed papers 004 and 000).

Steps, all on a plain network (BatchNorm folded) rebuilt from the parent's ONNX file: a 1-D
:class:`PlainCNN`, or a per-column 2-D one in its prunable form
(:class:`tools.bank.plain_arch.PrunableColumnCNN`, whose classifier reads the columns' features
in the channel-major order torch-pruning's flatten rule assumes):

1. :func:`sensitivity`: each convolution pruned *alone* at several ratios, with each importance
   criterion, and the validation accuracy measured without fine-tuning. Validation windows come
   from held-out train subjects, never from the test subjects.
2. :func:`plan_channels`: per-layer channel counts for a MACs target, decided globally from the
   sensitivity curves (seed 000): the same tolerated accuracy drop for every layer, raised until
   the network fits the MACs budget, so insensitive layers give up more channels.
3. :func:`prune_iteratively`: the plan is reached in a few steps; each step removes the
   lowest-importance channels (re-scored on the current network) and fine-tunes (seed 004).

The surgery itself goes through torch-pruning's dependency graph, which shrinks the pruned
convolution's outputs together with every tensor coupled to them (the next convolution's inputs,
or the classifier's), so the result has physically smaller weight tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from tools.bank.finetune import FinetuneConfig, finetune, torch_accuracy
from tools.bank.importance import CRITERIA, convs, dependency_graph
from tools.bank.plain_arch import input_shape
from tools.models import count_macs_params


@dataclass(frozen=True)
class PruneConfig:
    targets: tuple[float, ...] = (0.5, 0.25)  # MACs of the parent kept
    sensitivity_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)  # fraction of channels removed
    criterion: str | None = None  # None: the criterion that loses less in the sensitivity run
    steps: int = 3  # iterative pruning steps towards each target
    channel_multiple: int = 8  # kept channels rounded to this (SIMD-friendly widths)
    importance_batches: int = 8  # batches of training windows for activation importance
    importance_batch: int = 64
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    version: int = 1


@dataclass(frozen=True)
class Sensitivity:
    """Validation accuracy of the unpruned model and, per criterion, layer and ratio, of the
    model with only that layer pruned at that ratio."""

    base: float
    acc: dict[str, dict[int, dict[float, float]]]

    def drops(self, criterion: str) -> dict[int, dict[float, float]]:
        return {
            layer: {r: self.base - a for r, a in by_ratio.items()}
            for layer, by_ratio in self.acc[criterion].items()
        }

    def mean_drop(self, criterion: str) -> float:
        vals = [d for by in self.drops(criterion).values() for d in by.values()]
        return float(np.mean(vals)) if vals else 0.0

    def best_criterion(self) -> str:
        """The criterion with the smaller mean accuracy drop (ties: the first in CRITERIA)."""
        return min(self.acc, key=lambda c: (round(self.mean_drop(c), 6), list(CRITERIA).index(c)))


def channels_of(model: nn.Module) -> tuple[int, ...]:
    return tuple(c.out_channels for c in convs(model))


def prune_layer(
    model: nn.Module, layer: int, keep: int, scores: torch.Tensor, length: int
) -> nn.Module:
    """Remove the ``out_channels - keep`` lowest-scoring output channels of conv ``layer`` in
    place, with everything coupled to them (torch-pruning's dependency graph)."""
    conv = convs(model)[layer]
    n_remove = conv.out_channels - keep
    if n_remove <= 0:
        return model
    if keep < 1:
        raise ValueError(f"conv {layer} must keep at least one channel")
    idxs = torch.argsort(scores, stable=True)[:n_remove].tolist()
    dg = dependency_graph(model, length)
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=sorted(idxs))
    if not dg.check_pruning_group(group):
        raise RuntimeError(f"torch-pruning refused to prune conv {layer}")
    group.prune()
    return model


def _round_keep(c: float, multiple: int) -> int:
    return max(multiple, int(round(c / multiple)) * multiple)


def sensitivity(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: np.ndarray,
    batches: Sequence[torch.Tensor],
    cfg: PruneConfig,
    criteria: Sequence[str] = tuple(CRITERIA),
) -> Sensitivity:
    """Prune each conv alone at each ratio with each criterion; validation accuracy, no
    fine-tuning."""
    length = int(val_x.shape[1])
    base = torch_accuracy(model, val_x, val_y)
    acc: dict[str, dict[int, dict[float, float]]] = {}
    for crit in criteria:
        acc[crit] = {}
        for layer, conv in enumerate(convs(model)):
            scores = CRITERIA[crit](model, layer, batches)
            acc[crit][layer] = {}
            for ratio in cfg.sensitivity_ratios:
                keep = max(1, int(round(conv.out_channels * (1 - ratio))))
                trial = prune_layer(copy.deepcopy(model), layer, keep, scores, length)
                acc[crit][layer][ratio] = torch_accuracy(trial, val_x, val_y)
    return Sensitivity(base, acc)


def plan_channels(
    chans: Sequence[int],
    drops: dict[int, dict[float, float]],
    budget: int,
    macs_of: Callable[[tuple[int, ...]], int],
    multiple: int,
    grid: int = 64,
) -> tuple[tuple[int, ...], float]:
    """Per-layer channel counts whose MACs fit ``budget``, and the tolerated drop that gave them.

    Each layer's drop curve (0 at ratio 0, made non-decreasing, linear between measured ratios,
    flat beyond the largest) gives, for a tolerance t, the largest ratio whose drop is <= t.
    t rises through every value the curves take until the MACs fit; past the measured ratios the
    remaining deficit is closed by pruning all layers uniformly further.
    """
    max_ratio = max(r for by in drops.values() for r in by)
    ratios = np.linspace(0.0, max_ratio, grid + 1)
    curves = []
    for layer in range(len(chans)):
        rs = [0.0, *sorted(drops[layer])]
        ds = np.maximum.accumulate([0.0, *[drops[layer][r] for r in rs[1:]]])
        curves.append(np.interp(ratios, rs, ds))
    tolerances = np.unique(np.concatenate([[0.0], *curves]))
    for t in tolerances:
        keep = tuple(
            _round_keep(c * (1 - ratios[np.nonzero(curve <= t + 1e-12)[0].max()]), multiple)
            for c, curve in zip(chans, curves, strict=True)
        )
        if macs_of(keep) <= budget:
            return keep, float(t)
    keep_f = [c * (1 - max_ratio) for c in chans]
    while True:  # beyond the measured ratios: shrink every layer uniformly
        keep = tuple(_round_keep(c, multiple) for c in keep_f)
        if macs_of(keep) <= budget or all(k <= multiple for k in keep):
            return keep, float(tolerances[-1])
        keep_f = [c * 0.95 for c in keep_f]


@dataclass(frozen=True)
class StepRecord:
    step: int
    channels: tuple[int, ...]
    macs: int
    val_accuracy: float
    loss: float


def prune_iteratively(
    model: nn.Module,
    teacher: nn.Module,
    final: Sequence[int],
    criterion: str,
    fit_x: torch.Tensor,
    fit_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: np.ndarray,
    batches: Sequence[torch.Tensor],
    cfg: PruneConfig,
    gen: torch.Generator,
    label: str,
    norm: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[StepRecord]:
    """Prune ``model`` in place from its channels to ``final`` in ``cfg.steps`` steps, each
    followed by fine-tuning (the last by ``final_epochs`` more). ``norm`` (mean, std): needed by
    the fine-tunes' random rotations (``cfg.finetune.rotate_deg``)."""
    length = int(fit_x.shape[1])
    start = channels_of(model)
    records = []
    for step in range(1, cfg.steps + 1):
        frac = step / cfg.steps
        for layer, (c0, c1) in enumerate(zip(start, final, strict=True)):
            keep = min(c0, _round_keep(c0 - (c0 - c1) * frac, cfg.channel_multiple))
            keep = max(keep, c1)
            if keep < channels_of(model)[layer]:
                scores = CRITERIA[criterion](model, layer, batches)
                prune_layer(model, layer, keep, scores, length)
        epochs = cfg.finetune.epochs_per_step + (cfg.finetune.final_epochs if frac == 1 else 0)
        loss = finetune(
            model,
            teacher,
            fit_x,
            fit_y,
            epochs,
            cfg.finetune,
            gen,
            desc=f"{label} step {step}",
            norm=norm,
        )
        macs, _ = count_macs_params(model, input_shape(model, length))
        rec = StepRecord(step, channels_of(model), macs, torch_accuracy(model, val_x, val_y), loss)
        print(
            f"  {label} step {step}/{cfg.steps}: channels {rec.channels}, MACs {macs:,}, "
            f"val acc {rec.val_accuracy:.4f}, loss {loss:.4f}"
        )
        records.append(rec)
    return records
