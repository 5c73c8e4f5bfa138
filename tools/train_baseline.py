"""Train the baseline 1-D CNN on UCI HAPT, export it to ONNX and register it in models/.

    python -m tools.import_hapt && python -m tools.train_baseline     # the real model
    python -m tools.train_baseline --smoke --out build/smoke          # seconds, for CI

Protocol (docs/training.md): 50 Hz, 128-sample windows, hop 64, the six activities, windows whose
samples all carry one label; test = the UCI-HAR test subjects, validation = 4 train subjects
(model selection only). Data come from ``data/hapt`` when it holds all 61 imported recordings,
else straight from the package's pickle (same samples, read by tools.hapt).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agent.manifest import InputSpec, ModelEntry, load_manifest, sha256_file, write_manifest
from agent.windowing import Normalizer
from tools import metrics
from tools.data import DEFAULT_VAL_SUBJECTS, PROTOCOL, WindowSet, cut_windows, load_experiments
from tools.data import make_split as make_subject_split
from tools.export import (
    INPUT_NAME,
    board_name,
    export_onnx,
    latency_ms,
    max_abs_diff,
    ort_logits,
    session,
)
from tools.hapt import ACTIVITIES, CHANNELS, TEST_SUBJECTS, UNITS
from tools.models import CNN1d, CNNConfig, count_macs_params

MODEL_ID = "cnn1d-base"
REBUILD = "python -m tools.import_hapt && python -m tools.train_baseline"
SMOKE_SUBJECTS = (1, 3, 5, 2)  # train 1, 3; validation 5; test 2


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scale_aug: float = 0.1  # each training window is multiplied by U(1 - a, 1 + a)
    seed: int = 0
    threads: int = 2


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def evaluate_torch(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[a : a + 512]) for a in range(0, len(x), 512)]).argmax(1)
    return metrics.accuracy(y, pred.numpy())


def train(
    model: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    norm: Normalizer,
    cfg: TrainConfig,
) -> tuple[int, float, list[dict[str, float]]]:
    """Train on raw windows (normalised per batch, after augmentation); keep the weights of the
    epoch with the best validation accuracy. Returns (best epoch, its val accuracy, history)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    mean = torch.tensor(norm.mean, dtype=torch.float32)
    std = torch.tensor(norm.std, dtype=torch.float32)
    xt = torch.from_numpy(train_x)
    yt = torch.from_numpy(train_y)
    xv = (torch.from_numpy(val_x) - mean) / std
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(xt) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    best = (-1.0, 0)
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, seen = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            idx = order[a : a + cfg.batch_size]
            xb = xt[idx]
            if cfg.scale_aug > 0:
                scale = 1 + cfg.scale_aug * (2 * torch.rand(len(idx), 1, 1, generator=gen) - 1)
                xb = xb * scale
            xb = (xb - mean) / std
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        val_acc = evaluate_torch(model, xv, val_y)
        history.append({"epoch": epoch, "loss": total / max(seen, 1), "val_accuracy": val_acc})
        if val_acc > best[0]:
            best = (val_acc, epoch)
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{total / max(seen, 1):.4f}", val=f"{val_acc:.4f}")
    model.load_state_dict(best_state)
    model.eval()
    return best[1], best[0], history


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "")


def register(out: Path, entry: ModelEntry, meta: dict[str, Any]) -> Path:
    """Write ``entry`` into ``out/manifest.json``, keeping the other models already listed."""
    others: list[ModelEntry] = []
    if (out / "manifest.json").exists():
        try:
            others = [m for m in load_manifest(out).models if m.id != entry.id]
        except Exception as exc:  # an unreadable manifest is replaced, loudly
            print(f"warning: replacing unreadable {out / 'manifest.json'} ({exc})", file=sys.stderr)
    return write_manifest(out, [*others, entry], meta)


def split_windows(windows: WindowSet, val_subjects: Sequence[int]) -> dict[str, WindowSet]:
    split = make_subject_split(set(windows.subject.tolist()), val_subjects, TEST_SUBJECTS)
    parts = {
        "train": windows.of_subjects(split.train),
        "val": windows.of_subjects(split.val),
        "test": windows.of_subjects(split.test),
    }
    for name, ws in parts.items():
        print(f"{name:5s} {len(ws):5d} windows, subjects {sorted(set(ws.subject.tolist()))}")
    print(f"train+val {len(parts['train']) + len(parts['val'])} windows (paper protocol: ~7,100)")
    return parts


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)
    started = time.time()

    subjects = SMOKE_SUBJECTS if args.smoke else None
    experiments, source = load_experiments(args.data, subjects)
    print(f"data: {len(experiments)} experiments from {source}")
    windows = cut_windows(experiments, PROTOCOL, ACTIVITIES)
    parts = split_windows(windows, DEFAULT_VAL_SUBJECTS)
    tr, va, te = parts["train"], parts["val"], parts["test"]

    norm = Normalizer.fit(tr.x)
    model = CNN1d(CNNConfig(in_channels=len(CHANNELS), n_classes=len(ACTIVITIES)))
    best_epoch, val_acc, history = train(model, tr.x, tr.y, va.x, va.y, norm, cfg)
    print(f"best epoch {best_epoch}: val accuracy {val_acc:.4f}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, out / f"{MODEL_ID}.onnx", (1, PROTOCOL.length, len(CHANNELS)))
    sess = session(onnx_path, threads=1)
    test_x = norm(te.x)
    diff = max_abs_diff(model, sess, test_x[:256])
    print(f"ONNX Runtime vs PyTorch: max |logit diff| = {diff:.3g} over {min(256, len(te))} windows")

    pred = ort_logits(sess, test_x).argmax(1)
    n = len(ACTIVITIES)
    acc = metrics.accuracy(te.y, pred)
    f1 = metrics.f1_weighted(te.y, pred, n)
    recall = metrics.per_class_recall(te.y, pred, n)
    torch_acc = evaluate_torch(model, torch.from_numpy(test_x), te.y)
    macs, params = count_macs_params(model, (1, PROTOCOL.length, len(CHANNELS)))
    lat = latency_ms(sess, test_x[:1], runs=50 if args.smoke else 500)
    board = board_name()

    entry = ModelEntry(
        id=MODEL_ID,
        file=onnx_path.name,
        sha256=sha256_file(onnx_path),
        family="baseline",
        input=InputSpec(
            name=INPUT_NAME,
            layout="NTC",
            length=PROTOCOL.length,
            rate_hz=PROTOCOL.rate_hz,
            hop=PROTOCOL.hop,
            channels=CHANNELS,
            units=UNITS,
        ),
        labels=ACTIVITIES,
        normalization=norm,
        width=1.0,
        resolution=PROTOCOL.length,
        macs=macs,
        params=params,
        file_bytes=onnx_path.stat().st_size,
        metrics={
            "accuracy": round(acc, 6),
            "f1_weighted": round(f1, 6),
            "test_windows": len(te),
            "train_windows": len(tr),
            "val_windows": len(va),
            "val_accuracy": round(val_acc, 6),
            "test_subjects": sorted(set(te.subject.tolist())),
            "val_subjects": sorted(set(va.subject.tolist())),
            "per_class_recall": {
                c: round(float(r), 6) for c, r in zip(ACTIVITIES, recall, strict=True)
            },
            "evaluated_with": "onnxruntime",
            "torch_accuracy": round(torch_acc, 6),
            "smoke": bool(args.smoke),
        },
        latency_ms={
            "p50": lat["p50"],
            "p90": lat["p90"],
            "runs": lat["runs"],
            "board": board,
            "threads": 1,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        provenance={
            "command": "python -m tools.train_baseline " + " ".join(args.argv),
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "best_epoch": best_epoch,
            "train_config": asdict(cfg),
            "model_config": asdict(model.cfg),
            "dataset": f"UCI HAPT (CC BY 4.0), {source}",
            "torch": torch.__version__,
            "git_commit": git_commit(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "train_seconds": round(time.time() - started, 1),
        },
    )
    meta = {
        "generator": "tools.train_baseline",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rebuild": REBUILD,
    }
    manifest = register(out, entry, meta)
    print(
        f"test (ONNX Runtime, {len(te)} windows): accuracy {acc:.4f}, weighted F1 {f1:.4f} "
        f"(torch accuracy {torch_acc:.4f})"
    )
    print("per-class recall: " + ", ".join(f"{c} {r:.3f}" for c, r in zip(ACTIVITIES, recall, strict=True)))
    print(f"MACs {macs:,}, params {params:,}, file {entry.file_bytes:,} bytes")
    print(f"latency p50 {lat['p50']:.4f} ms (p90 {lat['p90']:.4f}, 1 thread, {lat['runs']} runs) on {board}")
    print(f"wrote {onnx_path} and {manifest} in {time.time() - started:.0f} s")
    return {"entry": entry, "max_abs_diff": diff, "history": history, "manifest": manifest}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.train_baseline", description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (40; smoke: 1)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (0)")
    ap.add_argument("--out", type=Path, default=None, help="model bank folder (models; smoke: build/smoke)")
    ap.add_argument("--data", type=Path, default=Path("data/hapt"), help="imported recordings (data/hapt)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, 1 epoch (CI)")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.epochs is None:
        args.epochs = 1 if args.smoke else TrainConfig.epochs
    if args.out is None:
        args.out = Path("build/smoke") if args.smoke else Path("models")
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
