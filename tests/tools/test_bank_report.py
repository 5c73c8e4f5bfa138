"""``python -m tools.bank.report`` on a broken bank or destination: one error line naming the
file, exit status 1, and no timing run before a destination that cannot be written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")

from tools.bank import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"

pytestmark = pytest.mark.tools


@pytest.fixture
def no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks under test come before the timing run: reaching it is a failure."""

    def timed(*_: Any, **__: Any) -> None:
        raise AssertionError("the timing run started")

    monkeypatch.setattr(report, "interleaved_latency", timed)


def _report(bank: Path, tmp_path: Path, *extra: str) -> list[str]:
    doc, img = tmp_path / "doc.md", tmp_path / "img"
    return ["--models", str(bank), "--doc", str(doc), "--img", str(img), *extra]


def _one_error_line(capsys: pytest.CaptureFixture[str], *names: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, err
    return err


def _bank_without_files(tmp_path: Path) -> Path:
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(MODELS / "manifest.json", bank / "manifest.json")
    return bank


def test_a_missing_member_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_timing: None
) -> None:
    bank = _bank_without_files(tmp_path)
    assert report.main(_report(bank, tmp_path)) == 1
    _one_error_line(capsys, str(bank / "cnn1d-base.onnx"), "missing", "cnn1d-base")
    assert not (tmp_path / "doc.md").exists()


def test_a_corrupt_member_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_timing: None
) -> None:
    """ONNX Runtime's InvalidProtobuf (no common base with NoSuchFile) was a traceback."""
    bank = _bank_without_files(tmp_path)
    (bank / "cnn1d-base.onnx").write_bytes(b"not an onnx file")
    assert report.main(_report(bank, tmp_path)) == 1
    _one_error_line(capsys, str(bank / "cnn1d-base.onnx"), "cannot load model cnn1d-base")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\udcff"])
def test_a_corrupt_compress_report_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_timing: None, text: str
) -> None:
    bank = _bank_without_files(tmp_path)
    (bank / "compress-report.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    assert report.main(_report(bank, tmp_path)) == 1
    _one_error_line(capsys, str(bank / "compress-report.json"), "compress report")


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("nodir/x.md", "does not exist"),
        ("folder", "is a folder"),
    ],
)
def test_an_unwritable_doc_is_refused_before_the_timing_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_timing: None,
    where: str,
    problem: str,
) -> None:
    (tmp_path / "folder").mkdir()
    doc = tmp_path / where
    argv = ["--models", str(MODELS), "--doc", str(doc), "--img", str(tmp_path / "img")]
    assert report.main(argv) == 1
    _one_error_line(capsys, f"--doc {doc}", problem)


def test_an_img_under_a_file_is_refused_before_the_timing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_timing: None
) -> None:
    (tmp_path / "file").write_text("x")
    img = tmp_path / "file" / "img"
    argv = ["--models", str(MODELS), "--doc", str(tmp_path / "d.md"), "--img", str(img)]
    assert report.main(argv) == 1
    _one_error_line(capsys, f"--img {img}", "is not a folder")
