"""A slimmable per-column 2-D CNN supernet (the seed paper's layout), BN recalibration and
extraction of one width into a plain module with BatchNorm folded.

The window [N, T, 6] is seen as an image [N, 1, T, 6] (time x sensor axis). Every convolution
has a (k, 1) kernel: it spans time only, so each of the 6 sensor columns gets its own feature
maps computed with shared weights, and the columns stay apart until the classifier. After the
last block each column is averaged over time (any length runs), the 6 columns' channel vectors
are concatenated and a linear layer maps them to the classes.

Width switching slices ``weight[:out, :in]`` as :mod:`tools.bank.supernet` does; the
classifier's weight is laid out [classes, column, channel] so that a width keeps the first ``c``
channels of every column. The functions mirror that module's (same names and signatures), so
:mod:`tools.bank.members` treats both alike (:mod:`tools.bank.arch`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ColumnConfig:
    """Conv blocks (Conv2d (k, 1) stride (s, 1) + BN + ReLU) at width 1.0, per-column GAP over
    time, dropout, linear over the concatenated columns."""

    arch: str = "column2d"
    in_columns: int = 6
    n_classes: int = 6
    channels: tuple[int, ...] = (64, 128, 256)
    kernels: tuple[int, ...] = (6, 6, 6)
    strides: tuple[int, ...] = (3, 3, 3)
    paddings: tuple[int, ...] = (2, 2, 2)  # R = 32 still leaves one step after block 3
    dropout: float = 0.3
    min_width: float = 0.1
    version: int = 1


def channels_at(cfg: ColumnConfig, width: float) -> tuple[int, ...]:
    """Channels of every block at ``width`` (at least 4 each)."""
    if not 0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    return tuple(max(4, int(round(c * width))) for c in cfg.channels)


def _blocks(cfg: ColumnConfig) -> Iterator[tuple[int, int, int, int]]:
    yield from zip(cfg.channels, cfg.kernels, cfg.strides, cfg.paddings, strict=True)


class SlimColumnCNN(nn.Module):
    """Input [N, T, 6] (NTC); ``forward(x, width)`` runs the sub-network of that width."""

    def __init__(self, cfg: ColumnConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        c_in = 1
        for c, k, s, p in _blocks(cfg):
            self.convs.append(nn.Conv2d(c_in, c, (k, 1), (s, 1), (p, 0), bias=False))
            self.bns.append(nn.BatchNorm2d(c))
            c_in = c
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.in_columns * c_in, cfg.n_classes)

    def classifier_weight(self, c: int) -> torch.Tensor:
        """The classifier's weight for ``c`` channels per column, [classes, columns * c]."""
        n, cols = self.cfg.n_classes, self.cfg.in_columns
        w = self.classifier.weight.view(n, cols, -1)[:, :, :c]
        return w.reshape(n, cols * c)

    def forward(self, x: torch.Tensor, width: float = 1.0) -> torch.Tensor:
        chans = channels_at(self.cfg, width)
        h = x.unsqueeze(1)  # [N, 1, T, columns]
        for conv, bn, c in zip(self.convs, self.bns, chans, strict=True):
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            assert bn.running_mean is not None and bn.running_var is not None
            h = F.conv2d(h, conv.weight[:c, : h.shape[1]], None, conv.stride, conv.padding)
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
        h = h.mean(dim=2).transpose(1, 2).flatten(1)  # [N, columns * c], column-major
        w = self.classifier_weight(chans[-1])
        return F.linear(self.dropout(h), w, self.classifier.bias)  # type: ignore[no-any-return]


def _bns(model: SlimColumnCNN) -> Iterator[nn.BatchNorm2d]:
    for bn in model.bns:
        assert isinstance(bn, nn.BatchNorm2d)
        yield bn


@torch.no_grad()
def recalibrate_bn(
    model: SlimColumnCNN, width: float, batches: list[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """BN running statistics of ``width``, the plain average over ``batches`` (normalised
    windows of one resolution), sliced, per block; the model's own buffers are restored."""
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


class PlainColumnCNN(nn.Module):
    """One configuration as an ordinary network. Input [N, T, 6]; inside the graph it becomes
    [N, 1, T, 6], goes through Conv2d (k, 1) (BN folded, with bias) + ReLU, is averaged over
    time per column and the [columns x channels] features go to the linear layer."""

    def __init__(self, chans: tuple[int, ...], cfg: ColumnConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c, (_, k, s, p) in zip(chans, _blocks(cfg), strict=True):
            layers += [nn.Conv2d(c_in, c, (k, 1), (s, 1), (p, 0), bias=True), nn.ReLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cfg.in_columns * c_in, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.unsqueeze(1)).mean(dim=2).transpose(1, 2).flatten(1)
        return self.classifier(h)  # type: ignore[no-any-return]


@torch.no_grad()
def extract(
    model: SlimColumnCNN, width: float, bn_stats: list[tuple[torch.Tensor, torch.Tensor]]
) -> PlainColumnCNN:
    """Copy the sliced weights of ``width`` into a :class:`PlainColumnCNN`, folding BN (with the
    configuration's recalibrated statistics) into each convolution."""
    cfg = model.cfg
    chans = channels_at(cfg, width)
    plain = PlainColumnCNN(chans, cfg)
    convs = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    c_in = 1
    for conv, src, bn, (mean, var), c in zip(
        convs, model.convs, _bns(model), bn_stats, chans, strict=True
    ):
        assert isinstance(src, nn.Conv2d)
        scale = bn.weight[:c] / torch.sqrt(var + bn.eps)
        conv.weight.copy_(src.weight[:c, :c_in] * scale[:, None, None, None])
        assert conv.bias is not None
        conv.bias.copy_(bn.bias[:c] - mean * scale)
        c_in = c
    plain.classifier.weight.copy_(model.classifier_weight(c_in))
    plain.classifier.bias.copy_(model.classifier.bias)
    return plain.eval()


def calibrated_reference(
    model: SlimColumnCNN, width: float, bn_stats: list[tuple[torch.Tensor, torch.Tensor]]
) -> SlimColumnCNN:
    """A copy of the supernet whose BN buffers hold ``bn_stats`` (for checking :func:`extract`)."""
    ref = copy.deepcopy(model).eval()
    for bn, (m, v) in zip(_bns(ref), bn_stats, strict=True):
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean[: len(m)] = m
        bn.running_var[: len(v)] = v
    return ref
