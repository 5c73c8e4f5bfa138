"""A smoke run of the training + export pipeline (tiny data, one epoch)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.manifest import load_manifest, sha256_file  # noqa: E402
from tools import export, train_baseline  # noqa: E402

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bank")
    args = train_baseline.parse_args(["--smoke", "--out", str(out), "--data", "pickle"])
    return out, train_baseline.run(args)


def test_smoke_pipeline(smoke: tuple[Path, dict[str, Any]]) -> None:
    tmp_path, result = smoke
    onnx_path = tmp_path / "cnn1d-base.onnx"
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    model = onnx.load(str(onnx_path))
    (inp,) = model.graph.input
    assert inp.name == "imu"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 128, 6]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) == 17

    manifest = load_manifest(tmp_path)
    entry = manifest.get("cnn1d-base")
    assert entry.input.shape == (1, 128, 6)
    assert entry.input.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert entry.labels[0] == "WALKING" and len(entry.labels) == 6
    assert entry.sha256 == sha256_file(onnx_path)
    assert entry.file_bytes == onnx_path.stat().st_size
    assert entry.macs > 1_000_000 and entry.params > 10_000
    assert entry.metrics["evaluated_with"] == "onnxruntime"
    assert 0.0 <= entry.metrics["accuracy"] <= 1.0
    assert entry.latency_ms["threads"] == 1 and entry.latency_ms["p50"] > 0
    assert entry.provenance["seed"] == 0 and entry.provenance["epochs"] == 1
    assert manifest.meta["rebuild"] == train_baseline.REBUILD

    # ONNX Runtime agrees with PyTorch
    assert result["max_abs_diff"] < 1e-4
    sess = export.session(onnx_path)
    x = np.random.default_rng(0).standard_normal((3, 128, 6)).astype(np.float32)
    assert export.ort_logits(sess, x).shape == (3, 6)


def test_register_keeps_other_models_and_the_bank_metadata(
    smoke: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp, result = smoke
    tmp_path = tmp / "bank"
    tmp_path.mkdir()
    entry = result["entry"]
    derived = dataclasses.replace(
        entry,
        id="q8-cnn1d-base",
        family="int8",
        provenance={"parent": entry.id, "parent_sha256": entry.sha256},
    )
    bank = {"generator": "x", "rebuild": "the whole chain"}
    train_baseline.register(tmp_path, derived, bank)
    capsys.readouterr()
    train_baseline.register(tmp_path, entry, {"generator": "y", "generated_at": "now"})
    assert capsys.readouterr().err == ""  # same parent bytes: nothing stale
    manifest = load_manifest(tmp_path)
    assert sorted(m.id for m in manifest.models) == ["cnn1d-base", "q8-cnn1d-base"]
    # the bank's own metadata (its rebuild chain) stays; the baseline's run is recorded beside it
    assert manifest.meta["generator"] == "x" and manifest.meta["rebuild"] == "the whole chain"
    assert manifest.meta["baseline_by"] == "y" and manifest.meta["baseline_at"] == "now"
    # a new baseline leaves its int8 variant stale: said, not silently kept
    train_baseline.register(tmp_path, dataclasses.replace(entry, sha256="0" * 64), {})
    err = capsys.readouterr().err
    assert "warning: q8-cnn1d-base were made from a previous version of their parent" in err


def test_the_stale_advice_names_the_bank_not_the_working_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new baseline leaves q8-cnn1d-base stale: the advice named no folder (compress then ran
    on models), and the run registers the baseline in a working copy the advice must not name."""
    from agent.manifest import write_manifest
    from tests.tools.entries import model_entry

    bank = tmp_path / "my bank"
    bank.mkdir()
    for mid in ("wr-w1.00-r128", "cnn1d-base", "q8-cnn1d-base"):
        (bank / f"{mid}.onnx").write_bytes(mid.encode())
    wr = model_entry(bank / "wr-w1.00-r128.onnx", "wr-w1.00-r128")
    base = model_entry(bank / "cnn1d-base.onnx", "cnn1d-base", "baseline")
    made = {"parent": base.id, "parent_sha256": base.sha256}
    q8 = model_entry(bank / "q8-cnn1d-base.onnx", "q8-cnn1d-base", "int8", provenance=made)
    write_manifest(bank, [wr, base, q8], {"generator": "test"})
    train_baseline.run(
        train_baseline.parse_args(["--smoke", "--out", str(bank), "--data", "pickle"])
    )
    assert (
        "warning: q8-cnn1d-base were made from a previous version of their parent; run "
        f"python -m tools.bank.compress --bank '{bank}' to remake them"
    ) in capsys.readouterr().err.splitlines()


def test_mac_counter() -> None:
    import torch

    from tools.models import count_macs_params

    net = torch.nn.Sequential(
        torch.nn.Conv1d(6, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 10, 4)
    )
    macs, params = count_macs_params(net, (1, 6, 10))
    assert macs == 8 * 10 * 6 * 3 + 4 * 80
    assert params == (8 * 6 * 3 + 8) + (80 * 4 + 4)
