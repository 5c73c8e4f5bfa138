"""Channel importance criteria for structured pruning (seed paper 004, Balemans et al.).

Each criterion scores the output channels of one convolution of a plain member (a 1-D
:class:`PlainCNN`, or the per-column 2-D network in its prunable form,
:class:`tools.bank.plain_arch.PrunableColumnCNN`); the lowest-scoring channels are the ones
removed. Two criteria, kept in a registry so the compress
command and the sensitivity analysis treat them alike:

- ``l1``: the L1 norm of each filter (Li et al.), computed by torch-pruning's
  ``GroupMagnitudeImportance(p=1, group_reduction="first")`` on the dependency group of the
  channel, i.e. the filter of the pruned convolution itself (the BN scale is already folded in);
- ``activation``: the mean |activation| of the channel after its ReLU, averaged over real
  (normalised) training windows. It sees the data, so a filter with large weights that rarely
  fires on human motion scores low (for a Conv2d, over every time step of every sensor column).
  torch-pruning's own ``ActivationImportance`` handles only Conv2d and keeps the last batch,
  hence this small hook-based version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from tools.bank.plain_arch import input_shape

Criterion = Callable[[nn.Module, int, Sequence[torch.Tensor]], torch.Tensor]


def convs(model: nn.Module) -> list[nn.Conv1d | nn.Conv2d]:
    """The prunable convolutions (Conv1d or Conv2d), in order."""
    return [m for m in model.features if isinstance(m, nn.Conv1d | nn.Conv2d)]


def dependency_graph(model: nn.Module, length: int) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of ``model`` traced on a [1, length, C] input."""
    with torch.enable_grad():  # torch-pruning traces the graph through autograd
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(*input_shape(model, length))
        )


def l1_scores(model: nn.Module, layer: int, batches: Sequence[torch.Tensor]) -> torch.Tensor:
    """Filter L1 norms of conv ``layer`` (via torch-pruning's group magnitude importance)."""
    conv = convs(model)[layer]
    length = int(batches[0].shape[1]) if batches else 128
    dg = dependency_graph(model, length)
    idxs = list(range(conv.out_channels))
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs)
    imp = tp.importance.GroupMagnitudeImportance(p=1, group_reduction="first", normalizer=None)
    with torch.no_grad():
        scores = imp(group)
    if scores is None:
        raise RuntimeError(f"torch-pruning gave no importance for conv {layer}")
    return scores.detach().float()


@torch.no_grad()
def activation_scores(
    model: nn.Module, layer: int, batches: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Mean |ReLU(conv ``layer``)| per channel over every window and time step (and sensor
    column, for a Conv2d) of ``batches``."""
    if not batches:
        raise ValueError("activation importance needs at least one batch of windows")
    conv = convs(model)[layer]
    total = torch.zeros(conv.out_channels)
    count = 0

    def hook(_m: nn.Module, _i: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal count
        dims = (0, 2) if out.dim() == 3 else (0, 2, 3)
        total.add_(F.relu(out).abs().sum(dim=dims))
        count += out.numel() // out.shape[1]

    handle = conv.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for xb in batches:
            model(xb)
    finally:
        handle.remove()
        model.train(was_training)
    return total / max(count, 1)


CRITERIA: dict[str, Criterion] = {"l1": l1_scores, "activation": activation_scores}
