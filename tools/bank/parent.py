"""Load an exported bank member back into PyTorch, so it can be pruned and fine-tuned.

The supernet's weights are not kept after ``tools.bank.build``; what the bank holds is each
member's ONNX graph with BatchNorm already folded into the convolutions. Those graphs are plain
modules whose initializers carry the PyTorch state-dict names (``features.N.weight``,
``classifier.bias``): :class:`~tools.bank.supernet.PlainCNN` (1-D, ``wr-`` members, Conv1d
weights [out, in, k]) or :class:`~tools.bank.supernet2d.PlainColumnCNN` (per-column 2-D, ``wc-``
members, Conv2d weights [out, in, k, 1], classifier over the columns' features). The parent of
a compressed member is rebuilt exactly from the file the bank ships, and its sha256 ties the
child to it.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from tools.bank.supernet import PlainCNN, SlimConfig
from tools.bank.supernet2d import ColumnConfig, PlainColumnCNN


def plain_from_onnx(path: Path, cfg: SlimConfig | ColumnConfig | None = None) -> nn.Module:
    """The plain module holding the weights of the ONNX member at ``path``.

    The architecture is read from the first conv weight's rank (3: Conv1d, :class:`PlainCNN`;
    4: Conv2d, :class:`PlainColumnCNN`); channel counts from the conv weight shapes; kernels,
    pooling and strides from ``cfg`` (the supernet's configuration, default for the detected
    architecture when None or of the other one). Raises ``ValueError`` when the graph does not fit.
    """
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    conv_names = sorted(
        (k for k in inits if k.startswith("features.") and k.endswith(".weight")),
        key=lambda k: int(k.split(".")[1]),
    )
    if not conv_names:
        raise ValueError(f"{path}: no features.N.weight initializers")
    chans = tuple(int(inits[k].shape[0]) for k in conv_names)
    plain: nn.Module
    if inits[conv_names[0]].ndim == 4:
        ccfg = cfg if isinstance(cfg, ColumnConfig) else ColumnConfig()
        if len(chans) != len(ccfg.channels):
            raise ValueError(f"{path}: {len(chans)} conv layers, expected {len(ccfg.channels)}")
        plain = PlainColumnCNN(chans, ccfg)
    else:
        scfg = cfg if isinstance(cfg, SlimConfig) else SlimConfig()
        if len(chans) != len(scfg.channels):
            raise ValueError(f"{path}: {len(chans)} conv layers, expected {len(scfg.channels)}")
        plain = PlainCNN(chans, scfg)
    state = plain.state_dict()
    missing = sorted(set(state) - set(inits))
    if missing:
        raise ValueError(f"{path}: initializers missing for {missing}")
    for k in state:
        if tuple(inits[k].shape) != tuple(state[k].shape):
            raise ValueError(f"{path}: {k} has shape {inits[k].shape}, expected {state[k].shape}")
        state[k] = torch.from_numpy(inits[k].copy())
    plain.load_state_dict(state)
    return plain.eval()
