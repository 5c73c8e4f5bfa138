"""Compression of the bank: structured pruning (torch-pruning), static int8 quantization (ONNX
Runtime), the manifest entries they add, and the report. A smoke run on a tiny parent and the
4 smoke subjects of the real data runs the whole ``tools.bank.compress`` command once."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torch_pruning")

from onnx import numpy_helper  # noqa: E402

from agent.manifest import InputSpec, load_manifest, sha256_file, write_manifest  # noqa: E402
from tests.tools.conftest import int8_of  # noqa: E402
from tests.tools.entries import model_entry  # noqa: E402
from tools.bank import compress, report  # noqa: E402
from tools.bank.evaluate import model_input  # noqa: E402
from tools.bank.importance import CRITERIA, activation_scores, convs  # noqa: E402
from tools.bank.parent import plain_from_onnx  # noqa: E402
from tools.bank.plots import Point, pareto_front  # noqa: E402
from tools.bank.prune import channels_of, plan_channels, prune_layer  # noqa: E402
from tools.bank.quantize import QuantConfig, keep_int8, quantize_member  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx, ort_logits, session  # noqa: E402
from tools.hapt import CHANNELS, UNITS  # noqa: E402

pytestmark = pytest.mark.tools

PARENT_CHANNELS = (16, 32, 64)


def _tiny_plain(seed: int = 0) -> PlainCNN:
    torch.manual_seed(seed)
    return PlainCNN(PARENT_CHANNELS, SlimConfig()).eval()


def _onnx_channels(path: Path) -> dict[str, tuple[int, ...]]:
    model = onnx.load(str(path))
    return {i.name: tuple(numpy_helper.to_array(i).shape) for i in model.graph.initializer}


def test_parent_round_trips_through_onnx(tmp_path: Path) -> None:
    plain = _tiny_plain()
    path = export_onnx(plain, tmp_path / "p.onnx", (1, 64, 6))
    back = plain_from_onnx(path)
    assert channels_of(back) == PARENT_CHANNELS
    x = np.random.default_rng(0).standard_normal((8, 64, 6)).astype(np.float32)
    with torch.no_grad():
        assert torch.allclose(back(torch.from_numpy(x)), plain(torch.from_numpy(x)))


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_pruning_shrinks_tensors_and_keeps_the_important_channels(
    tmp_path: Path, criterion: str
) -> None:
    model = _tiny_plain()
    batches = [torch.randn(8, 64, 6)]
    scores = CRITERIA[criterion](model, 1, batches)
    assert scores.shape == (32,)
    keep_best = set(torch.argsort(scores, descending=True)[:12].tolist())
    w1 = convs(model)[1].weight.detach().clone()
    prune_layer(model, 1, 12, scores, 64)
    assert channels_of(model) == (16, 12, 64)
    assert convs(model)[2].in_channels == 12  # the coupled input shrank with it
    kept_rows = [i for i in range(32) if i in keep_best]
    assert torch.equal(convs(model)[1].weight, w1[kept_rows])
    path = export_onnx(model, tmp_path / "pruned.onnx", (1, 64, 6))
    shapes = _onnx_channels(path)
    assert shapes["features.3.weight"] == (12, 16, 5)
    assert shapes["features.6.weight"] == (64, 12, 5)
    x = np.random.default_rng(1).standard_normal((16, 64, 6)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(ref - ort_logits(session(path), x))) < 1e-4


def test_activation_importance_sees_dead_channels() -> None:
    model = _tiny_plain()
    with torch.no_grad():
        convs(model)[0].bias[3] = -1e3  # channel 3 never fires after ReLU
    scores = activation_scores(model, 0, [torch.randn(4, 64, 6)])
    assert scores[3] == 0 and int(torch.argmin(scores)) == 3


def _macs(chans: tuple[int, ...]) -> int:
    a, b, c = chans
    return 6 * a + a * b + b * c


@pytest.mark.parametrize(
    ("drops", "budget", "expected"),
    [
        # layer 2 loses nothing: it gives up channels first
        ({0: {0.5: 0.3}, 1: {0.5: 0.3}, 2: {0.5: 0.0}}, 32 * 6 + 32 * 64 + 64 * 64, (32, 64, 64)),
        # everything equally sensitive: uniform cut
        ({0: {0.5: 0.1}, 1: {0.5: 0.1}, 2: {0.5: 0.1}}, _macs((16, 32, 64)), (16, 32, 64)),
    ],
)
def test_plan_follows_sensitivity(
    drops: dict[int, dict[float, float]], budget: int, expected: tuple[int, ...]
) -> None:
    keep, _ = plan_channels((32, 64, 128), drops, budget, _macs, multiple=8)
    assert _macs(keep) <= budget
    assert keep == expected


def test_pareto_front() -> None:
    pts = [Point("a", "x", 1.0, 0.90), Point("b", "x", 2.0, 0.95), Point("c", "x", 3.0, 0.93)]
    assert [p.id for p in pareto_front(pts)] == ["a", "b"]


@pytest.mark.parametrize(
    ("accs", "p50s", "kept"),
    [
        ((0.95, 0.948), (0.2, 0.1), True),
        ((0.95, 0.94), (0.2, 0.1), False),
        ((0.95, 0.95), (0.2, 0.3), False),
        ((0.95, 0.95), (0.2, 0.19), False),  # 1.05x: within timing noise, not kept
        ((0.95, 0.95), (0.2, 0.18), True),  # 1.11x
        ((0.95, 0.95), (0.2, 0.2), False),
    ],
)
def test_keep_int8(accs: tuple[float, float], p50s: tuple[float, float], kept: bool) -> None:
    assert keep_int8(accs[0], accs[1], p50s[0], p50s[1], QuantConfig())[0] is kept


def test_static_int8_is_qdq_and_close_to_fp32(tmp_path: Path) -> None:
    plain = _tiny_plain()
    src = export_onnx(plain, tmp_path / "fp32.onnx", (1, 64, 6))
    spec = InputSpec("imu", "NTC", 64, 25.0, 32, CHANNELS, UNITS)
    rng = np.random.default_rng(0)
    calib = model_input(rng.standard_normal((32, 64, 6)).astype(np.float32), spec)
    dst = quantize_member(src, tmp_path / "int8.onnx", calib, spec, QuantConfig())
    model = onnx.load(str(dst))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 2  # the later convs (the first conv and the classifier: fp32)
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    weights = {i.name: i for i in model.graph.initializer}
    assert weights[first.input[1]].data_type == onnx.TensorProto.FLOAT  # the first conv: fp32
    later = [n for n in model.graph.node if n.op_type == "Conv"][1:]
    assert later and all(n.input[1] not in weights for n in later)  # fed by DequantizeLinear
    cfg = QuantConfig(fp32_first_conv=False)
    everything = onnx.load(str(quantize_member(src, tmp_path / "all.onnx", calib, spec, cfg)))
    first_all = next(n for n in everything.graph.node if n.op_type == "Conv")
    assert first_all.input[1] not in {i.name for i in everything.graph.initializer}
    x = calib[:16]
    fp, q = ort_logits(session(src), x), ort_logits(session(dst), x)
    assert np.max(np.abs(fp - q)) < 0.1 * np.max(np.abs(fp)) + 1e-3
    assert dst.stat().st_size < src.stat().st_size


@pytest.fixture(scope="module")
def smoke_bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A bank holding one tiny parent, compressed by the CLI on the 4 smoke subjects."""
    out = tmp_path_factory.mktemp("cbank")
    path = export_onnx(_tiny_plain(), out / "wr-w1.00-r128.onnx", (1, 128, 6))
    parent = model_entry(path, "wr-w1.00-r128")
    write_manifest(out, [parent], {"generator": "test"})
    data = "auto"  # data/hapt when imported, else the pickle
    args = compress.parse_args(["--smoke", "--out", str(out), "--data", str(data)])
    return out, compress.run(args)


def test_smoke_compress_adds_valid_members(smoke_bank: tuple[Path, dict[str, Any]]) -> None:
    out, result = smoke_bank
    manifest = load_manifest(out)
    parent = manifest.get("wr-w1.00-r128")
    pruned = [m for m in manifest.models if m.family == "pruned"]
    assert {m.id for m in pruned} == {"pr50-wr-w1.00-r128", "pr25-wr-w1.00-r128"}
    parent_shapes = _onnx_channels(manifest.path_of(parent))
    for m in pruned:
        path = manifest.path_of(m)
        assert m.sha256 == sha256_file(path) and m.file_bytes == path.stat().st_size
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        shapes = _onnx_channels(path)
        outs = [shapes[f"features.{i}.weight"][0] for i in (0, 3, 6)]
        assert sum(outs) < sum(PARENT_CHANNELS)
        assert all(o <= p for o, p in zip(outs, PARENT_CHANNELS, strict=True))
        assert shapes["classifier.weight"] == (6, outs[2])
        assert parent_shapes["classifier.weight"] == (6, PARENT_CHANNELS[2])
        assert m.macs <= m.provenance["target_macs_ratio"] * m.provenance["parent_macs"]
        assert m.metrics["ort_vs_torch_max_abs_diff"] < 1e-4
        assert (
            m.provenance["parent"] == parent.id and m.provenance["parent_sha256"] == parent.sha256
        )
        assert m.provenance["importance"] in CRITERIA and m.provenance["seed"] == 0
        assert m.input == parent.input and m.normalization == parent.normalization
        assert 0 <= m.metrics["accuracy"] <= 1 and m.metrics["test_windows"] > 50
        assert m.latency_ms["p50"] > 0 and m.latency_ms["threads"] == 1
        # the file really is the pruned network: rebuilt from it, it matches ORT
        x = np.random.default_rng(2).standard_normal((4, 128, 6)).astype(np.float32)
        with torch.no_grad():
            ref = plain_from_onnx(path)(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(ref - ort_logits(session(path), x))) < 1e-4
    p50, p25 = manifest.get("pr50-wr-w1.00-r128"), manifest.get("pr25-wr-w1.00-r128")
    assert p25.macs < p50.macs
    rows = result["report"]["int8"]
    assert {r["parent"] for r in rows} == {parent.id, *(m.id for m in pruned)}
    int8 = {m.id: m for m in manifest.models if m.family == "int8"}
    for r in rows:
        assert (r["id"] in int8) is r["kept"] and (out / f"{r['id']}.onnx").exists() is r["kept"]
        # the share of validation windows whose class int8 changed bounds the accuracy it moved
        gap = abs(r["fp32_val_accuracy"] - r["int8_val_accuracy"])
        assert 0.0 <= r["val_flip_rate"] <= 1.0 and r["val_flip_rate"] >= gap - 1e-6
    for m in int8.values():
        assert m.sha256 == sha256_file(manifest.path_of(m))
        assert m.latency_ms["parent_p50_same_run"] > 0
        assert "QuantizeLinear" in {
            n.op_type for n in onnx.load(str(manifest.path_of(m))).graph.node
        }


def test_report_writes_tables_and_plots(
    smoke_bank: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = smoke_bank
    doc = tmp_path / "bank.md"
    doc.write_text("# Bank\n\nhand-written text\n", encoding="utf-8")
    args = report.parse_args(
        [
            "--models",
            str(out),
            "--doc",
            str(doc),
            "--img",
            str(tmp_path / "img"),
            "--rounds",
            "2",
            "--runs",
            "3",
        ]
    )
    report.run(args)
    report.run(args)  # idempotent: the section is replaced, the rest kept
    text = doc.read_text(encoding="utf-8")
    assert text.count(report.BEGIN) == 1 and "hand-written text" in text
    assert "`pr50-wr-w1.00-r128`" in text and "97.00 %" in text
    for name in ("bank-accuracy-latency.png", "bank-accuracy-macs.png"):
        assert (tmp_path / "img" / name).read_bytes()[:4] == b"\x89PNG"


def _bank_state(bank: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(bank.iterdir()) if p.is_file()}


def test_bad_arguments_change_nothing(
    smoke_bank: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A typo in --parent or --int8-only is refused before a file is written or deleted (the
    default --out is the committed bank)."""
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    before = _bank_state(bank)
    for extra in (["--parent", "wr-bogus"], ["--int8-only", "wr-bogus"]):
        with pytest.raises(SystemExit, match="nothing was changed"):
            compress.run(compress.parse_args(["--smoke", "--out", str(bank), *extra]))
        assert _bank_state(bank) == before


@pytest.mark.parametrize(
    ("skip", "family", "says"),
    [
        ("--no-prune", "pruned", "made 1 int8 member, kept 2 pruned members from before"),
        ("--no-quantize", "int8", "made 2 pruned members, kept 1 int8 member from before"),
    ],
)
def test_skipped_stages_keep_their_members(
    smoke_bank: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    skip: str,
    family: str,
    says: str,
) -> None:
    """--no-prune / --no-quantize skip a stage and keep what it made before (not delete it),
    and the last line says which members were made and which only kept (it said "wrote 2
    pruned" for pruned members it had only kept)."""
    import json
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    before = load_manifest(bank)
    old = [m.to_dict() for m in before.models if m.family == family]
    assert len(old) == (2 if family == "pruned" else 1)
    section = "pruning" if family == "pruned" else "int8"
    old_section = json.loads((bank / compress.REPORT_FILE).read_text())[section]
    compress.run(compress.parse_args(["--smoke", "--out", str(bank), skip, "--data", "auto"]))
    after = load_manifest(bank)
    assert [m.to_dict() for m in after.models if m.family == family] == old
    for m in after.models:
        assert sha256_file(after.path_of(m)) == m.sha256
    # the skipped stage's section is kept as it was
    assert json.loads((bank / compress.REPORT_FILE).read_text())[section] == old_section
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(says + ("; " if skip == "--no-quantize" else " (")), last
    assert f"wrote {bank / 'manifest.json'} and {bank / compress.REPORT_FILE}" in last


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--no-prune", "--no-quantize"], "--no-prune and --no-quantize together leave nothing"),
        (["--no-quantize", "--int8-only", "wr-w1.00-r128"], "not allowed with argument"),
    ],
)
def test_conflicting_options_are_refused(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both were accepted: --int8-only silently ignored, or a run that made nothing and still
    rewrote the manifest and the report."""
    with pytest.raises(SystemExit) as exc:
        compress.parse_args(["--smoke", *argv])
    assert exc.value.code == 2
    assert why in capsys.readouterr().err


def _no_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the dataset (the first piece of work) fails the test: refusals come before it."""

    def loaded(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    monkeypatch.setattr(compress, "load_experiments", loaded)


@pytest.mark.parametrize("spoil", ["missing", "altered"])
def test_a_member_file_that_is_not_the_manifests_is_refused_before_work(
    smoke_bank: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spoil: str,
) -> None:
    """A member compress does not read (smoke: only the parent and its pruned members are
    quantized) but whose entry the new manifest keeps: it was accepted, and the new manifest
    listed a file that was gone, as paced_latency and report refuse it."""
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    manifest = load_manifest(bank)
    parent = manifest.get("wr-w1.00-r128")
    shutil.copy(bank / parent.file, bank / "wr-w0.50-r128.onnx")
    other = dataclasses.replace(parent, id="wr-w0.50-r128", file="wr-w0.50-r128.onnx", width=0.5)
    write_manifest(bank, [*manifest.models, other], dict(manifest.meta))
    path = bank / other.file
    if spoil == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    before = _bank_state(bank)
    _no_dataset(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        compress.main(["--smoke", "--out", str(bank), "--no-prune"])
    text = str(exc.value.code)
    why = "is missing" if spoil == "missing" else "does not match the manifest's sha256"
    assert text.startswith(f"error: {path} {why} (model {other.id})") and "\n" not in text
    assert _bank_state(bank) == before


def test_a_read_only_bank_is_refused_before_work(
    smoke_bank: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It pruned and quantized, then failed with a PermissionError traceback when it moved
    the result in (minutes lost on the full bank)."""
    import os
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:  # the bank folder is read-only
        if Path(path).resolve() == bank.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    _no_dataset(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        compress.main(["--smoke", "--out", str(bank)])
    text = str(exc.value.code)
    assert text.startswith(f"error: {bank}: cannot create or change the bank folder"), text
    assert "\n" not in text


def test_a_write_that_fails_at_the_end_is_one_line(
    smoke_bank: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A full disk when the manifest is written: one line and exit status 1, not a traceback;
    the bank is left as it was."""
    import errno
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    before = _bank_state(bank)

    def full(folder: Path, *_a: Any, **_k: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "manifest.json.tmp"))

    monkeypatch.setattr(compress, "write_manifest", full)
    args = ["--smoke", "--out", str(bank), "--no-prune", "--data", "auto"]
    assert compress.main(args) == 1
    err = capsys.readouterr().err  # (the progress bars, then the error)
    last = err.splitlines()[-1]
    want = f"error: {bank}: cannot write the bank: No space left on device (manifest.json.tmp)"
    assert last == want, err
    assert "Traceback" not in err
    assert _bank_state(bank) == before


def test_an_interrupted_compress_leaves_the_bank_as_it_was(
    smoke_bank: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the pruned members were written (during int8): the bank folder is exactly
    as before, every file still matching its manifest, and no working copy is left."""
    import shutil

    from tools.bank.staging import staging_dir

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    before = _bank_state(bank)

    def interrupted(*_a: Any, **_k: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compress, "run_quantization", interrupted)
    with pytest.raises(SystemExit) as exc:
        compress.run(compress.parse_args(["--smoke", "--out", str(bank), "--data", "auto"]))
    assert exc.value.code == 130
    assert _bank_state(bank) == before
    assert not staging_dir(bank).exists()


def test_interrupted_starts_a_line_of_its_own(
    smoke_bank: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C during a fine-tuning bar (tqdm, left open): "interrupted: ..." was printed on
    the bar's line."""
    import shutil

    from tqdm import tqdm

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)

    def interrupted(*_a: Any, **_k: Any) -> Any:
        bar = tqdm(total=3, desc="l1 50% step 1", unit="step", leave=False)
        bar.update(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(compress, "run_quantization", interrupted)
    with pytest.raises(SystemExit) as exc:
        compress.main(["--smoke", "--out", str(bank), "--no-prune", "--data", "auto"])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert f"\ninterrupted: {bank} was left as it was\n" in err, repr(err)


def test_sensitivity_is_printed_to_read() -> None:
    """It was printed as a raw dict of 17-digit floats."""
    from tools.bank.prune_stage import sensitivity_text

    text = sensitivity_text(
        0.669, {"l1": {0: {0.5: 0.44482758620689655}, 1: {0.5: 0.6}}, "activation": {0: {0.5: 1}}}
    )
    assert text.splitlines() == [
        "sensitivity (val acc with one conv pruned alone; unpruned 0.6690):",
        "  l1: conv 0: 50% off 0.4448; conv 1: 50% off 0.6000",
        "  activation: conv 0: 50% off 1.0000",
    ]


def test_int8_only_keeps_the_members_and_rows_it_did_not_try(
    smoke_bank: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import json
    import shutil

    src, _ = smoke_bank
    bank = tmp_path / "bank"
    shutil.copytree(src, bank)
    manifest = load_manifest(bank)
    parent = manifest.get("wr-w1.00-r128")
    assert parent is not None
    # another fp32 member with an int8 variant and a trial row from an earlier run
    shutil.copy(bank / parent.file, bank / "wr-w0.50-r128.onnx")
    other = dataclasses.replace(parent, id="wr-w0.50-r128", file="wr-w0.50-r128.onnx", width=0.5)
    q8 = int8_of(bank, other)
    write_manifest(bank, [*manifest.models, other, q8], dict(manifest.meta))
    report_path = bank / compress.REPORT_FILE
    report = json.loads(report_path.read_text())
    row = {"id": q8.id, "parent": other.id, "kept": True}
    gone = {"id": "q8-wr-w0.25-r128", "parent": "wr-w0.25-r128", "kept": True}  # no such member
    report["int8"] = [*report.get("int8", []), row, gone]
    report_path.write_text(json.dumps(report))
    args = ["--smoke", "--out", str(bank), "--no-prune", "--int8-only", parent.id]
    compress.run(compress.parse_args([*args, "--data", "auto"]))
    after = load_manifest(bank)
    assert after.get(q8.id) == q8 and (bank / q8.file).is_file()
    rows = json.loads(report_path.read_text())["int8"]
    assert row in rows  # the untried member's trial is still reported
    assert gone not in rows  # a row that no longer describes the bank is not
    assert any(r["parent"] == parent.id for r in rows)  # beside the new trial
    assert sum(r["parent"] == parent.id for r in rows) == 1  # which replaced the old one
