"""A bank folder changes all at once or not at all (tools.bank.staging)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tools.bank.staging import check_writable, staged_bank, staging_dir


def _bank(tmp_path: Path) -> Path:
    bank = tmp_path / "models"
    bank.mkdir()
    (bank / "manifest.json").write_text("old manifest")
    (bank / "a.onnx").write_bytes(b"a")
    (bank / "b.onnx").write_bytes(b"b")
    (bank / "gone.onnx").write_bytes(b"gone")
    return bank


def _state(bank: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(bank.iterdir())}


def test_success_moves_in_what_changed_and_deletes_what_was_deleted(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    a_inode = (bank / "a.onnx").stat().st_ino
    with staged_bank(bank) as work:
        assert work != bank and _state(work) == _state(bank)  # a full working copy
        (work / "b.onnx").write_bytes(b"b2")
        (work / "new.onnx").write_bytes(b"new")
        (work / "gone.onnx").unlink()
        (work / "manifest.json").write_text("new manifest")
        assert _state(bank)["b.onnx"] == b"b"  # nothing moves before the end
    assert _state(bank) == {
        "a.onnx": b"a",
        "b.onnx": b"b2",
        "manifest.json": b"new manifest",
        "new.onnx": b"new",
    }
    assert (bank / "a.onnx").stat().st_ino == a_inode  # unchanged files are not rewritten
    assert not staging_dir(bank).exists()


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failure_or_ctrl_c_leaves_the_folder_as_it_was(
    tmp_path: Path, error: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = _bank(tmp_path)
    before = _state(bank)
    with pytest.raises((RuntimeError, SystemExit)) as exc:
        with staged_bank(bank) as work:
            (work / "a.onnx").write_bytes(b"half-written")
            (work / "gone.onnx").unlink()
            raise error
    assert _state(bank) == before
    assert not staging_dir(bank).exists()
    if isinstance(error, KeyboardInterrupt):  # one line and the shell's exit status for it
        assert exc.value.code == 130  # type: ignore[union-attr]
        assert capsys.readouterr().err == f"interrupted: {bank} was left as it was\n"


def test_a_new_bank_and_a_stale_working_copy(tmp_path: Path) -> None:
    bank = tmp_path / "deep" / "models"
    stale = staging_dir(bank)
    stale.mkdir(parents=True)
    (stale / "junk.onnx").write_bytes(b"from a killed run")
    with staged_bank(bank) as work:
        assert list(work.iterdir()) == []  # the killed run's leftovers are not inherited
        (work / "m.onnx").write_bytes(b"m")
        (work / "manifest.json").write_text("{}")
    assert _state(bank) == {"m.onnx": b"m", "manifest.json": b"{}"}


def test_one_tool_at_a_time_and_nothing_reverted(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    with staged_bank(bank) as work:
        with pytest.raises(SystemExit, match="another tool is changing .* right now"):
            with staged_bank(bank):
                pass
        (work / "b.onnx").write_bytes(b"b2")  # the tool's change
        (bank / "a.onnx").write_bytes(b"a, changed meanwhile by another program")
        (bank / "report.partial.json").write_text("{}")
    state = _state(bank)
    assert state["b.onnx"] == b"b2"
    assert state["a.onnx"] == b"a, changed meanwhile by another program"  # not reverted
    assert state["report.partial.json"] == b"{}"  # not in the snapshot: left alone
    with staged_bank(bank):  # free again
        pass


def test_a_bank_behind_a_symlink_is_staged_beside_its_real_folder(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    real = _bank(tmp_path / "disk")
    link = tmp_path / "models"
    link.symlink_to(real)
    assert staging_dir(link) == real.parent / ".models.staging"  # same filesystem as the files
    with staged_bank(link) as work:
        (work / "b.onnx").write_bytes(b"b3")
    assert link.is_symlink() and (real / "b.onnx").read_bytes() == b"b3"


def test_ctrl_c_in_a_nested_working_copy_is_reported_once_for_the_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """build runs compress on its working copy, which stages again: the message names the
    bank the user gave, not a hidden working copy."""
    bank = _bank(tmp_path)
    before = _state(bank)
    with pytest.raises(SystemExit) as exc:
        with staged_bank(bank) as work:
            with staged_bank(work):
                raise KeyboardInterrupt
    assert exc.value.code == 130
    assert capsys.readouterr().err == f"interrupted: {bank} was left as it was\n"
    assert _state(bank) == before


def test_ctrl_c_during_the_commit_comes_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C while the files moved in said "left as it was" over a folder half new: it now
    waits for the commit, and the message says nothing about the folder it no longer knows."""
    import os
    import signal

    from tools.bank import staging

    bank = _bank(tmp_path)
    real = staging._commit

    def commit(*a: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # in the middle of the moves
        real(*a)

    monkeypatch.setattr(staging, "_commit", commit)
    with pytest.raises(KeyboardInterrupt):
        with staged_bank(bank) as work:
            (work / "a.onnx").write_bytes(b"a2")
            (work / "manifest.json").write_text('{"new": true}')
    assert _state(bank)["a.onnx"] == b"a2" and _state(bank)["manifest.json"] == b'{"new": true}'
    assert not staging_dir(bank).exists()
    assert "left as it was" not in capsys.readouterr().err


def test_interrupts_held_lets_the_block_finish_first() -> None:
    import os
    import signal

    from tools.bank.staging import interrupts_held

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("block")
    assert done == ["block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_check_writable_names_a_file_in_the_way(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit) as exc:
        check_writable(afile)
    assert str(exc.value.code) == (
        f"error: {afile}: cannot create or change the bank folder (it is a file)"
    )
    with pytest.raises(SystemExit) as exc:
        check_writable(afile / "bank")
    assert str(exc.value.code).endswith(f"({afile} is a file)")
    check_writable(tmp_path / "new" / "bank")


def test_check_writable_beside_or_inside_the_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build and compress stage beside the bank (its parent must be writable); distill stages
    inside it (``beside=False``: only the bank must be)."""
    import os

    (tmp_path / "parent").mkdir()
    bank = _bank(tmp_path / "parent")
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, *a, **k: Path(p) != bank.parent and real(p, m, *a, **k)
    )
    with pytest.raises(SystemExit, match=r"\(.*parent is read-only\)"):
        check_writable(bank)
    check_writable(bank, beside=False)


def test_interrupts_held_holds_sigterm_too() -> None:
    """SIGTERM during a bank's commit waits for it, then acts as its handler says (run_main's
    raises :class:`tools.cli.Terminated`)."""
    import os
    import signal

    from tools.bank.staging import interrupts_held
    from tools.cli import Terminated, _terminated

    old = signal.signal(signal.SIGTERM, _terminated)
    done = []
    try:
        with pytest.raises(Terminated):
            with interrupts_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                done.append("block")
        assert signal.getsignal(signal.SIGTERM) is _terminated  # restored
    finally:
        signal.signal(signal.SIGTERM, old)
    assert done == ["block"]
