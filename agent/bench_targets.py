"""What ``har-agent bench`` measures: bank members or ONNX files, and their opened sessions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ModelError
from agent.inference import SessionSettings, refuse_external_data, session_options
from agent.manifest import Manifest, ModelEntry
from agent.onnx_params import params_of_file


@dataclass(frozen=True)
class Target:
    """A bank member (``entry`` set) or an ONNX file outside the manifest."""

    name: str
    path: Path
    entry: ModelEntry | None = None


def resolve_targets(spec: str, manifest: Manifest | None) -> list[Target]:
    """``all``, a manifest id, or a path to an ``.onnx`` file."""
    if spec == "all":
        if manifest is None or not manifest.models:
            raise ModelError("no models in the bank to benchmark ('all')")
        return [Target(e.id, manifest.path_of(e), e) for e in manifest.models]
    if manifest is not None and any(e.id == spec for e in manifest.models):
        e = manifest.get(spec)
        return [Target(e.id, manifest.path_of(e), e)]
    path = Path(spec)
    if path.suffix == ".onnx" or path.exists() or "/" in spec:
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return [Target(path.name, path)]
    if manifest is None:
        raise ModelError(f"model {spec!r}: no manifest to look it up in, and no such file")
    manifest.get(spec)  # raises: not in the manifest, with the known ids
    raise AssertionError("unreachable")


# -- opening a session -----------------------------------------------------------------------


@dataclass
class Loaded:
    session: Any
    input_name: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    load_s: float
    """Reading the file, verifying it (bank members: sha256 against the manifest) and creating
    the ONNX Runtime session."""
    file_bytes: int
    params: int | None
    sha_checked: bool


def load_target(target: Target, settings: SessionSettings) -> Loaded:
    t0 = time.perf_counter()
    if target.entry is not None:
        from agent.inference import OrtEngine

        engine = OrtEngine(target.path, target.entry, settings)  # sha256, input name and shape
        session = engine.session
        load_s = time.perf_counter() - t0
        blob_size = target.path.stat().st_size
        shape = target.entry.input.shape
        params: int | None = target.entry.params or params_of_file(target.path)
    else:
        session, load_s = _open_file(target.path, settings, t0)
        blob_size = target.path.stat().st_size
        shape = _concrete_shape(session, target.path)
        params = params_of_file(target.path)
    return Loaded(
        session=session,
        input_name=session.get_inputs()[0].name,
        input_shape=shape,
        output_names=[session.get_outputs()[0].name],
        load_s=load_s,
        file_bytes=blob_size,
        params=params,
        sha_checked=target.entry is not None,
    )


def _open_file(path: Path, settings: SessionSettings, t0: float) -> tuple[Any, float]:
    import onnxruntime as ort

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from exc
    refuse_external_data(path, blob)
    try:
        session = ort.InferenceSession(
            blob, sess_options=session_options(settings), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ModelError(f"{path}: ONNX Runtime cannot load the model ({first})") from exc
    return session, time.perf_counter() - t0


def _concrete_shape(session: Any, path: Path) -> tuple[int, ...]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: bench feeds models with one input, this one has {len(inputs)}")
    if inputs[0].type != "tensor(float)":
        raise ModelError(f"{path}: bench feeds float32 inputs, this model wants {inputs[0].type}")
    # symbolic dimensions (a batch axis named "N") become 1
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in inputs[0].shape)
