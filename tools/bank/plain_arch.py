"""The architectures of plain (BN-folded) bank members, as the compression stages see them.

A member is either a 1-D :class:`~tools.bank.supernet.PlainCNN` (ids ``wr-…``) or a per-column
2-D :class:`~tools.bank.supernet2d.PlainColumnCNN` (ids ``wc-…``). :func:`arch_of` tells which
from the manifest entry (``provenance.model_config.arch`` or ``provenance.arch``, else the id).

Pruning the 2-D network needs one detour. Its classifier sees the per-column features flattened
*column-major* (input index ``column * C + channel``: ``mean(time)`` then ``transpose`` then
``flatten``), but torch-pruning's flatten rule assumes channel-major order (``channel * 6 +
column``), so pruning the last convolution through its dependency graph would drop the wrong
classifier inputs. The compression stages therefore prune and fine-tune a
:class:`PrunableColumnCNN`, the same function with the classifier's input permuted to
channel-major (no transpose in its graph), and convert back with :func:`to_plain` before export,
so a pruned file has the members' layout and :func:`tools.bank.parent.plain_from_onnx` reads it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from agent.manifest import ModelEntry
from tools.bank.supernet import PlainCNN, SlimConfig
from tools.bank.supernet2d import ColumnConfig, PlainColumnCNN

CONV1D = "conv1d"
COLUMN2D = "column2d"
N_INPUTS = 6  # IMU axes: the members' input is [1, R, 6]


def arch_of(entry: ModelEntry) -> str:
    """``conv1d`` or ``column2d``: from the entry's provenance, else its id (``wc-`` members and
    anything derived from one, e.g. ``pr50-wc-…``, ``q8-wc-…``)."""
    prov = entry.provenance or {}
    arch = (prov.get("model_config") or {}).get("arch") or prov.get("arch")
    if arch:
        return str(arch)
    return COLUMN2D if entry.id.startswith("wc-") or "-wc-" in entry.id else CONV1D


def model_config(entry: ModelEntry) -> SlimConfig | ColumnConfig:
    """The supernet configuration of ``entry`` (its provenance's, else the default)."""
    raw: dict[str, Any] = dict((entry.provenance or {}).get("model_config") or {})
    cls = ColumnConfig if arch_of(entry) == COLUMN2D else SlimConfig
    names = {f.name for f in dataclasses.fields(cls)}
    if not raw or set(raw) - names:  # none recorded, or another network's (e.g. the baseline's)
        return cls()
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class PrunableColumnCNN(nn.Module):
    """A :class:`PlainColumnCNN` whose classifier reads the features channel-major
    (``flatten([N, C, columns])``), the order torch-pruning's dependency graph assumes. Same
    submodule names and convolution weights; only ``classifier.weight`` is permuted."""

    def __init__(self, chans: tuple[int, ...], cfg: ColumnConfig) -> None:
        super().__init__()
        self.cfg = cfg
        plain = PlainColumnCNN(chans, cfg)
        self.features = plain.features
        self.classifier = plain.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.unsqueeze(1)).mean(dim=2).flatten(1)  # [N, C * columns]
        return self.classifier(h)  # type: ignore[no-any-return]


def _channels(model: nn.Module) -> tuple[int, ...]:
    return tuple(m.out_channels for m in model.features if isinstance(m, nn.Conv2d))


@torch.no_grad()
def to_prunable(plain: PlainColumnCNN, cfg: ColumnConfig | None = None) -> PrunableColumnCNN:
    """The same network with a channel-major classifier (for torch-pruning)."""
    cfg = cfg or ColumnConfig()
    out = PrunableColumnCNN(_channels(plain), cfg)
    out.features.load_state_dict(plain.features.state_dict())
    w = plain.classifier.weight  # [classes, columns * C], column-major
    n, c = w.shape[0], _channels(plain)[-1]
    out.classifier.weight.copy_(w.view(n, -1, c).transpose(1, 2).reshape(n, -1))
    out.classifier.bias.copy_(plain.classifier.bias)
    return out.train(plain.training)


@torch.no_grad()
def to_plain(model: nn.Module) -> nn.Module:
    """The export form of a working model: a :class:`PrunableColumnCNN` back to a
    :class:`PlainColumnCNN` (column-major classifier); anything else is returned as it is."""
    if not isinstance(model, PrunableColumnCNN):
        return model
    chans = _channels(model)
    plain = PlainColumnCNN(chans, model.cfg)
    plain.features.load_state_dict(model.features.state_dict())
    w = model.classifier.weight  # [classes, C * columns], channel-major
    n, c = w.shape[0], chans[-1]
    plain.classifier.weight.copy_(w.view(n, c, -1).transpose(1, 2).reshape(n, -1))
    plain.classifier.bias.copy_(model.classifier.bias)
    return plain.train(model.training)


def working_model(plain: nn.Module, cfg: SlimConfig | ColumnConfig | None = None) -> nn.Module:
    """The module the pruning stage works on: a PlainCNN as it is, a column net made prunable."""
    if isinstance(plain, PlainColumnCNN):
        return to_prunable(plain, cfg if isinstance(cfg, ColumnConfig) else None)
    return plain


def input_shape(model: nn.Module, length: int) -> tuple[int, int, int]:
    """The [1, length, C] input of a plain / prunable member."""
    if isinstance(model, PlainCNN):
        first = next(m for m in model.features if isinstance(m, nn.Conv1d))
        return (1, length, first.in_channels)
    return (1, length, N_INPUTS)


def like(model: nn.Module, chans: tuple[int, ...]) -> nn.Module:
    """An untrained plain network of ``model``'s architecture with other channel counts (for
    counting MACs of a plan)."""
    if isinstance(model, PrunableColumnCNN | PlainColumnCNN):
        cfg = getattr(model, "cfg", None) or ColumnConfig()
        return PlainColumnCNN(chans, cfg)
    return PlainCNN(chans, SlimConfig())
