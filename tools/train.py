"""The PyTorch training loop shared by the model builders (seeded, CPU, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agent.windowing import Normalizer
from tools import metrics


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. ``train_hop`` < the protocol hop means the training subjects'
    windows overlap more than the evaluation windows (a random-crop style augmentation)."""

    epochs: int = 12
    train_hop: int = 16
    batch_size: int = 64
    lr: float = 1e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-2  # AdamW
    scale_aug: float = 0.1  # each training window is multiplied by U(1 - a, 1 + a)
    seed: int = 0
    threads: int = 2
    version: int = 1


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    val_accuracy: float | None  # of the final weights (None without validation data)
    history: tuple[dict[str, float], ...]  # per epoch: loss, val_accuracy


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def augment(xb: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Light augmentation of raw windows [B, T, C]: one random gain per window."""
    if cfg.scale_aug > 0:
        xb = xb * (1 + cfg.scale_aug * (2 * torch.rand(xb.shape[0], 1, 1, generator=gen) - 1))
    return xb


def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """Class predictions for normalised windows ``x`` [N, T, C]."""
    model.eval()
    with torch.no_grad():
        logits = [model(x[a : a + batch]) for a in range(0, len(x), batch)]
    return torch.cat(logits).argmax(1).numpy() if logits else np.zeros(0, np.int64)


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    norm: Normalizer,
    cfg: TrainConfig,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Train on raw windows ``x`` (augmented, then normalised with ``norm``, per batch) for
    ``cfg.epochs`` epochs of a one-cycle schedule and keep the final weights. With ``val`` (raw
    windows, labels) the validation accuracy is measured after every epoch."""
    gen = torch.Generator().manual_seed(cfg.seed)
    mean = torch.tensor(norm.mean, dtype=torch.float32)
    std = torch.tensor(norm.std, dtype=torch.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xv = (torch.from_numpy(val[0]) - mean) / std if val is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(xt) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    val_acc: float | None = None
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, seen = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            idx = order[a : a + cfg.batch_size]
            xb = (augment(xt[idx], cfg, gen) - mean) / std
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        record = {"epoch": float(epoch), "loss": total / max(seen, 1)}
        if xv is not None and val is not None:
            val_acc = metrics.accuracy(val[1], predict(model, xv))
            record["val_accuracy"] = val_acc
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
    model.eval()
    return TrainResult(epochs_run=cfg.epochs, val_accuracy=val_acc, history=tuple(history))
