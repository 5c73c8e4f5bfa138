"""Independently trained baselines (tools.bank.independent): configuration parsing, training
that touches only its own slice, and a smoke run against the committed bank's members."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.manifest import load_manifest  # noqa: E402
from agent.windowing import Normalizer  # noqa: E402
from tools.bank import independent, independent_report, independent_train  # noqa: E402
from tools.bank.supernet import SlimCNN, SlimConfig, channels_at  # noqa: E402
from tools.bank.supernet2d import ColumnConfig  # noqa: E402
from tools.bank.supernet2d import channels_at as channels_at2d  # noqa: E402
from tools.bank.train import BankTrainConfig  # noqa: E402
from tools.bank.windows import MultiResWindows  # noqa: E402

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("w1.00-r128", (1.0, 128)),
        ("wr-w0.50-r064", (0.5, 64)),
        ("w0.12-r032", (0.125, 32)),
        ("0.25,96", (0.25, 96)),
    ],
)
def test_parse_config(text: str, expected: tuple[float, int]) -> None:
    assert independent.parse_config(text) == expected


@pytest.mark.parametrize("text", ["w1.5-r128", "w0.5-r100", "w0.5", "banana"])
def test_parse_config_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        independent.parse_config(text)


def test_training_alone_touches_only_its_slice() -> None:
    """No sandwich: training at width 0.25 changes the 0.25 slice and nothing outside it."""
    rng = np.random.default_rng(0)
    n = 96
    data = MultiResWindows(
        x={r: rng.standard_normal((n, r, 6)).astype(np.float32) for r in (128, 64)},
        y=rng.integers(0, 6, n),
        subject=np.ones(n, dtype=np.int64),
    )
    norm = Normalizer.fit(data.x[128])
    torch.manual_seed(0)
    cfg = SlimConfig()
    model = SlimCNN(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # without weight decay (which AdamW applies to whole tensors) an untouched weight stays equal
    train_cfg = BankTrainConfig(epochs=1, batch_size=32, weight_decay=0.0)
    hist = independent_train.train_single(model, 0.25, 64, data, norm, train_cfg, max_steps=2)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    after = model.state_dict()
    chans = channels_at(cfg, 0.25)
    c_in = cfg.in_channels
    for i, c in enumerate(chans):
        w0, w1 = before[f"convs.{i}.weight"], after[f"convs.{i}.weight"]
        assert not torch.equal(w0[:c, :c_in], w1[:c, :c_in])
        assert torch.equal(w0[c:], w1[c:]) and torch.equal(w0[:, c_in:], w1[:, c_in:])
        assert torch.equal(before[f"bns.{i}.weight"][c:], after[f"bns.{i}.weight"][c:])
        c_in = c
    assert torch.equal(before["classifier.weight"][:, c_in:], after["classifier.weight"][:, c_in:])
    assert not torch.equal(before["classifier.bias"], after["classifier.bias"])


def test_smoke_run_against_the_committed_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ind"
    args = independent.parse_args(
        [
            "--smoke",
            "--configs",
            "w0.25-r064",
            "--bank",
            str(ROOT / "models"),
            "--data",
            "auto",  # data/hapt when imported, else the pickle
            "--out",
            str(out),
        ]
    )
    report = independent.run(args)
    # the recipe line is read, not a raw dict (it printed {'epochs': 1, 'batch_size': 64, ...})
    recipe = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("recipe"))
    assert "{" not in recipe and "epochs 1, batch_size 64, lr 0.002" in recipe, recipe
    assert recipe.endswith(", refit True"), recipe
    saved = json.loads((out / "independent-report.json").read_text())
    assert saved["complete"] is True and saved["results"] == json.loads(
        json.dumps(report["results"])
    )
    assert saved["max_steps"] == 2 and saved["threads"] == 1
    (row,) = saved["results"]
    assert (row["width"], row["resolution"], row["config"]) == (0.25, 64, "w0.25-r064")
    assert row["channels"] == list(channels_at2d(ColumnConfig(), 0.25)) == [16, 32, 64]
    assert saved["arch"] == "column2d"  # the committed bank is the per-column 2-D supernet
    assert len(row["history"]) == 1

    # the model: right configuration, exported beside (never as) a bank member
    assert sorted(p.name for p in out.glob("*.onnx")) == ["ind-wc-w0.25-r064.onnx"]
    graph = onnx.load(str(out / row["independent"]["file"])).graph
    (inp,) = graph.input
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 64, 6]
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    assert shapes["features.0.weight"] == [16, 1, 6, 1]
    assert shapes["classifier.weight"] == [6, 6 * 64]
    assert row["independent"]["ort_vs_torch_max_abs_diff"] < 1e-4
    assert 0.0 <= row["independent"]["accuracy"] <= 1.0
    assert row["independent"]["test_windows"] > 100

    # the result entry: next to the committed collaborative member, recipe from its provenance
    member = load_manifest(ROOT / "models").get("wc-w0.25-r064")
    collab = row["collaborative"]
    assert collab["id"] == member.id and collab["accuracy"] == member.metrics["accuracy"]
    i_acc = row["independent"]["accuracy"]
    assert row["delta_accuracy_pt"] == round(100 * (collab["accuracy"] - i_acc), 2)
    # fields added to the recipe since the bank was built take their defaults
    recipe = {**dataclasses.asdict(BankTrainConfig()), **member.provenance["train_config"]}
    recipe.update(epochs=1, threads=1, train_hop128=64)  # what --smoke changes
    assert saved["train_config"] == recipe
    assert saved["refit"] is member.provenance["refit"]
    assert "w0.25-r064" in independent_report.markdown_table(saved["results"])


def test_an_interrupted_run_keeps_the_complete_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Progress is written beside the report; a complete report is only replaced by a complete
    one (the committed reports are complete, and a Ctrl-C must not cost one). The message says
    where the finished configurations are and that a rerun starts over (it said only
    "interrupted"), and the export in progress, named like a bank member, is removed."""
    out = tmp_path / "ind"
    report = tmp_path / "report.json"
    report.write_text('{"complete": true}')
    argv = ["--smoke", "--configs", "w0.25-r064,w0.10-r032", "--bank", str(ROOT / "models")]
    args = independent.parse_args(
        [*argv, "--data", "auto", "--out", str(out), "--report", str(report)]
    )
    real = independent_train.build_member
    calls = []

    def second_fails(*a: object, **k: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            (out / "wc-w0.10-r032.onnx").write_bytes(b"half an export")
            raise KeyboardInterrupt
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(independent_train, "build_member", second_fails)
    with pytest.raises(SystemExit) as exc:
        independent.run(args)
    assert exc.value.code == 130
    assert report.read_text() == '{"complete": true}'
    partial = tmp_path / "report.partial.json"
    progress = json.loads(partial.read_text())
    assert progress["complete"] is False and len(progress["results"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["ind-wc-w0.25-r064.onnx"]
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"interrupted: 1 of 2 configurations finished, their results are in {partial}; "
        f"{report} was left as it was, and a rerun trains every configuration again"
    )
    assert independent.parse_args(["--out", str(out)]).report == out / "independent-report.json"
    # without an earlier report, nothing is said about one
    report.unlink()
    calls.clear()
    with pytest.raises(SystemExit):
        independent.run(args)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted: 1 of 2 configurations finished, their results are in {partial}; "
        "a rerun trains every configuration again"
    )


def _one_error_line(capsys: pytest.CaptureFixture[str], want: str) -> None:
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == want, err
    assert "Traceback" not in err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the dataset (the first piece of work) fails the test: refusals come before it."""

    def loaded(*_a: object, **_k: object) -> None:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    monkeypatch.setattr(independent, "load_experiments", loaded)


def test_an_out_that_is_a_file_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    """It was a FileExistsError traceback (and after the first configuration's training when
    the folder was read-only)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["--smoke", "--bank", str(ROOT / "models")]
    assert independent.main([*base, "--out", str(afile)]) == 1
    _one_error_line(capsys, f"error: --out {afile}: cannot write there (it is a file)")
    report = afile / "sub" / "r.json"
    argv = [*base, "--out", str(tmp_path / "ind"), "--report", str(report)]
    assert independent.main(argv) == 1
    _one_error_line(capsys, f"error: --report {report}: cannot write there ({afile} is a file)")
    assert independent.main([*base, "--out", str(tmp_path / "ind"), "--report", str(tmp_path)]) == 1
    _one_error_line(capsys, f"error: --report {tmp_path}: is a folder, not a file")


def test_a_read_only_out_is_refused_before_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_training: None,
) -> None:
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access

    def access(path: object, mode: int, **kw: object) -> bool:  # (the tests may run as root)
        if Path(str(path)).resolve() == ro.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    argv = ["--smoke", "--bank", str(ROOT / "models"), "--out", str(ro / "ind")]
    assert independent.main(argv) == 1
    _one_error_line(capsys, f"error: --out {ro / 'ind'}: cannot write there ({ro} is read-only)")


def test_a_write_that_fails_at_the_end_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's folder is gone (a file in its place) when the progress is written: one
    line, exit status 1, not a traceback."""
    folder = tmp_path / "rep"
    argv = ["--smoke", "--configs", "w0.25-r064", "--bank", str(ROOT / "models")]
    argv += ["--data", "auto", "--out", str(tmp_path / "ind"), "--report", str(folder / "r.json")]
    real = independent.compare

    def then_gone(*a: object, **k: object) -> object:
        folder.rmdir()
        folder.write_text("not a folder any more")
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(independent, "compare", then_gone)
    assert independent.main(argv) == 1
    _one_error_line(
        capsys, f"error: {folder / 'r.partial.json'}: cannot write it (Not a directory)"
    )


@pytest.mark.parametrize(
    "extra", [["--smoke"], ["--configs", "w0.25-r064"], ["--out", "x"], ["--max-steps", "3"]]
)
def test_recompare_refuses_the_options_it_would_ignore(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """They were ignored, and the report rewritten."""
    with pytest.raises(SystemExit) as exc:
        independent.parse_args(["--recompare", "r.json", "--bank", "models", *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--recompare trains nothing (it reads REPORT and --bank): {extra[0]} cannot" in err


def test_recompare_cannot_rewrite_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    report = tmp_path / "r.json"
    report.write_text((ROOT / "models" / "independent-report.json").read_text())
    real = Path.write_text

    def full(self: Path, *a: object, **k: object) -> int:
        if self == report:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    argv = ["--recompare", str(report), "--bank", str(ROOT / "models")]
    assert independent.main(argv) == 1
    _one_error_line(capsys, f"error: {report}: cannot rewrite it (No space left on device)")
