"""Train the baseline 1-D CNN on UCI HAPT, export it to ONNX and register it in models/.

    python -m tools.import_hapt && python -m tools.train_baseline     # the real model
    python -m tools.train_baseline --smoke --out build/smoke          # seconds, for CI

Protocol (docs/training.md): 50 Hz, 128-sample windows, hop 64, the six activities, windows whose
samples all carry one label; test = the UCI-HAR test subjects, never used for any choice.
Two stages: (1) *selection*: train the recipe on 17 train subjects and measure it on 4 held-out
validation subjects (this is where the recipe was chosen); (2) *refit*: train the same recipe
on all 21 train subjects and ship that model (``--no-refit`` ships stage 1's instead). Data come
from ``data/hapt`` when it holds all 61 imported recordings, else straight from the package's
pickle (the same samples, read by tools.hapt).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agent.manifest import InputSpec, ModelEntry, sha256_file, write_manifest
from agent.windowing import Normalizer, WindowSpec
from tools import metrics
from tools.bank.derived import warn_stale
from tools.bank.staging import bank_lock, check_writable, existing_manifest, staged_bank
from tools.cli import (
    ArgumentParser,
    add_bank_option,
    plural,
    positive_int,
    run_main,
    seed,
)
from tools.data import (
    DEFAULT_VAL_SUBJECTS,
    PROTOCOL,
    WindowSet,
    add_data_argument,
    cut_windows,
    load_experiments,
)
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
from tools.hapt import ACTIVITIES, CHANNELS, TEST_SUBJECTS, UNITS, Experiment
from tools.models import CNN1d, CNNConfig, count_macs_params
from tools.provenance import git_commit
from tools.train import TrainConfig, TrainResult, predict, seed_everything, train

MODEL_ID = "cnn1d-base"
REBUILD = "python -m tools.import_hapt && python -m tools.train_baseline"
SMOKE_SUBJECTS = (1, 3, 5, 2)  # train 1, 3; validation 5; test 2


def fit_model(
    experiments: Sequence[Experiment],
    windows: WindowSet,
    cfg: TrainConfig,
    val: WindowSet | None = None,
) -> tuple[CNN1d, Normalizer, WindowSet, TrainResult]:
    """Train a fresh, seeded CNN on the subjects of ``windows``; the normaliser is fitted on
    ``windows`` (hop 64) and gradient steps see the same subjects' windows at ``cfg.train_hop``."""
    seed_everything(cfg.seed)
    fit = windows
    if cfg.train_hop != PROTOCOL.hop:
        subjects = set(windows.subject.tolist())
        dense = WindowSpec(PROTOCOL.length, cfg.train_hop, PROTOCOL.rate_hz)
        fit = cut_windows([e for e in experiments if e.subject in subjects], dense, ACTIVITIES)
    subjects_used = sorted(set(fit.subject.tolist()))
    print(f"fit on {len(fit)} windows (hop {cfg.train_hop}) of subjects {subjects_used}")
    norm = Normalizer.fit(windows.x)
    model = CNN1d(CNNConfig(in_channels=len(CHANNELS), n_classes=len(ACTIVITIES)))
    result = train(
        model,
        fit.x,
        fit.y,
        norm,
        cfg,
        val=(val.x, val.y) if val is not None else None,
    )
    return model, norm, fit, result


def register(out: Path, entry: ModelEntry, meta: dict[str, Any], shown: Path | None = None) -> Path:
    """Write ``entry`` into ``out/manifest.json``, keeping the other models already listed and,
    in a bank, its metadata (the baseline is one member: ``baseline_at`` records it).
    ``shown``: the folder the user named, when ``out`` is its working copy (warnings name it)."""
    others: list[ModelEntry] = []
    # an unreadable manifest is refused (SystemExit), never replaced: the run checked it when
    # it started (existing_manifest), before the training
    old = existing_manifest(out)
    if old is not None:
        others = [m for m in old.models if m.id != entry.id]
        if others:
            kept = {k: v for k, v in old.meta.items() if k != "manifest_version"}
            meta = {
                **kept,
                "baseline_by": meta.get("generator"),
                "baseline_at": meta.get("generated_at"),
            }
    models = [*others, entry]
    warn_stale(models, out if shown is None else shown)
    return write_manifest(out, models, meta)


def split_windows(windows: WindowSet, val_subjects: Sequence[int]) -> dict[str, WindowSet]:
    """Train / val / test windows by subject (test = the UCI-HAR test subjects)."""
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
    """Hold the bank for the whole run (a second tool on it is refused before any work)."""
    with bank_lock(args.out):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    if args.smoke:  # protocol-hop training windows: a quarter of the work
        cfg = dataclasses.replace(cfg, train_hop=PROTOCOL.hop)
    torch.set_num_threads(cfg.threads)
    started = time.time()
    out: Path = args.out
    check_writable(out)  # before the training, not after it
    existing_manifest(out)  # an unreadable manifest is refused now, not replaced at the end

    subjects = SMOKE_SUBJECTS if args.smoke else None
    experiments, source = load_experiments(args.data, subjects)
    print(f"data: {len(experiments)} experiments from {source}")
    windows = cut_windows(experiments, PROTOCOL, ACTIVITIES)
    parts = split_windows(windows, DEFAULT_VAL_SUBJECTS)
    tr, va, te = parts["train"], parts["val"], parts["test"]

    print("stage 1 (selection): train subjects -> validation subjects")
    model, norm, fit, result = fit_model(experiments, tr, cfg, val=va)
    val_acc = result.val_accuracy if result.val_accuracy is not None else float("nan")
    print(f"validation accuracy {val_acc:.4f} after {plural(result.epochs_run, 'epoch')}")
    if args.refit:
        print("stage 2 (refit): train + validation subjects")
        model, norm, fit, _ = fit_model(experiments, tr.merge(va), cfg)
    trained_on = tr.merge(va) if args.refit else tr

    with staged_bank(out, locked=True) as work:  # the bank changes all at once, or not at all
        onnx_path = export_onnx(
            model, work / f"{MODEL_ID}.onnx", (1, PROTOCOL.length, len(CHANNELS))
        )
        sess = session(onnx_path, threads=1)
        test_x = norm(te.x)
        diff = max_abs_diff(model, sess, test_x[:256])
        print(f"ONNX Runtime vs PyTorch: max |logit diff| {diff:.3g} ({min(256, len(te))} windows)")

        pred = ort_logits(sess, test_x).argmax(1)
        n = len(ACTIVITIES)
        acc = metrics.accuracy(te.y, pred)
        f1 = metrics.f1_weighted(te.y, pred, n)
        recall = metrics.per_class_recall(te.y, pred, n)
        torch_acc = metrics.accuracy(te.y, predict(model, torch.from_numpy(test_x)))
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
                "train_windows": len(trained_on),
                "fit_windows": len(fit),
                "val_windows": len(va),
                "val_accuracy": round(val_acc, 6),
                "val_note": (
                    "stage-1 model (same recipe, train subjects without the validation subjects)"
                    + (
                        "; the shipped model is refit on train + validation subjects"
                        if args.refit
                        else ""
                    )
                ),
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
                "command": " ".join(["python -m tools.train_baseline", *args.argv]),
                "seed": cfg.seed,
                "epochs": cfg.epochs,
                "refit": bool(args.refit),
                "train_config": asdict(cfg),
                "model_config": asdict(CNNConfig()),
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
        register(work, entry, meta, shown=out)
    onnx_path, manifest = out / onnx_path.name, out / "manifest.json"
    print(
        f"test (ONNX Runtime, {len(te)} windows): accuracy {acc:.4f}, weighted F1 {f1:.4f} "
        f"(torch accuracy {torch_acc:.4f})"
    )
    pairs = zip(ACTIVITIES, recall, strict=True)
    print("per-class recall: " + ", ".join(f"{c} {r:.3f}" for c, r in pairs))
    print(f"MACs {macs:,}, params {params:,}, file {entry.file_bytes:,} bytes")
    print(
        f"latency p50 {lat['p50']:.4f} ms (p90 {lat['p90']:.4f}, 1 thread, "
        f"{lat['runs']} runs) on {board}"
    )
    print(f"wrote {onnx_path} and {manifest} in {time.time() - started:.0f} s")
    return {"entry": entry, "max_abs_diff": diff, "val": result, "manifest": manifest}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog="python -m tools.train_baseline",
        description="Train the baseline 1-D CNN on UCI HAPT and register it in the model bank.",
        epilog="Writes OUT/cnn1d-base.onnx and its entry in OUT/manifest.json; a full run takes "
        "about 10 min on a 2-core VM (--smoke: seconds). docs/training.md",
    )
    ap.add_argument(
        "--epochs", type=positive_int, default=None, help="training epochs (12; smoke: 1)"
    )
    ap.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (0)")
    add_bank_option(
        ap,
        "model bank folder (models; smoke: build/smoke); --bank as in tools.bank's commands",
    )
    add_data_argument(ap)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 subjects, 1 epoch (CI)")
    ap.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="ship the stage-1 model instead of refitting on train + validation subjects",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    if args.epochs is None:
        args.epochs = 1 if args.smoke else TrainConfig.epochs
    if args.out is None:
        args.out = Path("build/smoke") if args.smoke else Path("models")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
