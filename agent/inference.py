"""Inference engines: one protocol, the ONNX Runtime adapter, and the classifier around it.

Only the adapter touches onnxruntime in the pipeline. It checks the model file against the
manifest (sha256, input name and shape) before it is used, maps ONNX Runtime errors to
:class:`ModelError`, and runs with explicit thread counts and spinning set from the profile.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from math import exp
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.errors import ModelError
from agent.manifest import ModelEntry
from agent.onnx_params import ProtobufError, refers_to_external_data
from agent.regular_file import NotARegularFile, open_regular

_FLOAT32 = np.dtype(np.float32)

# A finite sample far out of range (3e38 in a recording) overflows the normalisation to inf; the
# model then gives NaN and the pipeline rejects the window, logging it once. numpy's own warning
# would add a line without context; np.errstate around every fill would cost a microsecond a
# window, so only that warning, from this module, is silenced.
warnings.filterwarnings(
    "ignore", "overflow encountered in (multiply|subtract)", RuntimeWarning, r"agent\.inference"
)


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


def verified_bytes(path: Path, entry: ModelEntry) -> bytes:
    """The model file's bytes, if they are the manifest's (sha256); ModelError otherwise."""
    try:
        with open_regular(path) as fh:  # a FIFO or /dev/zero is refused, not read
            blob = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        raise ModelError(f"{path}: model file is missing (model {entry.id!r})") from None
    except NotARegularFile as exc:
        raise ModelError(f"{exc} (model {entry.id!r})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry.sha256:
        raise ModelError(
            f"{path}: sha256 {digest[:12]}... does not match the manifest's "
            f"{entry.sha256[:12]}... (model {entry.id!r}); refusing to load it"
        )
    return blob


def refuse_external_data(path: Path, blob: bytes) -> None:
    """ModelError if any tensor of the model (initializers, attribute tensors, subgraphs, function
    bodies) refers to external data files, or if the bytes are not a well-formed protobuf."""
    try:
        external = refers_to_external_data(blob)
    except ProtobufError as exc:
        raise ModelError(
            f"{path}: ONNX Runtime cannot load the model (not a well-formed ONNX protobuf: {exc})"
        ) from None
    if external:
        raise ModelError(f"{path}: the model refers to external data files, which are refused")


class OrtEngine:
    """An ONNX Runtime CPU session for one bank member."""

    def __init__(self, path: Path, entry: ModelEntry, settings: SessionSettings) -> None:
        import onnxruntime as ort

        blob = verified_bytes(path, entry)
        refuse_external_data(path, blob)
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


def softmax_values(logits: list[float]) -> list[float]:
    """Softmax of a few logits in Python floats (float64), the classifier's per-window path.

    For six classes a numpy softmax is five calls of 1-3 µs each; this is a third of that time
    and more precise than the float32 numpy version it replaced (probabilities agree within a
    few float32 ulps; the payload prints four decimals). A NaN logit makes every probability
    NaN, as numpy's would, and so does a +inf one (inf - inf); -inf logits get probability 0.
    """
    # Python's max is not numpy's when a NaN is there (it is NaN only when the NaN comes
    # first), but either way the NaN reaches the sum and every probability is NaN, as numpy
    # gives; otherwise it is the largest logit, so ``v - top <= 0`` and exp cannot overflow
    top = max(logits)
    ex = [exp(v - top) for v in logits]
    total = sum(ex)
    return [v / total for v in ex]


class InputBuffer:
    """The model's batch-1 input, allocated once and filled in one pass per window.

    ``fill`` normalises a [T, C] window straight into the buffer in the model's layout: the same
    float32 operations as ``to_model_input(normalizer(window), layout)`` (identical values), with
    the statistics broadcast to full [T, C] arrays up front so each operation is one contiguous
    loop instead of one per sample. The buffer is reused: whoever needs the input after the next
    ``fill`` must copy it.
    """

    def __init__(self, entry: ModelEntry) -> None:
        spec = entry.input
        t, c = spec.length, len(spec.channels)
        norm = entry.normalization
        if len(norm.mean) != c:
            raise ModelError(
                f"model {entry.id!r}: normalisation has {len(norm.mean)} channels, input {c}"
            )
        mean = np.asarray(norm.mean, dtype=np.float32)
        inv_std = (1.0 / np.asarray(norm.std)).astype(np.float32)
        self.shape = (t, c)
        self._norm = norm
        self._layout = spec.layout
        self.array = np.zeros(spec.shape, dtype=np.float32)
        if spec.layout == "NCT":
            # write the transposed window into the [C, T] buffer: contiguous output rows
            self._out = self.array[0]
            self._mean = np.ascontiguousarray(np.broadcast_to(mean[:, None], (c, t)))
            self._scale = np.ascontiguousarray(np.broadcast_to(inv_std[:, None], (c, t)))
            self._transpose = True
        elif spec.layout in ("NTC", "N1TC"):
            self._out = self.array.reshape(t, c)
            self._mean = np.ascontiguousarray(np.broadcast_to(mean, (t, c)))
            self._scale = np.ascontiguousarray(np.broadcast_to(inv_std, (t, c)))
            self._transpose = False
        else:
            raise ModelError(f"unknown input layout {spec.layout!r}")

    def fill(self, window: np.ndarray) -> np.ndarray:
        # (``is``: comparing a dtype with the float32 type costs a conversion each time; a
        # float32 dtype that is not the canonical one just takes the reference path)
        if window.dtype is not _FLOAT32 or window.shape != self.shape:
            # not a window the agent cuts: the reference path (float64 rounds differently)
            return to_model_input(self._norm(window), self._layout)
        out = self._out
        np.subtract(window.T if self._transpose else window, self._mean, out=out)
        np.multiply(out, self._scale, out=out)
        return self.array


class NonFiniteOutputs(Exception):
    """The model's outputs for a window hold NaN or Inf (finite samples so far out of range that
    their normalisation overflows float32): the window has no prediction."""


@dataclass(slots=True)
class Classification:
    values: list[float]
    """Class probabilities as Python floats (what the payload and the smoother use)."""
    index: int
    infer_s: float
    """Time spent inside the engine's ``run`` (session.run)."""

    @property
    def probs(self) -> np.ndarray:
        """``values`` as a float64 array."""
        return np.asarray(self.values, dtype=np.float64)


class Classifier:
    """Normalise a window, run the engine, return class probabilities and the engine time."""

    def __init__(self, entry: ModelEntry, engine: Engine, perf: Callable[[], float]) -> None:
        self.entry = entry
        self.engine = engine
        self._perf = perf
        self._n_classes = len(entry.labels)
        self._input = InputBuffer(entry)

    def classify(self, window: np.ndarray) -> Classification:
        x = self._input.fill(window)
        perf = self._perf
        t0 = perf()
        logits = self.engine.run(x)
        infer_s = perf() - t0
        flat = logits.reshape(-1)
        if flat.shape[0] != self._n_classes:
            raise ModelError(
                f"model {self.entry.id!r} returned {flat.shape[0]} outputs for "
                f"{self._n_classes} labels"
            )
        probs = softmax_values(flat.tolist())
        if probs[0] != probs[0]:  # NaN: a NaN or +inf logit makes every probability NaN
            raise NonFiniteOutputs(infer_s)
        # no NaN left: Python's max and index give numpy's argmax (the first largest)
        return Classification(probs, probs.index(max(probs)), infer_s)
