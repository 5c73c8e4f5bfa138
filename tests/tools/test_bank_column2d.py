"""The per-column 2-D supernet (``--arch column2d``): slicing, extraction, MAC counting, and a
tiny build end to end (a few steps, 2 widths x 2 resolutions, ONNX export, ORT parity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.manifest import load_manifest  # noqa: E402
from tools import export  # noqa: E402
from tools.bank import build  # noqa: E402
from tools.bank.arch import ops_for  # noqa: E402
from tools.bank.supernet2d import (  # noqa: E402
    ColumnConfig,
    SlimColumnCNN,
    calibrated_reference,
    channels_at,
    extract,
    recalibrate_bn,
)
from tools.models import count_macs_params  # noqa: E402

pytestmark = pytest.mark.tools


def test_columns_stay_apart_and_every_resolution_runs() -> None:
    cfg = ColumnConfig()
    assert channels_at(cfg, 1.0) == (64, 128, 256)
    assert channels_at(cfg, 0.1) == (6, 13, 26)
    net = SlimColumnCNN(cfg).eval()
    assert ops_for(net).id_prefix == "wc"
    for length in (128, 96, 64, 32):
        assert net(torch.zeros(2, length, 6), 0.1).shape == (2, 6)
    # kernels span time only: a change in one sensor column moves only that column's features
    x = torch.randn(1, 64, 6)
    y = x.clone()
    y[0, :, 2] += 1.0
    features = extract(net, 1.0, _unit_stats(net)).features
    with torch.no_grad():
        a = features(x.unsqueeze(1)).mean(dim=2)  # [1, channels, columns]
        b = features(y.unsqueeze(1)).mean(dim=2)
    moved = (a - b).abs().amax(dim=1)[0]
    assert moved[2] > 0 and torch.all(moved[[0, 1, 3, 4, 5]] == 0)


def _unit_stats(net: SlimColumnCNN) -> list[tuple[Any, Any]]:
    return [(torch.zeros(c), torch.ones(c)) for c in channels_at(net.cfg, 1.0)]


def test_recalibrated_extraction_matches_supernet_and_macs() -> None:
    torch.manual_seed(0)
    net = SlimColumnCNN(ColumnConfig())
    batches = [torch.randn(16, 64, 6) * 2 + 1 for _ in range(3)]
    stats = recalibrate_bn(net, 0.5, batches)
    assert [len(m) for m, _ in stats] == list(channels_at(net.cfg, 0.5))
    assert torch.all(net.bns[0].running_mean == 0)
    plain = extract(net, 0.5, stats)
    ref = calibrated_reference(net, 0.5, stats)
    x = torch.randn(4, 64, 6)
    with torch.no_grad():
        assert torch.allclose(plain(x), ref(x, 0.5), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    # Conv2d (6, 1) stride 3 pad 2 over R = 128: 43, 14, 5 steps per column, 6 columns
    c1, c2, c3 = channels_at(net.cfg, 0.5)
    expected = 6 * (43 * c1 * 6 + 14 * c2 * c1 * 6 + 5 * c3 * c2 * 6) + 6 * c3 * 6
    macs, params = count_macs_params(extract(net, 0.5, stats), (1, 128, 6))
    assert macs == expected
    assert params == sum(p.numel() for p in plain.parameters())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("wcbank")
    args = build.parse_args(
        ["--smoke", "--arch", "column2d", "--max-steps", "3", "--out", str(out)]
        + ["--data", "pickle"]
    )
    return out, build.run(args)


def test_column2d_smoke_bank(smoke: tuple[Path, dict[str, Any]]) -> None:
    out, result = smoke
    manifest = load_manifest(out)
    expected = {
        f"wc-w{w:.2f}-r{r:03d}" for w in build.SMOKE_WIDTHS for r in build.SMOKE_RESOLUTIONS
    }
    assert {m.id for m in manifest.models} == expected
    for res in result["results"]:
        assert res.max_abs_diff < 1e-4 and res.extract_diff < 1e-4
    # the build's default distils every member from the full configuration's frozen outputs
    assert len(result["distill"]["rows"]) == len(expected)
    for entry in manifest.models:
        assert entry.provenance["distilled"]["teacher"] == "wc-w1.00-r128"
    for entry in manifest.models:
        r = entry.resolution
        assert entry.family == "width-resolution" and entry.input.shape == (1, r, 6)
        assert entry.provenance["model_config"]["arch"] == "column2d"
        path = manifest.path_of(entry)
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        (inp,) = model.graph.input
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert inp.name == "imu" and dims == [1, r, 6]
        (outp,) = model.graph.output
        assert outp.name == "logits"
        assert [d.dim_value for d in outp.type.tensor_type.shape.dim] == [1, 6]
        ops = {n.op_type for n in model.graph.node}
        assert "Conv" in ops and "BatchNormalization" not in ops
        sess = export.session(path)
        x = np.random.default_rng(0).standard_normal((3, r, 6)).astype(np.float32)
        assert export.ort_logits(sess, x).shape == (3, 6)


def test_a_new_grid_leaves_only_what_the_manifest_lists(
    smoke: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A build with other widths replaces the width-resolution members: the files of members
    that are not in the new grid go with their entries."""
    import shutil

    src, _ = smoke
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    before = {m.id for m in load_manifest(bank).models}
    argv = ["--smoke", "--max-steps", "1", "--distill-epochs", "0", "--widths", "0.5,1"]
    build.run(build.parse_args([*argv, "--out", str(bank), "--data", "pickle"]))
    after = load_manifest(bank)
    ids = {m.id for m in after.models}
    assert ids == {f"wc-w{w}-r{r:03d}" for w in ("0.50", "1.00") for r in build.SMOKE_RESOLUTIONS}
    assert before - ids  # some members left the grid ...
    assert sorted(p.name for p in bank.glob("*.onnx")) == sorted(m.file for m in after.models)
