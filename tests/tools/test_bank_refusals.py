"""What build, compress and train_baseline refuse when they start, before any training: an
unreadable manifest (it would be replaced, dropping the models of other families), a parent file
that is not the one the manifest names (false provenance), a parent of another family, a bank
path that is a file, an unusable dataset pickle, an out-of-range seed; and what ``build
--max-steps`` caps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.manifest import (  # noqa: E402
    InputSpec,
    ModelEntry,
    load_manifest,
    sha256_file,
    write_manifest,
)
from agent.windowing import Normalizer  # noqa: E402
from tools import train_baseline  # noqa: E402
from tools.bank import build, compress  # noqa: E402
from tools.bank.staging import staging_dir  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402
from tools.hapt import ACTIVITIES, CHANNELS, UNITS  # noqa: E402

pytestmark = pytest.mark.tools

PARENT = "wr-w1.00-r128"
NORM = Normalizer((0.8, 0.0, 0.1, 0.0, 0.0, 0.0), (0.4, 0.4, 0.4, 0.4, 0.4, 0.3))


def _plain(seed: int) -> PlainCNN:
    torch.manual_seed(seed)
    return PlainCNN((16, 32, 64), SlimConfig()).eval()


def _entry(bank: Path, mid: str, family: str, **extra: Any) -> ModelEntry:
    path = bank / f"{mid}.onnx"
    return ModelEntry(
        id=mid,
        file=path.name,
        sha256=sha256_file(path),
        family=family,
        input=InputSpec("imu", "NTC", 128, 50.0, 64, CHANNELS, UNITS),
        labels=ACTIVITIES,
        normalization=NORM,
        width=1.0,
        resolution=128,
        macs=1,
        params=1,
        file_bytes=path.stat().st_size,
        metrics={"accuracy": 0.5, "f1_weighted": 0.5},
        latency_ms={"p50": 0.1},
        **extra,
    )


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    """A bank of a tiny width-resolution parent, a second member, a baseline and a pruned
    member (their files copies of tiny graphs: what the checks read)."""
    out = tmp_path / "models"
    out.mkdir()
    export_onnx(_plain(0), out / f"{PARENT}.onnx", (1, 128, 6))
    export_onnx(_plain(1), out / "wr-w0.50-r128.onnx", (1, 128, 6))
    export_onnx(_plain(2), out / "cnn1d-base.onnx", (1, 128, 6))
    export_onnx(_plain(3), out / f"pr50-{PARENT}.onnx", (1, 128, 6))
    parent = _entry(out, PARENT, "width-resolution")
    prov = {"parent": PARENT, "parent_sha256": parent.sha256}
    models = [
        parent,
        _entry(out, "wr-w0.50-r128", "width-resolution"),
        _entry(out, "cnn1d-base", "baseline"),
        _entry(out, f"pr50-{PARENT}", "pruned", provenance=prov),
    ]
    write_manifest(out, models, {"generator": "test"})
    return out


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the dataset (the first piece of work) fails the test: refusals come before it."""

    def loaded(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    for module in (build, compress, train_baseline):
        monkeypatch.setattr(module, "load_experiments", loaded)


def _refused(module: Any, argv: list[str], *needles: str) -> str:
    """``module.main(argv)`` ends in one line naming every needle, exit status 1."""
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    text = str(exc.value.code)
    assert text.startswith("error: ") and "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


# 1. an unreadable manifest is refused before any training, never replaced after it


@pytest.mark.parametrize(
    "content", ["garbage\n", '{"manifest_version": 99, "models": []}', '{"models": 3']
)
@pytest.mark.parametrize("tool", ["build", "train_baseline"])
def test_an_unreadable_manifest_is_refused_before_any_training(
    bank: Path, content: str, tool: str, no_work: None
) -> None:
    (bank / "manifest.json").write_text(content)
    before = _state(bank)
    module = build if tool == "build" else train_baseline
    argv = ["--smoke", "--out", str(bank), "--data", "pickle"]
    _refused(module, argv, str(bank / "manifest.json"), "nothing was changed")
    assert _state(bank) == before and not staging_dir(bank).exists()


def test_merging_into_an_unreadable_manifest_refuses_and_keeps_it(bank: Path) -> None:
    """The functions that write the manifest refuse too (a manifest spoilt during the run)."""
    entry = load_manifest(bank).get(PARENT)
    (bank / "manifest.json").write_text("garbage\n")
    with pytest.raises(SystemExit, match="unreadable manifest"):
        build.merge_manifest(bank, [entry], {"generator": "x"})
    with pytest.raises(SystemExit, match="unreadable manifest"):
        train_baseline.register(bank, dataclasses.replace(entry, id="cnn1d-base"), {})
    assert (bank / "manifest.json").read_text() == "garbage\n"


def test_a_readable_manifest_still_merges(bank: Path) -> None:
    """The refusal is for unreadable manifests only: a readable one keeps its other families."""
    m = load_manifest(bank)
    build.merge_manifest(bank, [m.get(PARENT)], {"generator": "x"})
    ids = {e.id for e in load_manifest(bank).models}
    assert ids == {PARENT, "cnn1d-base", f"pr50-{PARENT}"}
    assert json.loads((bank / "manifest.json").read_text())["generator"] == "x"


# 4. train_baseline: a bank path that is a file


def test_train_baseline_refuses_a_file_as_bank_before_training(
    tmp_path: Path, no_work: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _refused(train_baseline, ["--smoke", "--out", str(afile)], str(afile), "cannot create")
    assert afile.read_text() == "not a folder"
