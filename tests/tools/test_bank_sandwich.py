"""The sandwich's passes per step (``tools.bank.train``): with ``min_config_pass`` every step also
trains the smallest configuration (narrowest width, lowest resolution), and the recipe's own
passes keep their draws (``build --min-config-pass``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agent.windowing import Normalizer  # noqa: E402
from tests.tools.supernet_spy import SupernetSpy  # noqa: E402
from tools.bank import build  # noqa: E402
from tools.bank.train import BankTrainConfig, train_supernet  # noqa: E402
from tools.bank.windows import aligned_windows  # noqa: E402
from tools.hapt import Experiment  # noqa: E402

pytestmark = pytest.mark.tools

RES = (128, 96, 64, 32)
IDENTITY = Normalizer((0.0,) * 6, (1.0,) * 6)


def _passes(cfg: BankTrainConfig) -> tuple[list[tuple[float, torch.Tensor]], int]:
    rng = np.random.default_rng(0)
    exps = [
        Experiment(k + 1, k + 1, rng.standard_normal((n, 6)).astype(np.float32), np.ones(n, int))
        for k, n in enumerate((600, 500))
    ]
    data = aligned_windows(exps, RES, 32)
    torch.manual_seed(0)
    model = SupernetSpy()
    train_supernet(model, data, IDENTITY, cfg)
    return model.calls, cfg.epochs * -(-len(data) // cfg.batch_size)


def test_every_step_also_trains_the_smallest_configuration() -> None:
    base = BankTrainConfig(epochs=2, batch_size=16, rotate_deg=15.0)
    off, steps = _passes(base)
    on, steps_on = _passes(dataclasses.replace(base, min_config_pass=True))
    per_step = 2 + base.n_random
    assert steps == steps_on and len(off) == steps * per_step
    assert len(on) == steps * (per_step + 1)
    min_width = SupernetSpy().cfg.min_width
    for k in range(steps):
        plain = off[k * per_step : (k + 1) * per_step]
        *recipe, (width, x) = on[k * (per_step + 1) : (k + 1) * (per_step + 1)]
        assert width == min_width and x.shape[1] == min(RES)
        # the recipe's passes: same widths, same windows, gains and rotations, in order
        assert [w for w, _ in recipe] == [w for w, _ in plain]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(recipe, plain, strict=True))
        # and the extra pass sees the step's windows as the full pass does (same rows)
        assert len(x) == len(recipe[0][1])


def test_without_it_the_smallest_configuration_is_left_to_chance() -> None:
    off, steps = _passes(BankTrainConfig(epochs=6, batch_size=16))
    per_step = 4
    smallest = [
        k
        for k in range(steps)
        if any(
            w == SupernetSpy().cfg.min_width and x.shape[1] == min(RES)
            for w, x in off[k * per_step + 1 : (k + 1) * per_step]
        )
    ]
    assert 0 < len(smallest) < steps


def test_build_option() -> None:
    assert build.parse_args(["--out", "x"]).min_config_pass is True  # adopted
    assert build.parse_args(["--out", "x", "--no-min-config-pass"]).min_config_pass is False
