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


def _render(monkeypatch: pytest.MonkeyPatch, bank: Any, img: Path, doc: Path) -> str:
    """The report section for ``bank`` (made-up latencies; the plots are not drawn)."""
    monkeypatch.setattr(report, "plot_tradeoff", lambda *_a, **_k: None)
    lat = {m.id: {"p50": 0.1 * (i + 1), "runs": 3} for i, m in enumerate(bank.models)}
    return report.render(bank, {}, lat, img, doc)


@pytest.mark.parametrize(
    ("doc", "img", "link"),
    [
        ("docs/model-bank.md", "docs/img", "img"),  # the default: the links it always gave
        ("sub/doc4.md", "plots", "../plots"),  # the review's case: img/... was a broken link
        ("doc.md", "a/b", "a/b"),
    ],
)
def test_image_links_go_from_the_documents_folder_to_the_plots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, doc: str, img: str, link: str
) -> None:
    from agent.manifest import load_manifest

    bank = load_manifest(MODELS)
    for root in (Path(), tmp_path):  # relative as given, or absolute
        text = _render(monkeypatch, bank, root / img, root / doc)
        assert f"![accuracy vs latency]({link}/bank-accuracy-latency.png)" in text
        assert f"![accuracy vs MACs]({link}/bank-accuracy-macs.png)" in text


def test_a_one_member_bank_leaks_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """np.polyfit through one point: a RankWarning on stderr, and a made-up fit in the text."""
    import dataclasses
    import warnings

    from agent.manifest import load_manifest

    full = load_manifest(MODELS)
    bank = dataclasses.replace(full, models=(full.get("wc-w1.00-r128"),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = _render(monkeypatch, bank, Path("img"), Path("doc.md"))
    assert "against the largest member: no smaller fp32 member to compare." in text
    assert "No least-squares fit of latency on MACs: it needs two fp32 members" in text


def test_plots_that_cannot_be_written_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk when the plots are drawn, after the timing run: one line, not a traceback."""
    import errno

    def full(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        report,
        "measure_all",
        lambda bank, **_: {m.id: {"p50": 1.0, "runs": 1} for m in bank.models},
    )
    monkeypatch.setattr(report, "plot_tradeoff", full)
    argv = _report(MODELS, tmp_path)
    assert report.main(argv) == 1
    _one_error_line(capsys, f"--img {tmp_path / 'img'}: cannot write the plots", "No space left")
    assert not (tmp_path / "doc.md").exists()
