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


def test_smoke_run_against_the_committed_bank(tmp_path: Path) -> None:
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress is written beside the report; a complete report is only replaced by a complete
    one (the committed reports are complete, and a Ctrl-C must not cost one)."""
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
            raise KeyboardInterrupt
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(independent_train, "build_member", second_fails)
    with pytest.raises(KeyboardInterrupt):
        independent.run(args)
    assert report.read_text() == '{"complete": true}'
    progress = json.loads((tmp_path / "report.partial.json").read_text())
    assert progress["complete"] is False and len(progress["results"]) == 1
    assert independent.parse_args(["--out", str(out)]).report == out / "independent-report.json"
