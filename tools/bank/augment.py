"""Random small rotations of IMU windows: a training augmentation for sensor placement.

A phone on a belt sits a little differently on every subject. ``random_rotations`` draws, per
window, a rotation by an angle uniform in [0, ``max_deg``] about an axis uniform on the sphere;
``rotate`` turns the accelerometer and the gyroscope triads of each window by that window's one
matrix (both sensors are in the same body, so they turn together). Windows are [N, T, 6] in
the channel order of the bank (acc x, y, z, gyro x, y, z) and in raw units, before normalisation,
so the gravity vector turns with them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from agent.manifest import ModelEntry


def random_rotations(n: int, max_deg: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` rotation matrices [n, 3, 3] (float32), drawn from ``gen``: axis uniform on the
    sphere (a normalised Gaussian vector), angle uniform in [0, ``max_deg``] degrees."""
    if not 0 <= max_deg <= 180:
        raise ValueError(f"max_deg must be within [0, 180], got {max_deg}")
    axis = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = torch.rand(n, generator=gen, dtype=torch.float64) * math.radians(max_deg)
    # Rodrigues: R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of the axis
    k = torch.zeros(n, 3, 3, dtype=torch.float64)
    x, y, z = axis.unbind(1)
    k[:, 0, 1], k[:, 0, 2] = -z, y
    k[:, 1, 0], k[:, 1, 2] = z, -x
    k[:, 2, 0], k[:, 2, 1] = -y, x
    s = torch.sin(angle)[:, None, None]
    c = torch.cos(angle)[:, None, None]
    rot = torch.eye(3, dtype=torch.float64).expand(n, 3, 3) + s * k + (1 - c) * (k @ k)
    return rot.float()


def rotate(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """``x`` [N, T, 6] with each window's acc and gyro triads turned by ``rot`` [N, 3, 3]."""
    if x.ndim != 3 or x.shape[2] != 6:
        raise ValueError(f"expected windows [N, T, 6], got {tuple(x.shape)}")
    if rot.shape != (x.shape[0], 3, 3):
        raise ValueError(f"expected {x.shape[0]} rotations [N, 3, 3], got {tuple(rot.shape)}")
    n, t, _ = x.shape
    triads = x.reshape(n, t, 2, 3)
    return torch.einsum("btsj,bij->btsi", triads, rot).reshape(n, t, 6)


def supernet_rotation(entry: ModelEntry) -> float:
    """The rotation angle ``entry``'s supernet was trained with (its ``train_config.rotate_deg``;
    0 for banks made before the option): what its distillation and fine-tunes use by default."""
    tc = entry.provenance.get("train_config") or {}
    return float(tc.get("rotate_deg", 0.0))
