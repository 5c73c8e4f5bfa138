"""Independent baselines of a column2d (``wc-``) bank: the recipe and the architecture come
from the reference member's provenance; a smoke run trains SlimColumnCNN alone at one
configuration and exports it beside (never as) a bank member."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from agent.manifest import InputSpec, ModelEntry, sha256_file, write_manifest  # noqa: E402
from agent.windowing import Normalizer  # noqa: E402
from tools.bank import independent, independent_report, independent_train  # noqa: E402
from tools.bank.supernet2d import ColumnConfig, PlainColumnCNN, SlimColumnCNN, channels_at  # noqa: E402
from tools.bank.train import BankTrainConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402
from tools.hapt import ACTIVITIES, CHANNELS, UNITS  # noqa: E402

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
MEMBER = "wc-w0.25-r064"


def _bank(out: Path) -> ModelEntry:
    """A one-member column2d bank (a tiny stand-in file; only the entry's recipe is read)."""
    cfg = ColumnConfig()
    path = export_onnx(
        PlainColumnCNN(channels_at(cfg, 0.25), cfg), out / f"{MEMBER}.onnx", (1, 64, 6)
    )
    entry = ModelEntry(
        id=MEMBER,
        file=path.name,
        sha256=sha256_file(path),
        family="width-resolution",
        input=InputSpec("imu", "NTC", 64, 25.0, 32, CHANNELS, UNITS),
        labels=ACTIVITIES,
        normalization=Normalizer((0.0,) * 6, (1.0,) * 6),
        width=0.25,
        resolution=64,
        macs=1,
        params=1,
        file_bytes=path.stat().st_size,
        metrics={"accuracy": 0.9, "f1_weighted": 0.9, "test_windows": 1},
        latency_ms={"p50": 0.1},
        provenance={
            "train_config": dataclasses.asdict(BankTrainConfig()),
            "model_config": dataclasses.asdict(cfg),
            "refit": False,
        },
    )
    write_manifest(out, [entry], {"generator": "test"})
    return entry


def test_recipe_of_a_column_member_builds_the_column_supernet(tmp_path: Path) -> None:
    entry = _bank(tmp_path)
    _, model_cfg, refit = independent_train.recipe_from(entry)
    assert model_cfg == ColumnConfig() and refit is False
    assert isinstance(independent_train.make_model(model_cfg), SlimColumnCNN)
    assert independent.parse_config(MEMBER) == (0.25, 64)


def test_smoke_run_on_a_column_bank(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    bank.mkdir()
    member = _bank(bank)
    out = tmp_path / "ind"
    args = independent.parse_args(
        [
            "--smoke",
            "--configs",
            "w0.25-r064",
            "--bank",
            str(bank),
            "--reference",
            MEMBER,
            "--data",
            "auto",  # data/hapt when imported, else the pickle
            "--out",
            str(out),
        ]
    )
    independent.run(args)
    saved = json.loads((out / "independent-report.json").read_text())
    assert saved["complete"] is True and saved["arch"] == "column2d"
    assert saved["reference_member"] == MEMBER
    assert saved["model_config"]["arch"] == "column2d"
    (row,) = saved["results"]
    assert row["channels"] == list(channels_at(ColumnConfig(), 0.25)) == [16, 32, 64]
    assert sorted(p.name for p in out.glob("*.onnx")) == [f"ind-{MEMBER}.onnx"]
    graph = onnx.load(str(out / row["independent"]["file"])).graph
    (inp,) = graph.input
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 64, 6]
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    assert shapes["features.0.weight"] == [16, 1, 6, 1]
    assert shapes["classifier.weight"] == [6, 6 * 64]
    assert row["independent"]["ort_vs_torch_max_abs_diff"] < 1e-4
    assert 0.0 <= row["independent"]["accuracy"] <= 1.0
    assert row["independent"]["test_windows"] > 100
    assert row["collaborative"]["id"] == MEMBER
    assert row["collaborative"]["accuracy"] == member.metrics["accuracy"]
    assert np.isfinite(row["history"][0]["loss"])


def test_recompare_follows_the_bank_and_keeps_the_independent_side(tmp_path: Path) -> None:
    """After the bank's members change (distilled), --recompare rewrites only the collaborative
    side and adds the supernet slice's figures."""
    bank = tmp_path / "bank"
    bank.mkdir()
    entry = _bank(bank)
    independent_block = {
        "id": f"ind-{MEMBER}",
        "file": f"ind-{MEMBER}.onnx",
        "sha256": "0" * 64,
        "accuracy": 0.92,
        "f1_weighted": 0.919,
        "test_windows": 1,
        "ort_vs_torch_max_abs_diff": 1e-6,
    }
    row = {"config": "w0.25-r064", "width": 0.25, "resolution": 64, "channels": [16, 32, 64]}
    row |= {"macs": 1, "params": 1, "independent": dict(independent_block)}
    row |= independent_report.collaborative_fields(row["independent"], entry)
    assert row["delta_accuracy_pt"] == -2.0 and "delta_supernet_accuracy_pt" not in row
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"arch": "column2d", "results": [row]}))
    distilled = dataclasses.replace(
        entry,
        metrics={**entry.metrics, "accuracy": 0.95, "f1_weighted": 0.949}
        | {"supernet_accuracy": 0.9, "supernet_f1_weighted": 0.9},
    )
    write_manifest(bank, [distilled], {"generator": "test"})
    independent.main(["--recompare", str(report), "--bank", str(bank)])
    (new,) = json.loads(report.read_text())["results"]
    assert new["independent"] == independent_block
    assert new["collaborative"]["accuracy"] == 0.95 and new["collaborative"]["distilled"] is True
    assert new["delta_accuracy_pt"] == 3.0 and new["delta_supernet_accuracy_pt"] == -2.0
    table = independent_report.markdown_table([new])
    assert "+3.00 pt" in table and "-2.00 pt" in table
    report.write_text("{}")
    with pytest.raises(SystemExit, match="not an independent-baseline report"):
        independent.main(["--recompare", str(report), "--bank", str(bank)])
