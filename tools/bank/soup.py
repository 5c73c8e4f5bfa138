"""A uniform weight soup (Wortsman et al., 2022): the element-wise mean of the weights of several
networks of one architecture that were fine-tuned from the same start.

:mod:`tools.bank.distill` trains each member several times from its supernet slice, with
different seeds (the order of the windows, their gains, dropout), and keeps the mean of the
runs' weights: one network, the same size and speed as each run, with less of one run's luck in
it. Averaging only makes sense for runs that start from the same weights (they stay in one
basin); runs from different starts are not averaged here. The members are plain networks with
BatchNorm folded (:mod:`tools.bank.parent`), so there are no running statistics to recompute.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def average_weights(models: Sequence[nn.Module]) -> nn.Module:
    """A new module, a copy of ``models[0]``, holding the element-wise mean of every
    floating-point tensor of their state dicts (others, if any, from ``models[0]``). Raises
    ``ValueError`` for no models or models whose state dicts differ in keys or shapes."""
    if not models:
        raise ValueError("no models to average")
    states = [m.state_dict() for m in models]
    first = states[0]
    for i, state in enumerate(states[1:], 2):
        if state.keys() != first.keys():
            raise ValueError(f"model {i} has other weights than model 1")
        for k, v in state.items():
            if v.shape != first[k].shape:
                raise ValueError(
                    f"model {i}: {k} is {tuple(v.shape)}, model 1 has {tuple(first[k].shape)}"
                )
    mean = {
        k: (torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v.clone())
        for k, v in first.items()
    }
    out = copy.deepcopy(models[0])
    out.load_state_dict(mean)
    return out.eval()
