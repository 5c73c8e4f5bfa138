"""tools.bank.paced_latency: every member timed one run at a time after a pause, the figures
written into the manifest's latency_ms and nothing else changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.tools
pytest.importorskip("tqdm")  # the tools extra

from agent.latency import bank_latencies  # noqa: E402
from agent.manifest import load_manifest, write_manifest  # noqa: E402
from tests.agent.helpers import MODELS  # noqa: E402
from tools.bank import paced_latency  # noqa: E402

MEMBERS = ("wc-w0.10-r032", "wc-w0.25-r064")


def _bank(tmp_path: Path) -> Path:
    bank = tmp_path / "bank"
    bank.mkdir()
    manifest = load_manifest(MODELS)
    entries = [manifest.get(mid) for mid in MEMBERS]
    for e in entries:
        shutil.copy(MODELS / e.file, bank / e.file)
    meta = {k: v for k, v in manifest.meta.items() if k != "manifest_version"}
    write_manifest(bank, entries, meta)
    return bank


def test_paced_figures_are_recorded_and_nothing_else_changes(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    before = json.loads((bank / "manifest.json").read_text())
    files = {p.name: p.read_bytes() for p in bank.glob("*.onnx")}
    argv = ["--bank", str(bank), "--rounds", "5", "--gap-ms", "1", "--quiet"]
    assert paced_latency.main(argv) == 0
    after = json.loads((bank / "manifest.json").read_text())
    assert {p.name: p.read_bytes() for p in bank.glob("*.onnx")} == files
    assert after["paced_latency_by"] == "python -m tools.bank.paced_latency"

    def header(body: dict[str, object]) -> dict[str, object]:
        return {
            k: v for k, v in body.items() if not k.startswith("paced_latency") and k != "models"
        }

    assert header(after) == header(before)
    assert after["paced_latency_at"] != before.get("paced_latency_at")
    for old, new in zip(before["models"], after["models"], strict=True):
        lat = new["latency_ms"]
        assert {k: v for k, v in new.items() if k != "latency_ms"} == {
            k: v for k, v in old.items() if k != "latency_ms"
        }
        assert {k: v for k, v in lat.items() if not k.startswith("paced_")} == {
            k: v for k, v in old["latency_ms"].items() if not k.startswith("paced_")
        }
        assert 0 < lat["paced_p50"] <= lat["paced_p90"] and lat["paced_runs"] == 5
        assert lat["paced_gap_ms"] == 1.0 and lat["paced_board"] and lat["paced_onnxruntime"]
    # the agent's policy now starts from them
    seeds = bank_latencies(list(load_manifest(bank).models))
    assert seeds == {m["id"]: m["latency_ms"]["paced_p50"] for m in after["models"]}


def test_an_altered_member_is_refused_and_nothing_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = _bank(tmp_path)
    before = (bank / "manifest.json").read_bytes()
    path = bank / f"{MEMBERS[1]}.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    assert paced_latency.main(["--bank", str(bank), "--rounds", "2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the manifest" in err[0] and MEMBERS[1] in err[0]
    assert (bank / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--gap-ms", "-1"], ["--seed", "-1"]])
def test_bad_options_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        paced_latency.parse_args(args)
    assert exc.value.code == 2


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no manifest.json"):
        paced_latency.main(["--bank", str(tmp_path), "--quiet"])


def test_the_last_line_says_which_manifest_was_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It changed the manifest without a word (with --quiet, nothing at all was printed)."""
    bank = _bank(tmp_path)
    argv = ["--bank", str(bank), "--rounds", "2", "--gap-ms", "0"]
    assert paced_latency.main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out == f"wrote the paced figures of 2 members into {bank / 'manifest.json'}\n"
    assert paced_latency.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == list(MEMBERS)  # the table, then
    assert lines[-1] == out.strip()


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` reads as read-only to os.access (the tests may run as root)."""
    import os

    real = os.access

    def access(path: object, mode: int, **kw: object) -> bool:
        if Path(str(path)).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_bank_is_refused_before_the_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It measured every round, then failed with a PermissionError traceback."""
    bank = _bank(tmp_path)

    def timed(*_a: object, **_k: object) -> None:
        raise AssertionError("the rounds started")

    monkeypatch.setattr(paced_latency, "paced_latency", timed)
    _read_only(monkeypatch, bank)
    assert paced_latency.main(["--bank", str(bank), "--rounds", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {bank}: cannot rewrite its manifest.json (the folder is read-only); "
        "nothing was measured\n"
    )


def test_a_write_that_fails_at_the_end_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk when the manifest is rewritten: one line, the manifest as it was, and the
    table of what was measured still printed."""
    import errno

    bank = _bank(tmp_path)
    before = (bank / "manifest.json").read_bytes()

    def full(folder: Path, *_a: object, **_k: object) -> Path:
        (folder / "manifest.json.tmp").write_text("half")  # the disk filled up as it wrote
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "manifest.json.tmp"))

    monkeypatch.setattr(paced_latency, "write_manifest", full)
    assert paced_latency.main(["--bank", str(bank), "--rounds", "2", "--gap-ms", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (
        f"error: {bank / 'manifest.json'}: cannot rewrite it (No space left on device); "
        "it was left as it was"
    )
    assert "Traceback" not in captured.err
    assert captured.out.splitlines()[0].startswith(MEMBERS[0])
    assert (bank / "manifest.json").read_bytes() == before
    assert not (bank / "manifest.json.tmp").exists()
