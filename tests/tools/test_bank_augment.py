"""Random small rotations for the supernet's training windows (``build --rotate``): proper
rotations within the angle, one matrix per window for both sensor triads, the same at every
resolution of a step. (With the option off the batches are the recipe's draw for draw:
tests/tools/test_bank_crops.py.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agent.windowing import Normalizer  # noqa: E402
from tests.tools.supernet_spy import SupernetSpy  # noqa: E402
from tools.bank import build  # noqa: E402
from tools.bank.augment import random_rotations, rotate  # noqa: E402
from tools.bank.train import BankTrainConfig, train_supernet  # noqa: E402
from tools.bank.windows import aligned_windows  # noqa: E402
from tools.hapt import Experiment  # noqa: E402

pytestmark = pytest.mark.tools

RES = (128, 96, 64, 32)


def _angles(rot: torch.Tensor) -> torch.Tensor:
    trace = rot.diagonal(dim1=1, dim2=2).sum(1).double()
    return torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1, 1)))


@pytest.mark.parametrize("max_deg", [1.0, 15.0, 90.0, 180.0])
def test_rotations_are_proper_and_within_the_angle(max_deg: float) -> None:
    rot = random_rotations(2000, max_deg, torch.Generator().manual_seed(3))
    assert rot.shape == (2000, 3, 3) and rot.dtype == torch.float32
    eye = torch.eye(3).expand(2000, 3, 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2000), atol=1e-5)
    angles = _angles(rot)
    assert float(angles.max()) <= max_deg + 1e-3
    # uniform in [0, max]: the largest draws come close to the bound, the mean sits in the middle
    assert float(angles.max()) > 0.98 * max_deg
    assert abs(float(angles.mean()) - max_deg / 2) < 0.05 * max_deg


def test_rotation_axes_cover_the_sphere() -> None:
    rot = random_rotations(3000, 30.0, torch.Generator().manual_seed(0)).double()
    # the axis is the normalised (R - R^T) vector; its components average to ~0 each
    skew = rot - rot.transpose(1, 2)
    axis = torch.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], 1)
    axis = axis / axis.norm(dim=1, keepdim=True)
    assert axis.mean(0).abs().max() < 0.05
    assert (axis.abs().mean(0) > 0.4).all()  # no axis favoured (uniform: 0.5 each)


def test_rotations_follow_the_seed_and_zero_is_identity() -> None:
    a = random_rotations(5, 15.0, torch.Generator().manual_seed(1))
    b = random_rotations(5, 15.0, torch.Generator().manual_seed(1))
    c = random_rotations(5, 15.0, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(random_rotations(4, 0.0, torch.Generator()), torch.eye(3).expand(4, 3, 3))
    for bad in (-1.0, 181.0, math.nan):
        with pytest.raises(ValueError, match="max_deg"):
            random_rotations(2, bad, torch.Generator())


def test_rotate_turns_both_triads_of_a_window_by_its_matrix() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 10, 6, generator=gen)
    rot = random_rotations(3, 40.0, gen)
    y = rotate(x, rot)
    assert y.shape == x.shape
    for n in range(3):
        for t in range(10):
            assert torch.allclose(y[n, t, :3], rot[n] @ x[n, t, :3], atol=1e-6)
            assert torch.allclose(y[n, t, 3:], rot[n] @ x[n, t, 3:], atol=1e-6)
    # a vector's length is kept: gravity stays 1 g, only its direction moves
    norms = x.reshape(3, 10, 2, 3).norm(dim=3)
    assert torch.allclose(y.reshape(3, 10, 2, 3).norm(dim=3), norms, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, T, 6\]"):
        rotate(torch.zeros(3, 10, 3), rot)
    with pytest.raises(ValueError, match="rotations"):
        rotate(x, rot[:2])


def _experiments() -> list[Experiment]:
    rng = np.random.default_rng(0)
    return [
        Experiment(k + 1, k + 1, rng.standard_normal((n, 6)).astype(np.float32), np.ones(n, int))
        for k, n in enumerate((600, 500))
    ]


IDENTITY = Normalizer((0.0,) * 6, (1.0,) * 6)


def _steps(cfg: BankTrainConfig) -> tuple[list[list[tuple[float, torch.Tensor]]], int]:
    """Each optimizer step's forward passes (the first pass of a step is the full one)."""
    data = aligned_windows(_experiments(), RES, 32)
    torch.manual_seed(0)
    model = SupernetSpy()
    train_supernet(model, data, IDENTITY, cfg)
    per_step = 2 + cfg.n_random
    calls = model.calls
    return [calls[i : i + per_step] for i in range(0, len(calls), per_step)], len(data)


def test_training_turns_every_pass_of_a_step_by_the_same_rotations() -> None:
    cfg = BankTrainConfig(epochs=1, batch_size=16, scale_aug=0.0, rotate_deg=30.0)
    data = aligned_windows(_experiments(), RES, 32)
    steps, n = _steps(cfg)
    assert len(steps) == math.ceil(n / 16)
    raw = {r: torch.from_numpy(data.x[r]) for r in RES}
    for step in steps[:3]:
        (w_full, full), *narrow = step
        assert w_full == 1.0 and full.shape[1] == 128
        # which rows: the rotation keeps each sample triad's length, so match rows by that
        lengths = raw[128].reshape(len(data), 128, 2, 3).norm(dim=3)
        seen = full.reshape(len(full), 128, 2, 3).norm(dim=3)
        idx = [int((lengths - s).abs().amax(dim=(1, 2)).argmin()) for s in seen]
        assert torch.allclose(lengths[idx], seen, atol=1e-4)
        # recover each window's matrix from its full pass (least squares over its samples)
        src = raw[128][idx].reshape(len(idx), 256, 3)
        dst = full.reshape(len(idx), 256, 3)
        rot = torch.linalg.lstsq(src, dst).solution.transpose(1, 2)
        assert float(_angles(rot).max()) <= 30.0 + 0.01
        assert float(_angles(rot).min()) > 0.0  # turned, not copied
        for _w, x in narrow:  # every narrower pass: its resolution's windows, same matrices
            assert torch.allclose(x, rotate(raw[x.shape[1]][idx], rot), atol=1e-4)


def test_rotations_change_only_the_directions_of_the_inputs() -> None:
    base = BankTrainConfig(epochs=1, batch_size=16, scale_aug=0.0)  # gains drawn per step
    off, _ = _steps(base)
    on, _ = _steps(dataclasses.replace(base, rotate_deg=15.0))
    assert len(off) == len(on)
    for step_off, step_on in zip(off, on, strict=True):
        assert [w for w, _ in step_off] == [w for w, _ in step_on]
        for (_, a), (_, b) in zip(step_off, step_on, strict=True):
            assert a.shape == b.shape and not torch.equal(a, b)
            # same windows and gains: only the direction of each triad differs
            na, nb = (v.reshape(*v.shape[:2], 2, 3).norm(dim=3) for v in (a, b))
            assert torch.allclose(na, nb, atol=1e-4)


def test_build_option() -> None:
    assert build.parse_args(["--out", "x"]).rotate == 15.0 == build.DEFAULT_ROTATE
    assert build.parse_args(["--out", "x", "--rotate", "0"]).rotate == 0.0
    for bad in ("-1", "181", "nan", "ten"):
        with pytest.raises(SystemExit):
            build.parse_args(["--out", "x", "--rotate", bad])
