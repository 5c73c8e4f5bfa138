"""PyTorch models for HAR windows, and a MAC/parameter counter (tools only; the agent runs ONNX)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    """A compact 1-D CNN: conv blocks (Conv1d + BN + ReLU, optional max-pool), global average
    pooling, dropout, one linear classifier."""

    in_channels: int = 6
    n_classes: int = 6
    widths: tuple[int, ...] = (32, 64, 128, 128)
    kernels: tuple[int, ...] = (5, 5, 5, 3)
    pools: tuple[bool, ...] = (False, True, True, False)
    dropout: float = 0.3
    version: int = 1


class CNN1d(nn.Module):
    """Input [N, T, C] (the ``NTC`` layout of the manifest); output logits [N, classes]."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        if not len(cfg.widths) == len(cfg.kernels) == len(cfg.pools):
            raise ValueError("widths, kernels and pools must have the same length")
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for width, k, pool in zip(cfg.widths, cfg.kernels, cfg.pools, strict=True):
            layers += [
                nn.Conv1d(c_in, width, k, padding=k // 2, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            if pool:
                layers.append(nn.MaxPool1d(2))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(c_in, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.transpose(1, 2))  # NTC -> NCT
        h = h.mean(dim=2)  # global average pooling over time
        return self.classifier(self.dropout(h))  # type: ignore[no-any-return]


def count_macs_params(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """Multiply-accumulates of Conv1d/Conv2d/Linear layers for one forward pass of
    ``input_shape`` (batch included), and the number of parameters. BN, ReLU and pooling are not
    counted."""
    macs = 0

    def conv_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(mod, nn.Conv1d | nn.Conv2d)
        k = math.prod(mod.kernel_size)
        macs += out.numel() * (mod.in_channels // mod.groups) * k

    def linear_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(mod, nn.Linear)
        macs += out.numel() * mod.in_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv1d | nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return macs, params
