"""``compress --int8-decide-on REPORT``: the accuracy half of the int8 keep rule read from a
selection bank's trials (held-out validation subjects) instead of this bank's own validation
subjects, which a refit bank trained on. A one-parent bank, int8 only, on the 4 smoke subjects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.manifest import load_manifest, write_manifest  # noqa: E402
from tests.tools.entries import model_entry  # noqa: E402
from tools.bank import compress  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402

pytestmark = pytest.mark.tools

PARENT = "wr-w1.00-r128"
TRIAL = f"q8-{PARENT}"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    torch.manual_seed(0)
    net = PlainCNN((16, 32, 64), SlimConfig()).eval()
    path = export_onnx(net, out / f"{PARENT}.onnx", (1, 128, 6))
    write_manifest(out, [model_entry(path, PARENT)], {"generator": "test"})
    return out


def _decisions(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "selection-compress-report.json"
    path.write_text(json.dumps({"int8": rows, "pruning": None}), encoding="utf-8")
    return path


def _compress(bank: Path, tmp_path: Path, *extra: str) -> dict[str, Any]:
    copy = tmp_path / "bank"
    shutil.copytree(bank, copy)
    args = compress.parse_args(["--smoke", "--bank", str(copy), "--no-prune", *extra])
    row: dict[str, Any] = compress.run(args)["report"]["int8"][0]
    assert row["id"] == TRIAL
    assert (TRIAL in {m.id for m in load_manifest(copy).models}) is row["kept"]
    return row


def test_a_large_held_out_loss_drops_the_variant(bank: Path, tmp_path: Path) -> None:
    report = _decisions(
        tmp_path, [{"id": TRIAL, "fp32_val_accuracy": 0.9, "int8_val_accuracy": 0.5}]
    )
    row = _compress(bank, tmp_path, "--int8-decide-on", str(report))
    assert not row["kept"]
    assert (
        row["why"]
        == f"loses 40.00 pt on validation (limit 0.50) on the held-out validation of {report}"
    )
    assert (row["held_out_fp32_val_accuracy"], row["held_out_int8_val_accuracy"]) == (0.9, 0.5)
    # this bank's own validation figures are still measured and reported
    assert 0 <= row["fp32_val_accuracy"] <= 1 and 0 <= row["int8_val_accuracy"] <= 1


def test_no_held_out_loss_leaves_the_decision_to_speed(bank: Path, tmp_path: Path) -> None:
    report = _decisions(
        tmp_path, [{"id": TRIAL, "fp32_val_accuracy": 0.9, "int8_val_accuracy": 0.9}]
    )
    row = _compress(bank, tmp_path, "--int8-decide-on", str(report))
    if row["kept"]:
        assert row["why"].endswith(
            f"+0.00 pt validation drop on the held-out validation of {report}"
        )
    else:
        assert row["why"].startswith("not 1.1x faster")


def test_a_variant_the_selection_bank_never_tried_is_dropped(bank: Path, tmp_path: Path) -> None:
    report = _decisions(
        tmp_path, [{"id": "q8-other", "fp32_val_accuracy": 0.9, "int8_val_accuracy": 0.9}]
    )
    row = _compress(bank, tmp_path, "--int8-decide-on", str(report))
    assert not row["kept"]
    assert row["why"] == f"no trial of {TRIAL} in {report} to decide on"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "No such file or directory"),
        ("[1, 2", "no int8 trials with validation"),
        ('{"int8": [{"id": "q8-x"}]}', "no int8 trials with validation"),
        ('{"int8": []}', "has no int8 trials to decide on"),
    ],
)
def test_a_report_that_cannot_decide_is_one_line_before_any_change(
    bank: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str | None,
    why: str,
) -> None:
    def loaded(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    monkeypatch.setattr(compress, "load_experiments", loaded)
    copy = tmp_path / "bank"
    shutil.copytree(bank, copy)
    before = (copy / "manifest.json").read_bytes()
    report = tmp_path / "r.json"
    if text is not None:
        report.write_text(text, encoding="utf-8")
    code = compress.main(
        ["--smoke", "--bank", str(copy), "--no-prune", "--int8-decide-on", str(report)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"error: {report}: ")
    assert why in err[0]
    assert (copy / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in copy.iterdir()) == ["manifest.json", f"{PARENT}.onnx"]


def test_it_is_refused_with_no_quantize(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        compress.parse_args(["--smoke", "--no-quantize", "--int8-decide-on", "r.json"])
    assert exc.value.code == 2
    assert "--no-quantize makes none" in capsys.readouterr().err


def test_build_passes_it_to_compress_and_checks_it_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.bank import build

    with pytest.raises(SystemExit) as exc:
        build.parse_args(["--out", "x", "--int8-decide-on", "r.json"])  # without --compress
    assert exc.value.code == 2
    assert "add --compress" in capsys.readouterr().err
    args = build.parse_args(["--out", "x", "--compress", "--int8-decide-on", "r.json"])
    assert args.int8_decide_on == Path("r.json")

    def loaded(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: training started before the refusal")

    monkeypatch.setattr(build, "load_experiments", loaded)
    report = tmp_path / "missing.json"
    code = build.main(
        ["--smoke", "--out", str(tmp_path / "b"), "--compress", "--int8-decide-on", str(report)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith(f"error: {report}: not a compress report")
