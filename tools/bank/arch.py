"""The supernet architectures a bank can be built from, and their per-architecture functions.

- ``conv1d`` (default, the committed bank): :mod:`tools.bank.supernet`, the 6 IMU axes as input
  channels of a Conv1d over time; member ids ``wr-wW.WW-rRRR``.
- ``column2d`` (trial): :mod:`tools.bank.supernet2d`, the window as a [T x 6] image with (k, 1)
  kernels, each sensor column kept apart until the classifier; member ids ``wc-wW.WW-rRRR``.

Both export the same external contract (input ``imu`` [1, R, 6] NTC normalised, output
``logits`` [1, 6]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tools.bank import supernet, supernet2d

ARCHS = ("conv1d", "column2d")
Stats = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ArchOps:
    name: str
    id_prefix: str
    make: Callable[[], nn.Module]
    channels_at: Callable[[Any, float], tuple[int, ...]]
    recalibrate_bn: Callable[[Any, float, list[torch.Tensor]], Stats]
    extract: Callable[[Any, float, Stats], nn.Module]
    calibrated_reference: Callable[[Any, float, Stats], nn.Module]


OPS = {
    "conv1d": ArchOps(
        "conv1d",
        "wr",
        lambda: supernet.SlimCNN(supernet.SlimConfig()),
        supernet.channels_at,
        supernet.recalibrate_bn,
        supernet.extract,
        supernet.calibrated_reference,
    ),
    "column2d": ArchOps(
        "column2d",
        "wc",
        lambda: supernet2d.SlimColumnCNN(supernet2d.ColumnConfig()),
        supernet2d.channels_at,
        supernet2d.recalibrate_bn,
        supernet2d.extract,
        supernet2d.calibrated_reference,
    ),
}


def ops_for(model: nn.Module) -> ArchOps:
    """The functions of ``model``'s architecture."""
    if isinstance(model, supernet2d.SlimColumnCNN):
        return OPS["column2d"]
    if isinstance(model, supernet.SlimCNN):
        return OPS["conv1d"]
    raise TypeError(f"not a bank supernet: {type(model).__name__}")
