"""Inference engines: one protocol, the ONNX Runtime adapter, and the classifier around it.

The adapter is the only place that touches onnxruntime. It checks the model file against the
manifest (sha256, input name and shape) before it is used, maps ONNX Runtime errors to
:class:`ModelError`, and runs with explicit thread counts and spinning set from the profile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.errors import ModelError
from agent.manifest import ModelEntry

_EXTERNAL_DATA_MARK = b"\n\x08location\x12"
"""How a TensorProto's ``external_data`` entry ``{key: "location", value: ...}`` is serialised."""


class Engine(Protocol):
    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one input batch; return the first output (logits)."""


@dataclass(frozen=True)
class SessionSettings:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = False


def session_options(settings: SessionSettings) -> Any:
    """ONNX Runtime session options for ``settings`` (what the agent and ``bench`` both use)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings.intra_op_threads
    opts.inter_op_num_threads = settings.inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if settings.allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


class OrtEngine:
    """An ONNX Runtime CPU session for one bank member."""

    def __init__(self, path: Path, entry: ModelEntry, settings: SessionSettings) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelError(f"{path}: model file is missing (model {entry.id!r})")
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from exc
        digest = hashlib.sha256(blob).hexdigest()
        if digest != entry.sha256:
            raise ModelError(
                f"{path}: sha256 {digest[:12]}... does not match the manifest's "
                f"{entry.sha256[:12]}... (model {entry.id!r}); refusing to load it"
            )
        if _EXTERNAL_DATA_MARK in blob:
            raise ModelError(f"{path}: the model refers to external data files, which are refused")
        opts = session_options(settings)
        try:
            # from the verified bytes, not the path: what runs is what was hashed, and a model
            # that points at external data files cannot reach the filesystem
            self._session = ort.InferenceSession(
                blob, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            if "external" in text.lower():
                raise ModelError(
                    f"{path}: the model refers to external data files, which are refused"
                ) from exc
            raise ModelError(f"{path}: ONNX Runtime cannot load the model ({first})") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != entry.input.name:
            names = [i.name for i in inputs]
            raise ModelError(
                f"{path}: model inputs {names} do not match the manifest's {entry.input.name!r}"
            )
        shape = tuple(inputs[0].shape)
        want = entry.input.shape
        if len(shape) != len(want) or any(
            isinstance(s, int) and s != w for s, w in zip(shape, want, strict=False)
        ):
            raise ModelError(f"{path}: model input shape {list(shape)} does not fit {list(want)}")
        self._input = entry.input.name
        self._output = self._session.get_outputs()[0].name
        self.entry = entry

    @property
    def session(self) -> Any:
        """The underlying ``onnxruntime.InferenceSession`` (``har-agent bench`` times it bare)."""
        return self._session

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self._session.run([self._output], {self._input: x})
        except Exception as exc:
            raise ModelError(f"model {self.entry.id!r}: inference failed ({exc})") from exc
        return np.asarray(out[0], dtype=np.float32)


def to_model_input(window: np.ndarray, layout: str) -> np.ndarray:
    """Turn a normalised [T, C] window into the model's batch-1 input for ``layout``."""
    if layout == "NTC":
        return window[None, :, :]
    if layout == "NCT":
        return np.ascontiguousarray(window.T)[None, :, :]
    if layout == "N1TC":
        return window[None, None, :, :]
    raise ModelError(f"unknown input layout {layout!r}")


def softmax(logits: np.ndarray) -> np.ndarray:
    e: np.ndarray = np.exp(logits - logits.max())
    e /= e.sum()
    return e


@dataclass(frozen=True)
class Classification:
    probs: np.ndarray
    index: int
    infer_s: float
    """Time spent inside the engine's ``run`` (session.run)."""


class Classifier:
    """Normalise a window, run the engine, return class probabilities and the engine time."""

    def __init__(self, entry: ModelEntry, engine: Engine, perf: Callable[[], float]) -> None:
        self.entry = entry
        self.engine = engine
        self._perf = perf
        self._n_classes = len(entry.labels)

    def classify(self, window: np.ndarray) -> Classification:
        x = to_model_input(self.entry.normalization(window), self.entry.input.layout)
        t0 = self._perf()
        logits = self.engine.run(x)
        infer_s = self._perf() - t0
        flat = logits.reshape(-1)
        if flat.shape[0] != self._n_classes:
            raise ModelError(
                f"model {self.entry.id!r} returned {flat.shape[0]} outputs for "
                f"{self._n_classes} labels"
            )
        probs = softmax(flat)
        return Classification(probs=probs, index=int(probs.argmax()), infer_s=infer_s)
