"""The width-resolution bank: supernet pieces, and the smoke pipeline end to end (train a few
steps, export ONNX members, register them, replay a recording through the agent)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.manifest import load_manifest, sha256_file  # noqa: E402
from agent.profile import load_profile  # noqa: E402
from agent.publishers import MemoryPublisher  # noqa: E402
from agent.recording import read_recording  # noqa: E402
from agent.resampling import Resampler  # noqa: E402
from agent.windowing import sliding_windows, uniform_label  # noqa: E402
from agent.wiring import RunOptions, build_agent  # noqa: E402
from tools import export  # noqa: E402
from tools.bank import build  # noqa: E402
from tools.bank.supernet import (  # noqa: E402
    SlimCNN,
    SlimConfig,
    calibrated_reference,
    channels_at,
    extract,
    recalibrate_bn,
    sample_widths,
)
from tools.bank.windows import aligned_windows, eval_windows, rate_for  # noqa: E402
from tools.hapt import Experiment  # noqa: E402

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
RECORDING = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"


def _toy_experiment(n: int = 1200) -> Experiment:
    rng = np.random.default_rng(0)
    labels = np.full(n, 1, dtype=np.int64)
    labels[600:] = 4
    labels[590:610] = -1
    return Experiment(1, 1, rng.standard_normal((n, 6)).astype(np.float32), labels)


@pytest.mark.parametrize(
    ("how", "narrow_share"), [("uniform", (0.13, 0.20)), ("log", (0.36, 0.44))]
)
def test_sandwich_width_sampling(how: str, narrow_share: tuple[float, float]) -> None:
    """Random widths stay in [min_width, 1]; log-uniform puts ~40 % of them under 0.25 (uniform
    ~17 %) and takes the same number of draws, so the resolutions drawn after them line up."""
    cfg = SlimConfig(min_width=0.1)
    rng = np.random.default_rng(0)
    ws = np.array([w for _ in range(2000) for w in sample_widths(rng, cfg, 2, how)])
    assert ws.min() >= 0.1 and ws.max() <= 1.0
    lo, hi = narrow_share
    assert lo < np.mean(ws < 0.25) < hi
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    sample_widths(a, cfg, 3, "uniform")
    sample_widths(b, cfg, 3, "log")
    assert a.integers(1000) == b.integers(1000)
    with pytest.raises(ValueError, match="unknown width sampling"):
        sample_widths(rng, cfg, 1, "linear")


def test_channels_and_slicing() -> None:
    cfg = SlimConfig()
    assert channels_at(cfg, 1.0) == cfg.channels
    assert channels_at(cfg, 0.5) == tuple(c // 2 for c in cfg.channels)
    assert min(channels_at(cfg, 0.01)) >= 4
    with pytest.raises(ValueError):
        channels_at(cfg, 1.5)
    net = SlimCNN(cfg).eval()
    for length in (128, 96, 64, 32, 17):
        assert net(torch.zeros(2, length, 6), 0.3).shape == (2, 6)


def test_recalibrated_extraction_matches_supernet() -> None:
    torch.manual_seed(0)
    net = SlimCNN(SlimConfig())
    batches = [torch.randn(16, 64, 6) * 2 + 1 for _ in range(3)]
    stats = recalibrate_bn(net, 0.5, batches)
    assert [len(m) for m, _ in stats] == list(channels_at(net.cfg, 0.5))
    # the running buffers of the supernet are left as they were
    assert torch.all(net.bns[0].running_mean == 0)
    plain = extract(net, 0.5, stats)
    ref = calibrated_reference(net, 0.5, stats)
    x = torch.randn(4, 64, 6)
    with torch.no_grad():
        assert torch.allclose(plain(x), ref(x, 0.5), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())


def test_windows_follow_the_resampler() -> None:
    exp = _toy_experiment()
    for r in (128, 64, 32):
        ev = eval_windows([exp], r)
        assert ev.x.shape[1:] == (r, 6) and len(ev.y) > 0
        assert set(ev.y.tolist()) <= {0, 3}
    al = aligned_windows([exp], (128, 96, 64, 32), hop128=64)
    assert {r: al.x[r].shape[1] for r in al.x} == {128: 128, 96: 96, 64: 64, 32: 32}
    assert len({al.x[r].shape[0] for r in al.x}) == 1 == len({len(al.y)})
    # a window spanning the unlabelled gap or both activities is never kept
    assert len(al) < (1200 - 128) // 64 + 1
    assert rate_for(64) == 25.0 and rate_for(96) == 37.5


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("wrbank")
    args = build.parse_args(["--smoke", "--arch", "conv1d", "--out", str(out), "--data", "pickle"])
    return out, build.run(args)


def test_smoke_bank(smoke: tuple[Path, dict[str, Any]]) -> None:
    out, result = smoke
    manifest = load_manifest(out)
    ids = {m.id for m in manifest.models}
    expected = {
        f"wr-w{w:.2f}-r{r:03d}" for w in build.SMOKE_WIDTHS for r in build.SMOKE_RESOLUTIONS
    }
    assert ids == expected
    for res in result["results"]:
        assert res.max_abs_diff < 1e-4 and res.extract_diff < 1e-4
    for entry in manifest.models:
        r = entry.resolution
        assert entry.family == "width-resolution"
        assert entry.input.shape == (1, r, 6)
        assert entry.input.rate_hz == pytest.approx(50.0 * r / 128)
        assert entry.input.hop == r // 2
        path = manifest.path_of(entry)
        assert entry.sha256 == sha256_file(path) and entry.file_bytes == path.stat().st_size
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        (inp,) = model.graph.input
        assert inp.name == "imu"
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, r, 6]
        assert [o.name for o in model.graph.output] == ["logits"]
        assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
        assert entry.metrics["evaluated_with"] == "onnxruntime"
        assert entry.metrics["test_windows"] > 100
        assert 0.0 <= entry.metrics["accuracy"] <= 1.0
        assert entry.macs > 0 and entry.params > 0 and entry.latency_ms["p50"] > 0
        assert entry.provenance["seed"] == 0 and entry.provenance["epochs"] == 1
    small, big = manifest.get("wr-w0.25-r064"), manifest.get("wr-w1.00-r128")
    assert small.macs < big.macs and small.params < big.params


def test_merge_keeps_other_families(smoke: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, result = smoke
    out = tmp_path  # a manifest of its own: the smoke bank's stays as built (and distilled)
    entry = result["results"][0].entry
    other = dataclasses.replace(entry, id="cnn1d-base", family="baseline")
    build.merge_manifest(out, [entry, other], {"generator": "x"})
    build.merge_manifest(out, [r.entry for r in result["results"]], {"generator": "y"})
    manifest = load_manifest(out)
    assert "cnn1d-base" in {m.id for m in manifest.models}
    assert len(manifest.models) == len(result["results"]) + 1


def test_resolution_64_member_replays_through_the_agent(
    smoke: tuple[Path, dict[str, Any]],
) -> None:
    """The agent resamples the 50 Hz recording to 25 Hz and cuts 64-sample windows, hop 32:
    the same windows tools.bank cuts, so its predictions equal direct ONNX Runtime inference."""
    out, _ = smoke
    prof = load_profile(ROOT / "profiles" / "default.toml")
    prof = dataclasses.replace(
        prof,
        model=dataclasses.replace(prof.model, dir=str(out), id="wr-w1.00-r064"),
        outbox=dataclasses.replace(prof.outbox, enabled=False, path=""),
    )
    pub = MemoryPublisher()
    agent = build_agent(
        prof, options=RunOptions(recording=RECORDING, speed=0.0, loop=False), publisher=pub
    )
    stats = agent.run()
    preds = [json.loads(p) for t, p, _, _ in pub.messages if t.endswith("/prediction")]
    assert preds and all(p["model"] == "wr-w1.00-r064" for p in preds)

    entry = load_manifest(out).get("wr-w1.00-r064")
    header, chunk = read_recording(RECORDING)
    resampled = Resampler(50.0, 25.0).push(chunk)
    wins = sliding_windows(resampled.values, 64, 32)
    assert len(preds) == stats.windows == len(wins) > 50
    sess = export.session(out / entry.file)
    direct = export.ort_logits(sess, entry.normalization(wins)).argmax(1)
    agree = np.mean([p["label"] == entry.labels[i] for p, i in zip(preds, direct, strict=True)])
    assert agree >= 0.98
    assert resampled.labels is not None
    truths = [uniform_label(list(resampled.labels[i * 32 : i * 32 + 64])) for i in range(len(wins))]
    assert [p.get("truth") for p in preds] == truths


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        (["--kd-weight", "1.0", "--width-sampling", "log"], True),
        (["--kd-weight", "0"], True),
        (["--kd-weight", "1.5"], False),
        (["--width-sampling", "linear"], False),
        (["--epochs", "0"], False),
    ],
)
def test_recipe_options(argv: list[str], ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    if not ok:
        with pytest.raises(SystemExit):
            build.parse_args(argv)
        assert "error" in capsys.readouterr().err
        return
    args = build.parse_args(argv)
    assert args.arch == "column2d" and args.epochs == build.DEFAULT_EPOCHS["column2d"] == 40
    assert args.kd_weight == float(argv[1])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--widths", "0.05"], "below the column2d supernet's narrowest trained width (0.1)"),
        (["--arch", "conv1d", "--widths", "0.1"], "narrowest trained width (0.125)"),
        (["--widths", "0.12,0.124"], "0.12 and 0.124 would both be member w0.12"),
    ],
)
def test_widths_the_supernet_never_trained_or_that_collide_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any training: an untrained slice (test accuracy at chance) or two widths with one
    member id (a manifest with a duplicate id) would otherwise be written into the bank."""
    with pytest.raises(SystemExit) as exc:
        build.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert build.parse_args(["--widths", "0.1,0.125,1"]).widths == (0.1, 0.125, 1.0)


def test_a_second_tool_on_a_bank_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is taken when a tool starts, not when it writes: a second build would otherwise
    train for hours and only then be refused."""
    from tools.bank import compress, distill, distill_data
    from tools.bank.staging import bank_lock

    def no_work(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    bank = tmp_path / "bank"
    with bank_lock(bank):
        for module, loader, argv in (
            (build, build, ["--smoke", "--out", str(bank), "--data", "pickle"]),
            (compress, compress, ["--smoke", "--out", str(bank), "--data", "pickle"]),
            (distill, distill_data, ["--smoke", "--bank", str(bank), "--data", "pickle"]),
        ):
            monkeypatch.setattr(loader, "load_experiments", no_work)
            with pytest.raises(SystemExit, match="another tool is changing .* right now"):
                module.run(module.parse_args(argv))  # type: ignore[attr-defined]
    assert not bank.exists()
