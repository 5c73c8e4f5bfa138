"""Collaborative (sandwich-rule) training of the supernet with in-place distillation.

Each step, on one batch of index-aligned windows (:func:`tools.bank.windows.aligned_windows`):

1. the largest width (1.0) at full resolution (128) with cross-entropy;
2. the smallest width and ``n_random`` random widths (uniform or log-uniform in [min, 1]), each
   at a random resolution, with
   ``0.5 * KL(student || largest's soft outputs, detached, T=1) + 0.5 * CE``.

With ``min_config_pass`` each step also trains the smallest configuration (the smallest width at
the lowest resolution) with the same loss: the lower bound of the sandwich over both axes, not
only over widths. It draws no width, resolution, gain or rotation: the other passes get the
draws of the recipe without it (dropout masks aside).

Gradients of all passes accumulate, then one optimizer step (AdamW, one-cycle schedule).

With random temporal crops (``crop_hop`` > 0, :func:`tools.bank.windows.crop_windows`) each epoch
takes, for every training row, a window starting at a random multiple of ``crop_hop`` samples
after it (before the next row), drawn from the run's seeded generator: the same number of windows
and steps per epoch, only their positions vary. Off (0) by default, and then nothing is drawn for
it.

With random rotations (``rotate_deg`` > 0, :mod:`tools.bank.augment`) every window of a batch is
also turned by its own small rotation, the same at every resolution of the step; drawn from the
torch generator after the gains, and only when on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from agent.windowing import Normalizer
from tools import metrics
from tools.bank.augment import random_rotations, rotate
from tools.bank.supernet import SlimCNN, sample_widths
from tools.bank.windows import BASE_LENGTH, CropWindows, MultiResWindows


@dataclass(frozen=True)
class BankTrainConfig:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-2
    scale_aug: float = 0.1  # random gain U(1 - a, 1 + a) per window
    n_random: int = 2
    kd_weight: float = 0.5
    train_hop128: int = 32  # training windows every 32 samples of the 50 Hz stream
    seed: int = 0
    threads: int = 2
    version: int = 1
    width_sampling: str = "uniform"  # the random widths: "uniform" or "log" (log-uniform)
    crop_hop: int = 0  # random temporal crops at this 50 Hz hop (0: off, the fixed hop above)
    rotate_deg: float = 0.0  # random rotation of each window's sensor triads, up to this angle
    min_config_pass: bool = False  # also the smallest width at the lowest resolution, every step


def norm_tensors(norm: Normalizer) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(norm.mean, dtype=torch.float32),
        torch.tensor(norm.std, dtype=torch.float32),
    )


def _inputs(
    x: torch.Tensor,
    gain: torch.Tensor,
    rot: torch.Tensor | None,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """A batch of raw windows as the network sees it: gained, turned (if ``rot``), normalised."""
    x = x * gain
    return ((x if rot is None else rotate(x, rot)) - mean) / std


def evaluate_val(
    model: SlimCNN, val: MultiResWindows, norm: Normalizer, configs: list[tuple[float, int]]
) -> dict[str, float]:
    """Validation accuracy per (width, resolution), with the training BN statistics (a cheap
    progress signal; the exported members are recalibrated)."""
    mean, std = norm_tensors(norm)
    model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for w, r in configs:
            x = (torch.from_numpy(val.x[r]) - mean) / std
            pred = torch.cat([model(x[a : a + 512], w) for a in range(0, len(x), 512)]).argmax(1)
            out[f"w{w:.2f}-r{r:03d}"] = metrics.accuracy(val.y, pred.numpy())
    return out


def train_supernet(
    model: SlimCNN,
    data: MultiResWindows,
    norm: Normalizer,
    cfg: BankTrainConfig,
    val: MultiResWindows | None = None,
    max_steps: int | None = None,
    crops: CropWindows | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns per-epoch history (loss, seconds, val accuracies).

    ``crops`` (required when ``cfg.crop_hop`` > 0, whose coarse rows are ``data``): each epoch
    trains on one window per row of ``data`` drawn from ``crops`` instead of ``data``'s own.
    """
    import time

    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mean, std = norm_tensors(norm)
    if (crops is not None) != (cfg.crop_hop > 0):
        raise ValueError("crops are given exactly when cfg.crop_hop > 0")
    if crops is not None and len(crops) != len(data):
        raise ValueError(f"{len(crops)} crop rows for {len(data)} training rows")
    src = data if crops is None else crops.fine
    res = sorted(src.x, reverse=True)
    xs = {r: torch.from_numpy(src.x[r]) for r in res}
    yt = torch.from_numpy(src.y)
    n_rows = len(data)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = (n_rows + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * per_epoch if max_steps is None else min(max_steps, cfg.epochs * per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1))
    history: list[dict[str, float]] = []
    steps = 0
    val_configs = [(1.0, BASE_LENGTH), (model.cfg.min_width, min(res))]
    bar = tqdm(range(1, cfg.epochs + 1), desc="supernet", unit="epoch")
    for epoch in bar:
        t0 = time.time()
        model.train()
        order = torch.randperm(n_rows, generator=gen)
        if crops is not None:
            order = crops.draw(gen)[order]
        loss_sum, seen = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            if steps >= total:
                break
            idx = order[a : a + cfg.batch_size]
            gain = 1 + cfg.scale_aug * (2 * torch.rand(len(idx), 1, 1, generator=gen) - 1)
            rot = random_rotations(len(idx), cfg.rotate_deg, gen) if cfg.rotate_deg else None
            yb = yt[idx]
            opt.zero_grad()
            logits = model(_inputs(xs[BASE_LENGTH][idx], gain, rot, mean, std), 1.0)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            soft = F.softmax(logits.detach(), dim=1)
            widths = [
                model.cfg.min_width,
                *sample_widths(rng, model.cfg, cfg.n_random, cfg.width_sampling),
            ]
            passes = [(w, res[int(rng.integers(len(res)))]) for w in widths]
            if cfg.min_config_pass:
                passes.append((model.cfg.min_width, res[-1]))
            for w, r in passes:
                out = model(_inputs(xs[r][idx], gain, rot, mean, std), w)
                kd = F.kl_div(F.log_softmax(out, dim=1), soft, reduction="batchmean")
                s_loss = cfg.kd_weight * kd + (1 - cfg.kd_weight) * F.cross_entropy(out, yb)
                s_loss.backward()
            opt.step()
            sched.step()
            steps += 1
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        record: dict[str, float] = {
            "epoch": float(epoch),
            "loss": loss_sum / max(seen, 1),
            "seconds": round(time.time() - t0, 1),
        }
        if val is not None and len(val):
            record.update(evaluate_val(model, val, norm, val_configs))
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        if steps >= total:
            break
    model.eval()
    return history
