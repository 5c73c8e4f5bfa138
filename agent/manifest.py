"""The model bank manifest (``models/manifest.json``): what each ONNX model is and expects.

Written by tools/ when it builds the bank, read by the agent. Version 1 layout::

    {
      "manifest_version": 1,
      "generated_at": "...", "generator": "...",
      "models": [
        {
          "id": "cnn1d-w1.00-r128",
          "file": "cnn1d-w1.00-r128.onnx",
          "sha256": "...",
          "family": "baseline",                      # baseline | width-resolution | pruned | int8
          "input": {"name": "imu", "layout": "NTC", "length": 128, "rate_hz": 50.0,
                    "hop": 64, "channels": ["acc_x", ...], "units": ["g", ...]},
          "labels": ["WALKING", ...],
          "normalization": {"mean": [...], "std": [...]},
          "width": 1.0, "resolution": 128, "macs": 123, "params": 456, "file_bytes": 789,
          "metrics": {"accuracy": 0.95, "f1_weighted": 0.95, "test_windows": 2900, ...},
          "latency_ms": {"p50": 0.4, "board": "x86_64 ..."},
          "provenance": {"command": "...", "seed": 0, "dataset": "...", ...}
        }
      ]
    }

``layout`` tells how a [length, channels] window becomes the model input: ``NTC`` -> [1, T, C],
``NCT`` -> [1, C, T], ``N1TC`` -> [1, 1, T, C].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ModelError
from agent.windowing import Normalizer, WindowSpec

MANIFEST_VERSION = 1
LAYOUTS = ("NTC", "NCT", "N1TC")


@dataclass(frozen=True)
class InputSpec:
    name: str
    layout: str
    length: int
    rate_hz: float
    hop: int
    channels: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        c, t = len(self.channels), self.length
        return {"NTC": (1, t, c), "NCT": (1, c, t), "N1TC": (1, 1, t, c)}[self.layout]

    @property
    def window(self) -> WindowSpec:
        return WindowSpec(length=self.length, hop=self.hop, rate_hz=self.rate_hz)


@dataclass(frozen=True)
class ModelEntry:
    id: str
    file: str
    sha256: str
    family: str
    input: InputSpec
    labels: tuple[str, ...]
    normalization: Normalizer
    width: float = 1.0
    resolution: int = 0
    macs: int = 0
    params: int = 0
    file_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file": self.file,
            "sha256": self.sha256,
            "family": self.family,
            "input": {
                "name": self.input.name,
                "layout": self.input.layout,
                "length": self.input.length,
                "rate_hz": self.input.rate_hz,
                "hop": self.input.hop,
                "channels": list(self.input.channels),
                "units": list(self.input.units),
            },
            "labels": list(self.labels),
            "normalization": {
                "mean": list(self.normalization.mean),
                "std": list(self.normalization.std),
            },
            "width": self.width,
            "resolution": self.resolution,
            "macs": self.macs,
            "params": self.params,
            "file_bytes": self.file_bytes,
            "metrics": self.metrics,
            "latency_ms": self.latency_ms,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> ModelEntry:
        try:
            inp = raw["input"]
            spec = InputSpec(
                name=str(inp["name"]),
                layout=str(inp["layout"]),
                length=int(inp["length"]),
                rate_hz=float(inp["rate_hz"]),
                hop=int(inp["hop"]),
                channels=tuple(str(c) for c in inp["channels"]),
                units=tuple(str(u) for u in inp["units"]),
            )
            norm = raw["normalization"]
            entry = cls(
                id=str(raw["id"]),
                file=str(raw["file"]),
                sha256=str(raw["sha256"]),
                family=str(raw["family"]),
                input=spec,
                labels=tuple(str(x) for x in raw["labels"]),
                normalization=Normalizer(
                    tuple(float(x) for x in norm["mean"]), tuple(float(x) for x in norm["std"])
                ),
                width=float(raw.get("width", 1.0)),
                resolution=int(raw.get("resolution", spec.length)),
                macs=int(raw.get("macs", 0)),
                params=int(raw.get("params", 0)),
                file_bytes=int(raw.get("file_bytes", 0)),
                metrics=dict(raw.get("metrics", {})),
                latency_ms=dict(raw.get("latency_ms", {})),
                provenance=dict(raw.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"{where}: malformed model entry ({type(exc).__name__}: {exc})"
            ) from exc
        except Exception as exc:  # DataError from Normalizer/WindowSpec validation
            raise ModelError(f"{where}: invalid model entry ({exc})") from exc
        if spec.layout not in LAYOUTS:
            raise ModelError(f"{where}: input layout {spec.layout!r} is not one of {LAYOUTS}")
        if len(spec.units) != len(spec.channels):
            raise ModelError(f"{where}: input channels and units differ in length")
        if len(entry.normalization.mean) != len(spec.channels):
            raise ModelError(f"{where}: normalisation does not match the input channels")
        if "/" in entry.file or "\\" in entry.file or entry.file.startswith("."):
            raise ModelError(f"{where}: model file {entry.file!r} must be a plain file name")
        return entry


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: tuple[ModelEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def get(self, model_id: str) -> ModelEntry:
        for m in self.models:
            if m.id == model_id:
                return m
        known = ", ".join(m.id for m in self.models) or "none"
        raise ModelError(
            f"model {model_id!r} is not in {self.root / 'manifest.json'} (known: {known})"
        )

    def path_of(self, entry: ModelEntry) -> Path:
        return self.root / entry.file


def load_manifest(models_dir: str | Path) -> Manifest:
    root = Path(models_dir)
    path = root / "manifest.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: no model manifest (build the bank with tools/)") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("manifest_version") != MANIFEST_VERSION:
        got = raw.get("manifest_version") if isinstance(raw, dict) else None
        raise ModelError(
            f"{path}: manifest_version {got!r} is not supported (expected {MANIFEST_VERSION})"
        )
    entries = raw.get("models")
    if not isinstance(entries, list):
        raise ModelError(f"{path}: 'models' must be a list")
    models = tuple(
        ModelEntry.from_dict(e, f"{path}: models[{i}]") if isinstance(e, dict) else _bad(path, i)
        for i, e in enumerate(entries)
    )
    ids = [m.id for m in models]
    if len(set(ids)) != len(ids):
        raise ModelError(f"{path}: duplicate model ids")
    meta = {k: v for k, v in raw.items() if k != "models"}
    return Manifest(root=root, models=models, meta=meta)


def _bad(path: Path, i: int) -> ModelEntry:
    raise ModelError(f"{path}: models[{i}] is not an object")


def write_manifest(models_dir: str | Path, entries: list[ModelEntry], meta: dict[str, Any]) -> Path:
    """Write the manifest atomically (tools/ uses this; the agent only reads)."""
    root = Path(models_dir)
    path = root / "manifest.json"
    body = {"manifest_version": MANIFEST_VERSION, **meta, "models": [e.to_dict() for e in entries]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
