"""Random temporal crops for the supernet's training windows (``build --crop-hop``): the windows
each epoch sees move, the number of steps does not, the draws follow the seed, and with the option
off the training batches are exactly those of the fixed-hop recipe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agent.windowing import Normalizer  # noqa: E402
from tests.tools.supernet_spy import SupernetSpy  # noqa: E402
from tools.bank import build  # noqa: E402
from tools.bank.supernet import SlimConfig, sample_widths  # noqa: E402
from tools.bank.train import BankTrainConfig, train_supernet  # noqa: E402
from tools.bank.windows import CropWindows, aligned_windows, crop_windows  # noqa: E402
from tools.hapt import Experiment  # noqa: E402

pytestmark = pytest.mark.tools

RES = (128, 96, 64, 32)


def _experiments() -> list[Experiment]:
    """Two short recordings, each with an activity change and an unlabelled gap, so that some
    crops of a kept window cross a label change and are not kept."""
    rng = np.random.default_rng(0)
    out = []
    for k, n in enumerate((700, 620)):
        labels = np.full(n, 1, dtype=np.int64)
        labels[n // 2 :] = 4
        labels[n // 2 - 7 : n // 2 + 5] = -1
        out.append(Experiment(k + 1, k + 1, rng.standard_normal((n, 6)).astype(np.float32), labels))
    return out


@pytest.fixture(scope="module")
def crops() -> CropWindows:
    return crop_windows(_experiments(), RES, hop128=32, crop_hop=8)


def test_coarse_rows_are_the_fixed_hop_windows(crops: CropWindows) -> None:
    fixed = aligned_windows(_experiments(), RES, hop128=32)
    coarse = crops.coarse()
    assert len(crops) == len(fixed) > 0
    for r in RES:
        assert np.array_equal(coarse.x[r], fixed.x[r])
    assert np.array_equal(coarse.y, fixed.y) and np.array_equal(coarse.subject, fixed.subject)
    # 4 candidates per row (offsets 0, 8, 16, 24 samples), fewer near a label change
    assert crops.candidates.shape == (len(fixed), 4)
    assert crops.counts.min() >= 1 and crops.counts.max() == 4 and (crops.counts < 4).any()
    for c, n in enumerate(crops.counts):
        rows = crops.candidates[c, :n]
        assert (crops.candidates[c, n:] == -1).all() and (np.diff(rows) > 0).all()
        assert (crops.fine.y[rows] == fixed.y[c]).all()
    # offset 8 at 50 Hz is 2 samples later at R = 32: row c's next candidate continues it
    c = int(np.flatnonzero(crops.counts == 4)[0])
    first, second = crops.candidates[c, :2]
    assert np.array_equal(crops.fine.x[32][second][:-2], crops.fine.x[32][first][2:])
    assert np.array_equal(crops.fine.x[128][second][:-8], crops.fine.x[128][first][8:])


def test_draws_vary_and_follow_the_seed(crops: CropWindows) -> None:
    draws = [crops.draw(torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    gen = torch.Generator().manual_seed(0)
    a, b = crops.draw(gen), crops.draw(gen)
    assert not torch.equal(a, b)
    for d in (a, b):
        assert d.shape == (len(crops),)
        assert all(int(d[c]) in crops.candidates[c, : crops.counts[c]] for c in range(len(crops)))
    many = torch.stack([crops.draw(gen) for _ in range(200)])
    full = int(np.flatnonzero(crops.counts == 4)[0])
    assert set(many[:, full].tolist()) == set(crops.candidates[full].tolist())


IDENTITY = Normalizer((0.0,) * 6, (1.0,) * 6)
CFG = BankTrainConfig(epochs=2, batch_size=16)


def _train(cfg: BankTrainConfig, crops: CropWindows | None) -> list[tuple[float, torch.Tensor]]:
    data = crops.coarse() if crops is not None else aligned_windows(_experiments(), RES, 32)
    torch.manual_seed(0)
    model = SupernetSpy()
    train_supernet(model, data, IDENTITY, cfg, crops=crops)
    return model.calls


def test_off_gives_the_fixed_hop_batches_draw_for_draw() -> None:
    """The recipe's batches, written out: per epoch a permutation, per step a gain draw from the
    torch generator, then the widths and resolutions from numpy's. Drawing anything for crops
    when they are off would shift these and fail here."""
    data = aligned_windows(_experiments(), RES, hop128=32)
    calls = _train(CFG, None)
    gen = torch.Generator().manual_seed(CFG.seed)
    rng = np.random.default_rng(CFG.seed)
    min_w = SlimConfig().min_width
    expected: list[tuple[float, torch.Tensor]] = []
    for _ in range(CFG.epochs):
        order = torch.randperm(len(data), generator=gen)
        for a in range(0, len(order), CFG.batch_size):
            idx = order[a : a + CFG.batch_size]
            gain = 1 + CFG.scale_aug * (2 * torch.rand(len(idx), 1, 1, generator=gen) - 1)
            expected.append((1.0, torch.from_numpy(data.x[128])[idx] * gain))
            for w in [min_w, *sample_widths(rng, SlimConfig(), CFG.n_random)]:
                r = sorted(RES, reverse=True)[int(rng.integers(len(RES)))]
                expected.append((w, torch.from_numpy(data.x[r])[idx] * gain))
    assert len(calls) == len(expected)
    for (w, x), (we, xe) in zip(calls, expected, strict=True):
        assert w == we and torch.equal(x, xe)


def _full_passes(calls: list[tuple[float, torch.Tensor]]) -> list[torch.Tensor]:
    return [x for w, x in calls if w == 1.0 and x.shape[1] == 128]


def test_crops_move_the_windows_not_the_steps(crops: CropWindows) -> None:
    cfg = dataclasses.replace(CFG, scale_aug=0.0, crop_hop=8)  # gain 1: inputs are raw windows
    off = _full_passes(_train(dataclasses.replace(cfg, crop_hop=0), None))
    on = _full_passes(_train(cfg, crops))
    assert len(on) == len(off) == CFG.epochs * -(-len(crops) // CFG.batch_size)
    assert [len(x) for x in on] == [len(x) for x in off]
    rows = {x.tobytes(): i for i, x in enumerate(crops.fine.x[128])}
    seen = [rows[x.numpy().tobytes()] for batch in on for x in batch]
    per_epoch = len(seen) // CFG.epochs
    epochs = [sorted(seen[e * per_epoch : (e + 1) * per_epoch]) for e in range(CFG.epochs)]
    coarse_rows = set(crops.candidates[:, 0].tolist())
    for rows_e in epochs:
        assert len(rows_e) == len(crops) and not set(rows_e) <= coarse_rows  # shifted windows
        anchors = {int(np.flatnonzero((crops.candidates == i).any(1))[0]) for i in rows_e}
        assert len(anchors) == len(crops)  # one window per coarse row
    assert epochs[0] != epochs[1]
    # deterministic for the seed
    again = _full_passes(_train(cfg, crops))
    assert all(torch.equal(a, b) for a, b in zip(on, again, strict=True))


def test_training_refuses_a_mismatch(crops: CropWindows) -> None:
    with pytest.raises(ValueError):
        train_supernet(
            SupernetSpy(), crops.coarse(), IDENTITY, dataclasses.replace(CFG, crop_hop=8)
        )
    with pytest.raises(ValueError):
        train_supernet(SupernetSpy(), crops.coarse(), IDENTITY, CFG, crops=crops)


def test_build_option() -> None:
    assert build.parse_args(["--out", "x"]).crop_hop == 0
    assert build.parse_args(["--out", "x", "--crop-hop", "8"]).crop_hop == 8
    assert build.parse_args(["--smoke", "--crop-hop", "16"]).crop_hop == 16
    for bad in ("6", "12", "32", "64", "-8"):
        with pytest.raises(SystemExit):
            build.parse_args(["--out", "x", "--crop-hop", bad])
    with pytest.raises(ValueError):
        crop_windows(_experiments(), RES, hop128=32, crop_hop=12)
