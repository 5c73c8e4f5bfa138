"""Fuzzed model manifests: every bad value is refused when the manifest loads, with one line that
names the member and the field, instead of silently wrong predictions, a hang or a traceback
later (replay, bench, ``models list``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import DataError, ModelError
from agent.manifest import load_manifest, sha256_file
from agent.regular_file import NotARegularFile
from agent.timing import hop_in_source_samples
from tests.agent.helpers import DEFAULT_PROFILE, MODELS, RECORDINGS, ROOT, one_line_error

runner = CliRunner()
Edit = Callable[[dict[str, Any]], None]


def _raw() -> dict[str, Any]:
    return dict(json.loads((MODELS / "manifest.json").read_text()))


def _write(folder: Path, raw: dict[str, Any]) -> Path:
    # json.dumps writes NaN and Infinity as Python's json reads them (not JSON, but accepted)
    (folder / "manifest.json").write_text(json.dumps(raw))
    return folder


def _bank(tmp_path: Path, edit: Edit) -> Path:
    """A copy of the committed bank (models and manifest) with the first member edited."""
    bank = tmp_path / "bank"
    shutil.copytree(MODELS, bank)
    raw = _raw()
    edit(raw["models"][0])
    return _write(bank, raw)


def _set(path: str, value: Any) -> Edit:
    """Set a dotted field of a member: ``_set("input.rate_hz", 0)``."""

    def edit(m: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            m = m[p]
        m[last] = value

    return edit


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, failing the test (not hanging it) when it takes longer than ``seconds``."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            out.append(exc)

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"still running after {seconds} s"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _stat(key: str, i: int, value: float) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["normalization"][key][i] = value

    return edit


NAN, INF = float("nan"), float("inf")
BAD_ENTRIES: dict[str, tuple[Edit, str]] = {
    # 1: normalisation that gives constant, silently wrong predictions
    "mean-nan": (_stat("mean", 0, NAN), "normalization.mean[0] must be a finite number"),
    "mean-inf": (_stat("mean", 1, INF), "normalization.mean[1] must be a finite number"),
    "mean-overflows-float32": (_stat("mean", 2, 1e300), "normalization.mean[2]"),
    "std-nan": (_stat("std", 0, NAN), "normalization.std[0] must be a finite number"),
    "std-inf": (_stat("std", 3, INF), "normalization.std[3] must be a finite number"),
    "std-subnormal": (_stat("std", 1, 1e-300), "normalization.std[1] must be a positive number"),
    "std-float32-subnormal": (_stat("std", 1, 1e-40), "(a normal float32"),
    "std-negative": (_stat("std", 5, -1.0), "normalization.std[5] must be a positive number"),
    "std-string": (_stat("std", 0, "1"), "normalization.std[0]"),  # type: ignore[arg-type]
    # 3: rates and hops
    "rate-zero": (_set("input.rate_hz", 0), "input.rate_hz must be a number of Hz between 1 and"),
    "rate-nan": (_set("input.rate_hz", NAN), "input.rate_hz must be a number of Hz"),
    "rate-inf": (_set("input.rate_hz", INF), "input.rate_hz must be a number of Hz"),
    "rate-huge": (_set("input.rate_hz", 1e9), "between 1 and 10000 (got 1000000000.0)"),
    "rate-string": (_set("input.rate_hz", "50"), "input.rate_hz"),
    "hop-zero": (_set("input.hop", 0), "input.hop must be between 1 and"),
    "hop-float": (_set("input.hop", 64.5), "input.hop must be an integer"),
    "length-zero": (_set("input.length", 0), "input.length must be between 1 and"),
    "length-huge": (_set("input.length", 10**12), "input.length must be between 1 and"),
    # 4: figures the agent reads
    "accuracy-string": (_set("metrics.accuracy", "high"), "metrics.accuracy must be a number"),
    "accuracy-bool": (_set("metrics.accuracy", True), "metrics.accuracy must be a number"),
    "accuracy-nan": (_set("metrics.accuracy", NAN), "metrics.accuracy must be a finite number"),
    "accuracy-percent": (_set("metrics.accuracy", 94.1), "metrics.accuracy must be a finite"),
    "f1-string": (_set("metrics.f1_weighted", "0.9"), "metrics.f1_weighted must be a number"),
    "p50-string": (_set("latency_ms.p50", "fast"), "latency_ms.p50 must be a number"),
    "p50-negative": (_set("latency_ms.p50", -1), "latency_ms.p50 must be a finite number"),
    "metrics-list": (_set("metrics", [["accuracy", 0.9]]), "metrics must be a JSON object"),
    "macs-string": (_set("macs", "5"), "macs must be an integer"),
    "width-nan": (_set("width", NAN), "width must be a finite number"),
    "labels-string": (_set("labels", "WALKING"), "labels must be a list of strings"),
    "channels-ints": (_set("input.channels", [1, 2, 3, 4, 5, 6]), "input.channels[0] must be"),
    # 7: file names
    "file-nul": (_set("file", "cnn1d\x00.onnx"), "file must not contain a NUL character"),
    "file-300": (_set("file", "a" * 300), "must be a plain file name"),
    "file-256-bytes": (_set("file", "é" * 128), "at most 255 bytes"),
    "file-empty": (_set("file", ""), "must be a plain file name"),
    "file-path": (_set("file", "../etc/passwd"), "must be a plain file name"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_bad_entries_are_refused_naming_member_and_field(tmp_path: Path, case: str) -> None:
    edit, fragment = BAD_ENTRIES[case]
    raw = _raw()
    edit(raw["models"][0])
    with pytest.raises(ModelError) as info:
        load_manifest(_write(tmp_path, raw))
    msg = str(info.value)
    assert "models[0] (cnn1d-base)" in msg, msg
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 400, msg


def test_the_committed_bank_still_loads() -> None:
    manifest = load_manifest(MODELS)
    assert len(manifest.models) > 10
    for m in manifest.models:
        assert 1 <= m.input.rate_hz <= 10_000 and m.input.hop >= 1
        assert all(s > 0 for s in m.normalization.std)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1.2e-38, True), (1e-3, True), (3.0e38, True), (1e-39, False), (3.5e38, False)],
)
def test_std_must_be_a_normal_float32(tmp_path: Path, value: float, ok: bool) -> None:
    raw = _raw()
    raw["models"][0]["normalization"]["std"][0] = value
    _write(tmp_path, raw)
    if ok:
        load_manifest(tmp_path)
    else:
        with pytest.raises(ModelError, match=r"normalization\.std\[0\]"):
            load_manifest(tmp_path)


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_manifest_is_one_error(tmp_path: Path, depth: int) -> None:
    text = '{"manifest_version": 1, "models": ' + "[" * depth + "]" * depth + "}"
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ModelError, match="nested too deeply"):
        load_manifest(tmp_path)
    one_line_error(runner.invoke(app, ["models", "list", "--dir", str(tmp_path)]), "too deeply")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_set("metrics.accuracy", "high"), "metrics.accuracy must be a number"),
        (_set("latency_ms.p50", "fast"), "latency_ms.p50 must be a number"),
        (_set("file", "a\x00b.onnx"), "file must not contain a NUL character"),
        (_set("input.hop", 0), "(cnn1d-base): input.hop must be between 1"),
    ],
    ids=["accuracy-high", "p50-fast", "file-nul", "hop-0"],
)
def test_models_list_refuses_a_bad_entry_in_one_line(
    tmp_path: Path, edit: Edit, fragment: str
) -> None:
    raw = _raw()
    edit(raw["models"][0])
    folder = _write(tmp_path, raw)
    for args in (["models", "list", "--dir", str(folder)], ["models", "list", "--json"]):
        if args[-1] == "--json":
            args = [*args, "--dir", str(folder)]
        one_line_error(runner.invoke(app, args), fragment)


def _profile_on(tmp_path: Path, bank: Path, model_id: str) -> Path:
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    text = text.replace('dir = "' + str(ROOT) + '/models"', f'dir = "{bank}"')
    text = text.replace('id = ""', f'id = "{model_id}"')
    prof = tmp_path / "p.toml"
    prof.write_text(text)
    return prof


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_set("input.rate_hz", 0), "input.rate_hz must be a number of Hz between 1 and 10000"),
        (_set("input.rate_hz", NAN), "input.rate_hz must be a number of Hz"),
        (_set("input.rate_hz", 1e9), "input.rate_hz must be a number of Hz"),
        (_set("input.hop", 0), "input.hop must be between 1"),
        (_set("metrics.accuracy", "high"), "metrics.accuracy must be a number"),
        (_set("file", "a" * 300), "must be a plain file name"),
        (_stat("std", 0, 1e-300), "normalization.std[0]"),
    ],
    ids=["rate-0", "rate-nan", "rate-1e9", "hop-0", "accuracy-high", "file-300", "std-1e-300"],
)
def test_replay_refuses_a_bad_entry_in_one_line(tmp_path: Path, edit: Edit, fragment: str) -> None:
    """Before: ZeroDivisionError / ValueError tracebacks, a hang (1e9 Hz), or a hop error that
    named neither the file nor the member."""
    bank = _bank(tmp_path, edit)
    prof = _profile_on(tmp_path, bank, "cnn1d-base")
    result = runner.invoke(
        app, ["replay", str(RECORDINGS[0]), "--profile", str(prof), "--no-mqtt", "--fast"]
    )
    one_line_error(result, fragment)
    one_line_error(result, str(bank / "manifest.json"))


def test_hop_in_source_samples_refuses_a_zero_rate() -> None:
    from dataclasses import replace

    entry = load_manifest(MODELS).models[0]
    assert hop_in_source_samples(entry.input, 50.0) == entry.input.hop
    with pytest.raises(DataError, match="cannot size a hop"):
        hop_in_source_samples(replace(entry.input, rate_hz=0.0), 50.0)
    with pytest.raises(DataError, match="cannot size a hop"):
        hop_in_source_samples(entry.input, float("nan"))


# -- 8: model files that are not regular files ---------------------------------------------------
def test_sha256_file_refuses_non_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    link = tmp_path / "zero.onnx"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotARegularFile, match="a FIFO"):
        _within(10, lambda: sha256_file(fifo))
    with pytest.raises(NotARegularFile, match="a character device"):
        _within(10, lambda: sha256_file(link))
    with pytest.raises(NotARegularFile, match="a folder"):
        _within(10, lambda: sha256_file(tmp_path))
    good = tmp_path / "good.onnx"
    good.write_bytes(b"abc")
    (tmp_path / "good-link.onnx").symlink_to(good)
    assert sha256_file(tmp_path / "good-link.onnx") == sha256_file(good)


def test_models_list_reports_a_fifo_and_dev_zero_without_hanging(tmp_path: Path) -> None:
    """A subprocess with a timeout: before the fix, hashing the FIFO blocked for ever."""
    bank = tmp_path / "bank"
    shutil.copytree(MODELS, bank)
    (bank / "cnn1d-base.onnx").unlink()
    os.mkfifo(bank / "cnn1d-base.onnx")
    (bank / "wc-w0.10-r032.onnx").unlink()
    (bank / "wc-w0.10-r032.onnx").symlink_to("/dev/zero")
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "models", "list", "--dir", str(bank)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines()[2:] if ln.strip()}
    assert rows["cnn1d-base"].endswith("unreadable (not a regular file: a FIFO)")
    assert rows["wc-w0.10-r032"].endswith("unreadable (not a regular file: a character device)")
    assert rows["wc-w0.75-r096"].endswith("  ok")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("har-agent: error:")]
    assert len(errors) == 1 and "cnn1d-base (unreadable" in errors[0], proc.stderr


def test_a_fifo_manifest_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(ModelError, match="not a regular file"):
        _within(10, lambda: load_manifest(tmp_path))
