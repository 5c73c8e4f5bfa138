"""Pruned and int8 members whose parent changed or is gone: what the warning tells a user to do,
and what build and compress do with a member whose parent has left the bank (``--widths`` that
drops it). The banks are manifests over placeholder files in tmp_path; nothing is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from agent.manifest import ModelEntry, load_manifest, write_manifest  # noqa: E402
from tests.tools.entries import model_entry  # noqa: E402
from tools.bank import build, compress  # noqa: E402
from tools.bank.derived import orphans, warn_stale  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402

pytestmark = pytest.mark.tools

FAMILIES = {"pr": "pruned", "q8": "int8", "cn": "baseline"}
COMPRESS = "python -m tools.bank.compress"


def _bank(
    folder: Path,
    spec: dict[str, str | None],
    changed: tuple[str, ...] = (),
    graph: bytes | None = None,
) -> list[ModelEntry]:
    """``spec`` maps each member to its parent (None: made from data, a width-resolution or
    baseline member); a parent not in ``spec`` is gone. The members in ``changed`` were made
    from a previous version of their parent. Each file holds its id (its own sha256), or
    ``graph`` (an ONNX model, for a tool that reads the files)."""
    folder.mkdir(exist_ok=True)
    made: dict[str, ModelEntry] = {}
    for mid, parent in spec.items():
        (folder / f"{mid}.onnx").write_bytes(mid.encode() if graph is None else graph)
        extra: dict[str, Any] = {}
        if parent is not None:
            sha = made[parent].sha256 if parent in made else "f" * 64
            sha = "0" * 64 if mid in changed else sha
            extra["provenance"] = {"parent": parent, "parent_sha256": sha}
        made[mid] = model_entry(
            folder / f"{mid}.onnx", mid, FAMILIES.get(mid[:2], "width-resolution"), **extra
        )
    return list(made.values())


def _gone(pairs: str, many: bool = False) -> str:
    them, are = ("them", "are") if many else ("it", "is")
    return (
        f"warning: the parent{'s' if many else ''} of {pairs} {are} no longer in the bank; run "
        f"{COMPRESS} to remove {them} (it keeps no member whose parent is gone)"
    )


def _changed(ids: str) -> str:
    return (
        f"warning: {ids} were made from a previous version of their parent; run {COMPRESS} to "
        "remake them"
    )


@pytest.mark.parametrize(
    ("spec", "changed", "lines"),
    [
        pytest.param(
            {"wr-w1.00-r128": None, "q8-wr-w0.50-r128": "wr-w0.50-r128"},
            (),
            [_gone("q8-wr-w0.50-r128 (wr-w0.50-r128)")],
            id="gone",
        ),
        pytest.param(
            {"q8-wr-w0.50-r128": "wr-w0.50-r128", "pr50-wr-w1.00-r128": "wr-w1.00-r128"},
            (),
            [_gone("q8-wr-w0.50-r128 (wr-w0.50-r128), pr50-wr-w1.00-r128 (wr-w1.00-r128)", True)],
            id="two-gone",
        ),
        pytest.param(
            {
                "wr-w1.00-r128": None,
                "q8-wr-w1.00-r128": "wr-w1.00-r128",
                "q8-wr-w0.50-r128": "wr-w0.50-r128",
            },
            ("q8-wr-w1.00-r128",),
            [_changed("q8-wr-w1.00-r128"), _gone("q8-wr-w0.50-r128 (wr-w0.50-r128)")],
            id="changed-and-gone",
        ),
    ],
)
def test_a_gone_parent_is_named_and_not_said_to_be_remade(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spec: dict[str, str | None],
    changed: tuple[str, ...],
    lines: list[str],
) -> None:
    """The one warning said every stale member was made from a previous version of its parent
    and that compress remakes it; compress cannot remake a member whose parent is gone (it
    removes it)."""
    warn_stale(_bank(tmp_path, spec, changed))
    out = capsys.readouterr()
    assert out.err.splitlines() == lines and out.out == ""


@pytest.mark.parametrize(
    ("spec", "gone"),
    [
        pytest.param({"wr-w1.00-r128": None, "cnn1d-base": None}, [], id="no-derived"),
        pytest.param({"wr-w1.00-r128": None, "q8-wr-w1.00-r128": "wr-w1.00-r128"}, [], id="kept"),
        pytest.param({"q8-wr-w0.50-r128": "wr-w0.50-r128"}, ["q8-wr-w0.50-r128"], id="gone"),
        pytest.param(
            {"pr50-wr-w1.00-r128": "wr-w1.00-r128", "q8-pr50-wr-w1.00-r128": "pr50-wr-w1.00-r128"},
            ["pr50-wr-w1.00-r128", "q8-pr50-wr-w1.00-r128"],
            id="made-from-a-gone-one",
        ),
    ],
)
def test_orphans(tmp_path: Path, spec: dict[str, str | None], gone: list[str]) -> None:
    assert [m.id for m in orphans(_bank(tmp_path, spec))] == gone


OLD_BANK: dict[str, str | None] = {
    "wr-w1.00-r128": None,
    "wr-w0.50-r128": None,
    "cnn1d-base": None,
    "pr50-wr-w1.00-r128": "wr-w1.00-r128",
    "q8-pr50-wr-w1.00-r128": "pr50-wr-w1.00-r128",
    "q8-wr-w0.50-r128": "wr-w0.50-r128",
    "q8-cnn1d-base": "cnn1d-base",
}


def _removed(mid: str, parent: str) -> str:
    return f"removed {mid}: made from {parent}, which is no longer in the bank"


@pytest.mark.parametrize(
    ("grid", "removed"),
    [
        pytest.param(
            ["wr-w1.00-r128"],
            [
                "removed wr-w0.50-r128: not in the new grid",
                _removed("q8-wr-w0.50-r128", "wr-w0.50-r128"),
            ],
            id="drops-an-int8-parent",
        ),
        pytest.param(
            ["wr-w0.50-r128"],
            [
                "removed wr-w1.00-r128: not in the new grid",
                _removed("pr50-wr-w1.00-r128", "wr-w1.00-r128"),
                _removed("q8-pr50-wr-w1.00-r128", "pr50-wr-w1.00-r128"),
            ],
            id="drops-the-pruned-parent",
        ),
    ],
)
def test_a_new_grid_takes_the_members_made_from_what_it_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grid: list[str], removed: list[str]
) -> None:
    """A grid without a member left its pruned and int8 members in the bank without a parent,
    with a warning telling to run compress (which cannot remake them). Now they go with it, and
    build says so; every other member (the baseline's int8 one too) stays."""
    bank = tmp_path / "bank"
    old = _bank(bank, OLD_BANK)
    write_manifest(bank, old, {"generator": "test"})
    new = _bank(tmp_path / "new", {mid: None for mid in grid})
    for m in new:
        (bank / m.file).write_bytes((tmp_path / "new" / m.file).read_bytes())
    build.merge_manifest(bank, new, {"generator": "x"})
    assert capsys.readouterr().out.splitlines() == removed
    after = load_manifest(bank)
    gone = {line.split()[1].rstrip(":") for line in removed}
    assert {m.id for m in after.models} == (set(OLD_BANK) | set(grid)) - gone
    assert sorted(p.name for p in bank.iterdir() if p.suffix == ".onnx") == sorted(
        m.file for m in after.models
    )
    warn_stale(after.models)
    assert capsys.readouterr().err == ""


def test_a_build_that_drops_a_parent_drops_its_derived_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``build --widths`` without the pruning parent (same architecture) told the user to run
    compress to remake the members made from it; compress would have removed them. The int8
    member of a member the build made again is still said to be stale (compress remakes it)."""
    bank = tmp_path / "bank"
    write_manifest(bank, _bank(bank, OLD_BANK), {"generator": "test"})
    monkeypatch.setattr(build, "train_supernet", lambda *_a, **_k: [])  # an untrained supernet
    argv = ["--smoke", "--arch", "conv1d", "--widths", "0.5", "--distill-epochs", "0"]
    build.run(build.parse_args([*argv, "--out", str(bank), "--data", "pickle"]))
    out = capsys.readouterr()
    assert out.err.splitlines() == [_changed("q8-wr-w0.50-r128")]
    assert _removed("q8-pr50-wr-w1.00-r128", "pr50-wr-w1.00-r128") in out.out.splitlines()
    after = load_manifest(bank)
    assert {m.id for m in after.models} == {
        "wr-w0.50-r128",
        "wr-w0.50-r064",  # the smoke grid's other resolution
        "cnn1d-base",
        "q8-cnn1d-base",
        "q8-wr-w0.50-r128",
    }
    assert sorted(p.name for p in bank.glob("*.onnx")) == sorted(m.file for m in after.models)


def test_compress_removes_a_member_whose_parent_is_gone_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the warning promises: the advised compress run removes the member (it said that
    the member's parent had changed)."""
    bank = tmp_path / "bank"
    spec = {**OLD_BANK, "q8-wr-w0.25-r128": "wr-w0.25-r128"}  # a bank from before this fix
    tiny = export_onnx(
        PlainCNN((16, 32, 64), SlimConfig()).eval(), tmp_path / "t.onnx", (1, 128, 6)
    )
    write_manifest(bank, _bank(bank, spec, graph=tiny.read_bytes()), {"generator": "test"})
    warn_stale(load_manifest(bank).models)
    advice = capsys.readouterr().err
    assert advice == _gone("q8-wr-w0.25-r128 (wr-w0.25-r128)") + "\n"

    def quantized(*_a: Any, **_k: Any) -> tuple[list[ModelEntry], list[dict[str, Any]]]:
        return [], []  # no int8 member pays this time

    monkeypatch.setattr(compress, "load_experiments", lambda *_a, **_k: ([], "no data"))
    monkeypatch.setattr(compress, "run_quantization", quantized)
    compress.run(compress.parse_args(["--bank", str(bank), "--no-prune"]))
    lines = capsys.readouterr().out.splitlines()
    assert _removed("q8-wr-w0.25-r128", "wr-w0.25-r128") in lines
    assert "removed q8-wr-w0.50-r128: replaced, or its parent changed" in lines
    assert "q8-wr-w0.25-r128" not in {m.id for m in load_manifest(bank).models}
    assert not (bank / "q8-wr-w0.25-r128.onnx").exists()
