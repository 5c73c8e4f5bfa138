"""A tiny 1-D supernet that records every forward pass the training loop makes (tests only)."""

from __future__ import annotations

import torch

from tools.bank.supernet import SlimCNN, SlimConfig


class SupernetSpy(SlimCNN):
    """Records every forward pass (width, input) the training loop makes."""

    def __init__(self) -> None:
        super().__init__(SlimConfig(channels=(8, 8, 8)))
        self.calls: list[tuple[float, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, width: float = 1.0) -> torch.Tensor:
        self.calls.append((width, x.detach().clone()))
        return super().forward(x, width)
