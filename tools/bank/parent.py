"""Load an exported bank member back into PyTorch, so it can be pruned and fine-tuned.

The supernet's weights are not kept after ``tools.bank.build``; what the bank holds is each
member's ONNX graph with BatchNorm already folded into the convolutions. Those graphs are plain
:class:`~tools.bank.supernet.PlainCNN` modules whose initializers carry the PyTorch state-dict
names (``features.N.weight``, ``classifier.bias``), so the parent of a compressed member is
rebuilt exactly from the file the bank ships, and its sha256 ties the child to it.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from tools.bank.supernet import PlainCNN, SlimConfig


def plain_from_onnx(path: Path, cfg: SlimConfig | None = None) -> PlainCNN:
    """A :class:`PlainCNN` holding the weights of the ONNX member at ``path``.

    Channel counts are read from the conv weight shapes; kernels and pooling come from ``cfg``
    (the supernet's configuration). Raises ``ValueError`` when the graph does not fit.
    """
    cfg = cfg or SlimConfig()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    conv_names = sorted(
        (k for k in inits if k.startswith("features.") and k.endswith(".weight")),
        key=lambda k: int(k.split(".")[1]),
    )
    chans = tuple(int(inits[k].shape[0]) for k in conv_names)
    if len(chans) != len(cfg.channels):
        raise ValueError(f"{path}: {len(chans)} conv layers, expected {len(cfg.channels)}")
    plain = PlainCNN(chans, cfg)
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
