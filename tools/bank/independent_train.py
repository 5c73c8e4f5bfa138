"""One independent baseline (:mod:`tools.bank.independent`): a bank configuration trained alone
with a bank member's recipe, then exported beside (never as) a bank member.

The network is the supernet of the member's architecture (:class:`SlimCNN` or
:class:`SlimColumnCNN`), built right after seeding as :mod:`tools.bank.build` builds it, trained
at one (width, resolution) only: cross-entropy, no sandwich, no distillation, with the supernet
loop's batches, gains, optimizer and schedule. It then takes the members' own path,
:func:`tools.bank.members.build_member` (BN recalibrated, folded, exported, evaluated with ONNX
Runtime), and its file and id are renamed ``ind-…``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from agent.manifest import ModelEntry
from agent.windowing import Normalizer
from tools.bank.augment import random_rotations, rotate
from tools.bank.build import CALIB_BATCH, CALIB_BATCHES
from tools.bank.members import MemberResult, build_member, calib_batches
from tools.bank.plain_arch import model_config
from tools.bank.supernet import SlimCNN, SlimConfig
from tools.bank.supernet2d import ColumnConfig, SlimColumnCNN
from tools.bank.train import BankTrainConfig, evaluate_val
from tools.bank.windows import MultiResWindows, eval_windows
from tools.hapt import Experiment

FAMILY = "independent"


def recipe_from(entry: ModelEntry) -> tuple[BankTrainConfig, SlimConfig | ColumnConfig, bool]:
    """The training recipe of a committed width-resolution member (its provenance); the model
    config's class follows the member's architecture (``arch`` in it, else the id)."""
    prov = entry.provenance
    tc = dict(prov["train_config"])
    return BankTrainConfig(**tc), model_config(entry), bool(prov.get("refit", False))


def make_model(model_cfg: SlimConfig | ColumnConfig) -> SlimCNN | SlimColumnCNN:
    """The supernet of ``model_cfg``'s architecture (call right after seeding)."""
    if isinstance(model_cfg, ColumnConfig):
        return SlimColumnCNN(model_cfg)
    return SlimCNN(model_cfg)


def train_single(
    model: SlimCNN,
    width: float,
    resolution: int,
    data: MultiResWindows,
    norm: Normalizer,
    cfg: BankTrainConfig,
    val: MultiResWindows | None = None,
    max_steps: int | None = None,
    desc: str = "independent",
) -> list[dict[str, float]]:
    """Train ``model`` in place at one (width, resolution) with cross-entropy only.

    Same loop as :func:`tools.bank.train.train_supernet` (batch order and gains drawn from the
    same generator in the same order, AdamW, one-cycle schedule over the same number of steps),
    with the sandwich passes and the distillation term left out. Returns per-epoch history."""
    gen = torch.Generator().manual_seed(cfg.seed)
    mean = torch.tensor(norm.mean, dtype=torch.float32)
    std = torch.tensor(norm.std, dtype=torch.float32)
    x = torch.from_numpy(data.x[resolution])
    yt = torch.from_numpy(data.y)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = (len(yt) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * per_epoch if max_steps is None else min(max_steps, cfg.epochs * per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1))
    history: list[dict[str, float]] = []
    steps = 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch")
    for epoch in bar:
        t0 = time.time()
        model.train()
        order = torch.randperm(len(yt), generator=gen)
        loss_sum, seen = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            if steps >= total:
                break
            idx = order[a : a + cfg.batch_size]
            gain = 1 + cfg.scale_aug * (2 * torch.rand(len(idx), 1, 1, generator=gen) - 1)
            xb = x[idx] * gain
            if cfg.rotate_deg:  # as the supernet's training: drawn after the gains, only when on
                xb = rotate(xb, random_rotations(len(idx), cfg.rotate_deg, gen))
            opt.zero_grad()
            loss = F.cross_entropy(model((xb - mean) / std, width), yt[idx])
            loss.backward()
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
            record.update(evaluate_val(model, val, norm, [(width, resolution)]))
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        if steps >= total:
            break
    model.eval()
    return history


def export_alone(
    model: SlimCNN | SlimColumnCNN,
    width: float,
    resolution: int,
    fit: MultiResWindows,
    norm: Normalizer,
    seed: int,
    test_exps: list[Experiment],
    val_exps: list[Experiment],
    out: Path,
    provenance: dict[str, Any],
) -> MemberResult:
    """The trained ``model`` at (width, resolution) as an ONNX file ``ind-…`` in ``out``:
    recalibrated over training windows of its resolution, evaluated on the test subjects (and
    the validation subjects when there are any), timed over 50 runs."""
    test = eval_windows(test_exps, resolution)
    val_r = eval_windows(val_exps, resolution) if val_exps else None
    calib = calib_batches(fit.x[resolution], norm, CALIB_BATCHES, CALIB_BATCH, seed)
    res = build_member(model, width, resolution, calib, norm, test, val_r, out, 50, provenance)
    return dataclasses.replace(res, entry=_rename(res, out))


def _rename(res: MemberResult, out: Path) -> ModelEntry:
    """``wr-…``/``wc-…`` written by build_member -> ``ind-wr-…``/``ind-wc-…`` (never mistaken
    for a bank member)."""
    e = res.entry
    new = out / f"ind-{e.file}"
    (out / e.file).replace(new)
    return dataclasses.replace(e, id=f"ind-{e.id}", file=new.name, family=FAMILY)
