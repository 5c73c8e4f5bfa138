"""A slimmable 1-D CNN supernet, per-configuration BatchNorm recalibration, and extraction of
one (width) configuration into a plain module with BatchNorm folded into the convolutions.

Width switching slices weights ``[:out, :in]`` (JiahuiYu/slimmable_networks); every width and
resolution needs its own BatchNorm statistics, recomputed after training by
:func:`recalibrate_bn` over a few batches of training windows. Global average pooling over time
lets one set of weights run at any input length and keeps the ONNX graphs plain.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SlimConfig:
    """Conv blocks (Conv1d + BN + ReLU, optional max-pool) at width 1.0, GAP, dropout, linear."""

    in_channels: int = 6
    n_classes: int = 6
    channels: tuple[int, ...] = (64, 128, 256)
    kernels: tuple[int, ...] = (5, 5, 5)
    pools: tuple[bool, ...] = (True, True, False)
    dropout: float = 0.3
    min_width: float = 0.125
    version: int = 1


def channels_at(cfg: SlimConfig, width: float) -> tuple[int, ...]:
    """Channels of every block at ``width`` (at least 4 each)."""
    if not 0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    return tuple(max(4, int(round(c * width))) for c in cfg.channels)


class SlimCNN(nn.Module):
    """Input [N, T, C] (NTC); ``forward(x, width)`` runs the sub-network of that width."""

    def __init__(self, cfg: SlimConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        c_in = cfg.in_channels
        for c, k in zip(cfg.channels, cfg.kernels, strict=True):
            self.convs.append(nn.Conv1d(c_in, c, k, padding=k // 2, bias=False))
            self.bns.append(nn.BatchNorm1d(c))
            c_in = c
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(c_in, cfg.n_classes)

    def forward(self, x: torch.Tensor, width: float = 1.0) -> torch.Tensor:
        chans = channels_at(self.cfg, width)
        h = x.transpose(1, 2)
        for conv, bn, c, pool in zip(self.convs, self.bns, chans, self.cfg.pools, strict=True):
            assert isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)
            assert bn.running_mean is not None and bn.running_var is not None
            h = F.conv1d(h, conv.weight[:c, : h.shape[1]], None, padding=conv.padding)
            h = F.batch_norm(
                h,
                bn.running_mean[:c],
                bn.running_var[:c],
                bn.weight[:c],
                bn.bias[:c],
                self.training,
                0.1 if bn.momentum is None else bn.momentum,
                bn.eps,
            )
            h = F.relu(h)
            if pool:
                h = F.max_pool1d(h, 2)
        h = h.mean(dim=2)
        w = self.classifier.weight[:, : h.shape[1]]
        return F.linear(self.dropout(h), w, self.classifier.bias)  # type: ignore[no-any-return]


def _bns(model: SlimCNN) -> Iterator[nn.BatchNorm1d]:
    for bn in model.bns:
        assert isinstance(bn, nn.BatchNorm1d)
        yield bn


@torch.no_grad()
def recalibrate_bn(
    model: SlimCNN, width: float, batches: list[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Recompute the BN running statistics of ``width`` as the plain average over ``batches``
    (normalised windows of one resolution) and return them, sliced, per block. The model's own
    buffers are restored afterwards."""
    saved = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in _bns(model)]  # type: ignore[union-attr]
    chans = channels_at(model.cfg, width)
    sums = [(torch.zeros(c), torch.zeros(c)) for c in chans]
    was_training = model.training
    model.train()
    try:
        for xb in batches:
            for bn in _bns(model):
                bn.reset_running_stats()
                bn.momentum = 1.0  # running stats = this batch's statistics
            model(xb, width)
            for i, (bn, c) in enumerate(zip(_bns(model), chans, strict=True)):
                assert bn.running_mean is not None and bn.running_var is not None
                sums[i][0].add_(bn.running_mean[:c])
                sums[i][1].add_(bn.running_var[:c])
    finally:
        for bn, (m, v) in zip(_bns(model), saved, strict=True):
            bn.momentum = 0.1
            bn.running_mean.copy_(m)  # type: ignore[union-attr]
            bn.running_var.copy_(v)  # type: ignore[union-attr]
        model.train(was_training)
    n = max(len(batches), 1)
    return [(m / n, v / n) for m, v in sums]


class PlainCNN(nn.Module):
    """One configuration as an ordinary network: Conv1d (BN folded, with bias) + ReLU (+ pool),
    global average pooling, linear. Input [N, T, C]."""

    def __init__(self, chans: tuple[int, ...], cfg: SlimConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for c, k, pool in zip(chans, cfg.kernels, cfg.pools, strict=True):
            layers += [nn.Conv1d(c_in, c, k, padding=k // 2, bias=True), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool1d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.transpose(1, 2)).mean(dim=2)
        return self.classifier(h)  # type: ignore[no-any-return]


@torch.no_grad()
def extract(
    model: SlimCNN, width: float, bn_stats: list[tuple[torch.Tensor, torch.Tensor]]
) -> PlainCNN:
    """Copy the sliced weights of ``width`` into a :class:`PlainCNN`, folding BN (with the
    configuration's recalibrated statistics) into each convolution."""
    cfg = model.cfg
    chans = channels_at(cfg, width)
    plain = PlainCNN(chans, cfg)
    convs = [m for m in plain.features if isinstance(m, nn.Conv1d)]
    c_in = cfg.in_channels
    for conv, src, bn, (mean, var), c in zip(
        convs, model.convs, _bns(model), bn_stats, chans, strict=True
    ):
        assert isinstance(src, nn.Conv1d)
        scale = bn.weight[:c] / torch.sqrt(var + bn.eps)
        conv.weight.copy_(src.weight[:c, :c_in] * scale[:, None, None])
        assert conv.bias is not None
        conv.bias.copy_(bn.bias[:c] - mean * scale)
        c_in = c
    plain.classifier.weight.copy_(model.classifier.weight[:, :c_in])
    plain.classifier.bias.copy_(model.classifier.bias)
    return plain.eval()


def calibrated_reference(
    model: SlimCNN, width: float, bn_stats: list[tuple[torch.Tensor, torch.Tensor]]
) -> SlimCNN:
    """A copy of the supernet whose BN buffers hold ``bn_stats`` (for checking :func:`extract`)."""
    ref = copy.deepcopy(model).eval()
    for bn, (m, v) in zip(_bns(ref), bn_stats, strict=True):
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean[: len(m)] = m
        bn.running_var[: len(v)] = v
    return ref


WIDTH_SAMPLING = ("uniform", "log")


def sample_widths(
    rng: np.random.Generator, cfg: SlimConfig, n: int, how: str = "uniform"
) -> list[float]:
    """``n`` random widths in [min_width, 1]: uniform, or log-uniform (``"log"``: as many draws
    in [0.1, 0.316] as in [0.316, 1] at min_width 0.1, so narrow slices get more passes). Both
    take the same draws from ``rng``."""
    if how == "log":
        lo = float(np.log(cfg.min_width))
        return [float(np.exp(u)) for u in rng.uniform(lo, 0.0, size=n)]
    if how != "uniform":
        raise ValueError(f"unknown width sampling {how!r} (one of {WIDTH_SAMPLING})")
    return [float(w) for w in rng.uniform(cfg.min_width, 1.0, size=n)]
