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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.regular_file import NotARegularFile, open_regular
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
        mid = raw.get("id")
        if isinstance(mid, str) and mid and len(mid) <= 128 and mid.isprintable():
            where = f"{where} ({mid})"  # name the member, not only its position
        try:
            inp = _obj(raw["input"], "input", where)
            norm = _obj(raw["normalization"], "normalization", where)
            spec = InputSpec(
                name=_text(inp["name"], "input.name", where),
                layout=_text(inp["layout"], "input.layout", where),
                length=_count(inp["length"], "input.length", where, 1, MAX_WINDOW),
                rate_hz=_rate(inp["rate_hz"], where),
                hop=_count(inp["hop"], "input.hop", where, 1, MAX_WINDOW),
                channels=_texts(inp["channels"], "input.channels", where),
                units=_texts(inp["units"], "input.units", where),
            )
            entry = cls(
                id=_text(raw["id"], "id", where),
                file=_file_name(raw["file"], where),
                sha256=_text(raw["sha256"], "sha256", where),
                family=_text(raw["family"], "family", where),
                input=spec,
                labels=_texts(raw["labels"], "labels", where),
                normalization=Normalizer(
                    _stats(norm["mean"], "normalization.mean", where, std=False),
                    _stats(norm["std"], "normalization.std", where, std=True),
                ),
                width=_number(raw.get("width", 1.0), "width", where, 0.0, 1e6, low_open=True),
                resolution=_count(raw.get("resolution", spec.length), "resolution", where),
                macs=_count(raw.get("macs", 0), "macs", where),
                params=_count(raw.get("params", 0), "params", where),
                file_bytes=_count(raw.get("file_bytes", 0), "file_bytes", where),
                metrics=_figures(raw.get("metrics", {}), "metrics", _METRIC_RANGES, where),
                latency_ms=_figures(
                    raw.get("latency_ms", {}), "latency_ms", _LATENCY_RANGES, where
                ),
                provenance=_obj(raw.get("provenance", {}), "provenance", where),
            )
        except ModelError:
            raise
        except KeyError as exc:
            raise ModelError(f"{where}: malformed model entry (missing key {exc})") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"{where}: malformed model entry ({type(exc).__name__}: {exc})"
            ) from exc
        except Exception as exc:  # DataError from Normalizer/WindowSpec validation
            raise ModelError(f"{where}: invalid model entry ({exc})") from exc
        if spec.layout not in LAYOUTS:
            raise ModelError(f"{where}: input layout {spec.layout!r} is not one of {LAYOUTS}")
        if not spec.channels:
            raise ModelError(f"{where}: input.channels must name at least one channel")
        if not entry.labels:
            raise ModelError(f"{where}: labels must name at least one class")
        if len(spec.units) != len(spec.channels):
            raise ModelError(f"{where}: input channels and units differ in length")
        if len(entry.normalization.mean) != len(spec.channels):
            raise ModelError(f"{where}: normalisation does not match the input channels")
        return entry


MAX_WINDOW = 100_000
"""Most samples in a window (and in a hop): the window buffers are allocated up front."""
RATE_RANGE_HZ = (1.0, 10_000.0)
"""Model input rates the agent accepts: the resampler and the replay's pacing divide by it, and
a rate far above any IMU's makes the resampler produce that many samples per second."""
MAX_FILE_NAME_BYTES = 255
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)
"""The largest float32, and the smallest positive normal one."""
# figures the agent reads (others are free-form): (low, high) bounds, both inclusive
_METRIC_RANGES: dict[str, tuple[float, float]] = {"accuracy": (0.0, 1.0), "f1_weighted": (0.0, 1.0)}
_LATENCY_RANGES: dict[str, tuple[float, float]] = {
    "p50": (0.0, 3.6e6),
    "p90": (0.0, 3.6e6),
    "paced_p50": (0.0, 3.6e6),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _obj(value: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelError(f"{where}: {key} must be a JSON object (got {type(value).__name__})")
    return value


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ModelError(f"{where}: {key} must be a string (got {type(value).__name__})")
    if "\x00" in value:
        raise ModelError(f"{where}: {key} must not contain a NUL character")
    return value


def _texts(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ModelError(f"{where}: {key} must be a list of strings (got {type(value).__name__})")
    return tuple(_text(v, f"{key}[{i}]", where) for i, v in enumerate(value))


def _file_name(value: Any, where: str) -> str:
    name = _text(value, "file", where)
    if (
        not name
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES
    ):
        shown = name if len(name) <= 80 else f"{name[:60]}... ({len(name)} characters)"
        raise ModelError(
            f"{where}: model file {shown!r} must be a plain file name "
            f"(no '/', '\\' or leading '.', at most {MAX_FILE_NAME_BYTES} bytes)"
        )
    return name


def _count(value: Any, key: str, where: str, low: int = 0, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(
            f"{where}: {key} must be an integer (got {type(value).__name__} {value!r})"
        )
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ModelError(f"{where}: {key} must be {bound} (got {value})")
    return value


def _number(
    value: Any, key: str, where: str, low: float, high: float, low_open: bool = False
) -> float:
    if not _is_number(value):
        raise ModelError(f"{where}: {key} must be a number (got {type(value).__name__} {value!r})")
    x = float(value)  # (an int too large for a float raises OverflowError: caught as malformed)
    if not math.isfinite(x) or not (low < x if low_open else low <= x) or not x <= high:
        side = "(" if low_open else "["
        raise ModelError(
            f"{where}: {key} must be a finite number in {side}{low:g}, {high:g}] (got {value!r})"
        )
    return x


def _rate(value: Any, where: str) -> float:
    lo, hi = RATE_RANGE_HZ
    if not _is_number(value) or not lo <= float(value) <= hi:  # NaN fails the comparison
        raise ModelError(
            f"{where}: input.rate_hz must be a number of Hz between {lo:g} and {hi:g} "
            f"(got {value!r})"
        )
    return float(value)


def _stats(value: Any, key: str, where: str, std: bool) -> tuple[float, ...]:
    """Normalisation statistics: finite numbers that stay finite as float32 (the hot path's
    type); a std must be a positive normal float32, or 1/std overflows and every window
    normalises to the same saturated input (constant predictions)."""
    if not isinstance(value, list):
        raise ModelError(f"{where}: {key} must be a list of numbers (got {type(value).__name__})")
    out: list[float] = []
    for i, v in enumerate(value):
        x = float(v) if _is_number(v) else math.nan
        if not _is_number(v) or not math.isfinite(x) or abs(x) > _F32_MAX:
            raise ModelError(
                f"{where}: {key}[{i}] must be a finite number within float32 range (got {v!r})"
            )
        if std and not x >= _F32_TINY:
            raise ModelError(
                f"{where}: {key}[{i}] must be a positive number of at least "
                f"{_F32_TINY:.3g} (a normal float32; got {v!r})"
            )
        out.append(x)
    return tuple(out)


def _figures(
    value: Any, key: str, ranges: dict[str, tuple[float, float]], where: str
) -> dict[str, Any]:
    """A free-form figures object whose fields the agent reads must be numbers."""
    body = dict(_obj(value, key, where))
    for name, (lo, hi) in ranges.items():
        if name in body:
            body[name] = _number(body[name], f"{key}.{name}", where, lo, hi)
    return body


def known_ids(ids: list[str], shown: int = 3) -> str:
    """A short hint at what a bank holds, for a message about an id it does not: the first
    few ids, how many in all, and where to see them (a bank has dozens of members)."""
    if not ids:
        return "it lists no models"
    more = f", ... {len(ids)} in all" if len(ids) > shown else ""
    return f"known: {', '.join(ids[:shown])}{more}; see `har-agent models list`"


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: tuple[ModelEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def get(self, model_id: str) -> ModelEntry:
        for m in self.models:
            if m.id == model_id:
                return m
        raise ModelError(
            f"model {model_id!r} is not in {self.root / 'manifest.json'} "
            f"({known_ids([m.id for m in self.models])})"
        )

    def path_of(self, entry: ModelEntry) -> Path:
        return self.root / entry.file


def load_manifest(models_dir: str | Path) -> Manifest:
    root = Path(models_dir)
    path = root / "manifest.json"
    try:
        with open_regular(path) as fh:
            raw = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError as exc:
        why = (
            f"there is no folder {root}"
            if not root.is_dir()
            else "build the bank: python -m tools.bank.build"
        )
        raise ModelError(f"{path}: no model manifest ({why})") from exc
    except NotARegularFile as exc:
        raise ModelError(f"{exc}; expected the manifest file") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from exc
    except RecursionError:  # arrays nested some thousands deep
        raise ModelError(f"{path}: unreadable manifest (JSON nested too deeply)") from None
    if not isinstance(raw, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
        what = kind.get(type(raw), "a number")
        raise ModelError(f"{path}: not a model manifest (a JSON object expected, got {what})")
    if raw.get("manifest_version") != MANIFEST_VERSION:
        got = raw.get("manifest_version")
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
    """The file's sha256 (:func:`open_regular`: a regular file only)."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
