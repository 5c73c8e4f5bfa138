"""Fine-tuning of a pruned plain network, distilled from its unpruned parent.

After channels are removed the network is retrained briefly on training windows of its
resolution: cross-entropy on the labels plus KL towards the parent's soft outputs (the same
0.5/0.5 in-place distillation the supernet was trained with, here with the parent as teacher).
The pruned network has no BatchNorm (it was folded at export), so a small learning rate with a
cosine decay keeps the folded scales stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tools import metrics
from tools.bank.augment import random_rotations, rotate


@dataclass(frozen=True)
class FinetuneConfig:
    epochs_per_step: int = 2  # after every iterative pruning step
    final_epochs: int = 3  # after the last step
    batch_size: int = 64
    lr: float = 5e-4  # start of a cosine decay, per fine-tuning call
    weight_decay: float = 1e-4
    scale_aug: float = 0.1  # random gain U(1 - a, 1 + a) per window, as in training
    rotate_deg: float = 0.0  # random rotation of the sensor triads up to this angle, as in training
    kd_weight: float = 0.5
    max_steps: int | None = None  # cap per call (smoke runs)
    version: int = 1


def finetune(
    model: nn.Module,
    teacher: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    cfg: FinetuneConfig,
    gen: torch.Generator,
    desc: str = "fine-tune",
    soft: torch.Tensor | None = None,
    norm: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Train ``model`` in place on normalised windows ``x`` [N, T, C] and labels ``y`` for
    ``epochs``; returns the mean training loss of the last epoch.

    The distillation target is ``teacher``'s softmax on the same (augmented) batch, or, when
    ``soft`` [N, classes] is given, those precomputed probabilities (row i for window i: a
    teacher that takes another resolution of the same windows).

    With ``cfg.rotate_deg`` > 0 each window is also turned by a random rotation (drawn from
    ``gen`` after its gain), in raw units: ``norm`` (mean, std) undoes the normalisation first."""
    if cfg.rotate_deg and norm is None:
        raise ValueError("random rotations need the normalisation (norm) to turn raw windows")
    if epochs <= 0 or len(y) == 0:
        return float("nan")
    per_epoch = math.ceil(len(y) / cfg.batch_size)
    total = epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    if teacher is not None:
        teacher.eval()
    if soft is not None and len(soft) != len(y):
        raise ValueError(f"soft targets for {len(soft)} windows, {len(y)} labels")
    model.train()
    step, loss_sum, seen = 0, 0.0, 0
    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    for _ in range(epochs):
        if step >= total:  # capped by max_steps: report the last epoch that ran
            break
        order = torch.randperm(len(y), generator=gen)
        loss_sum, seen = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[a : a + cfg.batch_size]
            gain = 1 + cfg.scale_aug * (2 * torch.rand(len(idx), 1, 1, generator=gen) - 1)
            xb, yb = x[idx] * gain, y[idx]
            if cfg.rotate_deg:
                assert norm is not None
                mean, std = norm
                rot = random_rotations(len(idx), cfg.rotate_deg, gen)
                xb = (rotate(xb * std + mean, rot) - mean) / std
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            if (teacher is not None or soft is not None) and cfg.kd_weight > 0:
                if soft is not None:
                    target = soft[idx]
                else:
                    assert teacher is not None
                    with torch.no_grad():
                        target = F.softmax(teacher(xb), dim=1)
                kd = F.kl_div(F.log_softmax(out, dim=1), target, reduction="batchmean")
                loss = cfg.kd_weight * kd + (1 - cfg.kd_weight) * loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            bar.update(1)
    bar.close()
    model.eval()
    return loss_sum / max(seen, 1)


@torch.no_grad()
def torch_accuracy(model: nn.Module, x: torch.Tensor, y: np.ndarray, batch: int = 512) -> float:
    """Accuracy of ``model`` on normalised windows ``x`` (batched PyTorch, for selection)."""
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    pred = torch.cat([model(x[a : a + batch]) for a in range(0, len(x), batch)]).argmax(1)
    model.train(was_training)
    return metrics.accuracy(y, pred.numpy())
