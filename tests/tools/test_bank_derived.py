"""Pruned and int8 members whose parent changed or is gone: what the warning tells a user to do,
and what build and compress do with a member whose parent has left the bank (``--widths`` that
drops it). The banks are manifests over placeholder files in tmp_path; nothing is trained."""

from __future__ import annotations

import re
import shlex
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
GRID_ID = re.compile(r"-w(\d\.\d+)-r(\d+)$")  # wr-w0.50-r064: width 0.5, resolution 64


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
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, ModelEntry] = {}
    for mid, parent in spec.items():
        (folder / f"{mid}.onnx").write_bytes(mid.encode() if graph is None else graph)
        extra: dict[str, Any] = {}
        if parent is not None:
            sha = made[parent].sha256 if parent in made else "f" * 64
            sha = "0" * 64 if mid in changed else sha
            extra["provenance"] = {"parent": parent, "parent_sha256": sha}
        grid = GRID_ID.search(mid)
        if grid is not None:
            extra.update(width=float(grid[1]), resolution=int(grid[2]))
        made[mid] = model_entry(
            folder / f"{mid}.onnx", mid, FAMILIES.get(mid[:2], "width-resolution"), **extra
        )
    return list(made.values())


def _gone(pairs: str, many: bool = False, command: str = COMPRESS) -> str:
    them, are = ("them", "are") if many else ("it", "is")
    return (
        f"warning: the parent{'s' if many else ''} of {pairs} {are} no longer in the bank; run "
        f"{command} to remove {them} (it keeps no member whose parent is gone)"
    )


def _changed(ids: str, command: str = COMPRESS) -> str:
    return (
        f"warning: {ids} were made from a previous version of their parent; run {command} to "
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
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spec: dict[str, str | None],
    changed: tuple[str, ...],
    lines: list[str],
) -> None:
    """The one warning said every stale member was made from a previous version of its parent
    and that compress remakes it; compress cannot remake a member whose parent is gone (it
    removes it). In compress's own folder (models) the advice names no folder."""
    monkeypatch.chdir(tmp_path)
    warn_stale(_bank(Path("models"), spec, changed), Path("models"))
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
    warn_stale(after.models, bank)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("folder", "named"),
    [pytest.param("bank", " --bank bank", id="bank"), pytest.param("models", "", id="models")],
)
def test_a_build_that_drops_a_parent_drops_its_derived_members(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    folder: str,
    named: str,
) -> None:
    """``build --widths`` without the pruning parent (same architecture) told the user to run
    compress to remake the members made from it; compress would have removed them. The int8
    member of a member the build made again is still said to be stale (compress remakes it),
    with the command that does: on the folder the build wrote (``--bank`` unless models), and
    with ``--parent`` (compress's default parent, wr-w1.00-r128, went with the old grid)."""
    monkeypatch.chdir(tmp_path)
    bank = Path(folder)
    write_manifest(bank, _bank(bank, OLD_BANK), {"generator": "test"})
    monkeypatch.setattr(build, "train_supernet", lambda *_a, **_k: [])  # an untrained supernet
    argv = ["--smoke", "--arch", "conv1d", "--widths", "0.5", "--distill-epochs", "0"]
    build.run(build.parse_args([*argv, "--out", str(bank), "--data", "pickle"]))
    out = capsys.readouterr()
    command = f"{COMPRESS}{named} --parent wr-w0.50-r128"
    assert out.err.splitlines() == [_changed("q8-wr-w0.50-r128", command)]
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
    warn_stale(load_manifest(bank).models, bank)
    advice = capsys.readouterr().err
    assert (
        advice
        == _gone("q8-wr-w0.25-r128 (wr-w0.25-r128)", command=f"{COMPRESS} --bank {bank}") + "\n"
    )

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


CHANGED_AND_GONE: dict[str, str | None] = {
    "wr-w1.00-r128": None,
    "q8-wr-w1.00-r128": "wr-w1.00-r128",  # made from a previous version of it
    "q8-wr-w0.50-r128": "wr-w0.50-r128",
}


@pytest.mark.parametrize(
    ("folder", "named"),
    [
        pytest.param("models", "", id="models"),
        pytest.param("./models", "", id="models-dot"),
        pytest.param("{tmp}/models", "", id="models-absolute"),
        pytest.param("build/bank-smoke", " --bank build/bank-smoke", id="smoke-default"),
        pytest.param("build/models", " --bank build/models", id="other-models"),
        pytest.param("my bank", " --bank 'my bank'", id="quoted"),
        pytest.param("{tmp}/bank", " --bank {tmp}/bank", id="absolute"),
    ],
)
def test_the_advice_names_the_folder_the_command_wrote(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    folder: str,
    named: str,
) -> None:
    """The advice was ``run python -m tools.bank.compress`` whatever folder the command wrote:
    compress then worked on models, not on the bank that holds the stale members. Its own
    folder (models, however it is written) keeps the short advice; build --smoke's default
    (build/bank-smoke) is not compress's default without --smoke."""
    monkeypatch.chdir(tmp_path)
    bank = Path(folder.format(tmp=tmp_path))
    warn_stale(_bank(bank, CHANGED_AND_GONE, ("q8-wr-w1.00-r128",)), bank)
    command = COMPRESS + named.format(tmp=tmp_path)
    assert capsys.readouterr().err.splitlines() == [
        _changed("q8-wr-w1.00-r128", command),
        _gone("q8-wr-w0.50-r128 (wr-w0.50-r128)", command=command),
    ]


@pytest.mark.parametrize(
    ("spec", "changed", "lines"),
    [
        pytest.param(
            {
                "wr-w0.50-r128": None,
                "wr-w0.25-r128": None,
                "pr50-wr-w1.00-r128": "wr-w1.00-r128",
                "q8-pr50-wr-w1.00-r128": "pr50-wr-w1.00-r128",
            },
            (),
            [_gone("pr50-wr-w1.00-r128 (wr-w1.00-r128)", command="{c} --parent wr-w0.50-r128")],
            id="default-parent-gone",
        ),
        pytest.param(
            {
                "wc-w0.50-r064": None,
                "wc-w0.50-r128": None,
                "pr50-wc-w1.00-r128": "wc-w1.00-r128",
            },
            (),
            [_gone("pr50-wc-w1.00-r128 (wc-w1.00-r128)", command="{c} --parent wc-w0.50-r128")],
            id="column2d-default-parent-gone",
        ),
        pytest.param(
            {
                "wr-w0.75-r128": None,
                "wr-w0.50-r128": None,
                "pr50-wr-w0.50-r128": "wr-w0.50-r128",
            },
            ("pr50-wr-w0.50-r128",),
            [_changed("pr50-wr-w0.50-r128", "{c} --parent wr-w0.50-r128")],
            id="the-parent-it-was-pruned-from",
        ),
        pytest.param(
            {"wc-w1.00-r128": None, "q8-wc-w0.50-r128": "wc-w0.50-r128"},
            (),
            [_gone("q8-wc-w0.50-r128 (wc-w0.50-r128)", command="{c}")],
            id="column2d-default-parent-here",
        ),
    ],
)
def test_the_advice_names_a_parent_when_compress_would_refuse_without_one(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spec: dict[str, str | None],
    changed: tuple[str, ...],
    lines: list[str],
) -> None:
    """Without --parent compress prunes wr-w1.00-r128 (wc-w1.00-r128 in a column2d bank), and
    refuses to run when that is not in the bank, as when it is the parent that is gone: the
    advice names a parent that is there (the one the bank's pruned members were made from, or
    the widest, finest member)."""
    bank = tmp_path / "bank"
    warn_stale(_bank(bank, spec, changed), bank)
    command = f"{COMPRESS} --bank {bank}"
    assert capsys.readouterr().err.splitlines() == [line.format(c=command) for line in lines]


def test_the_advised_command_runs_where_plain_compress_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The member whose parent is gone is compress's default pruning parent: the advice was a
    command that refuses (and on models, not on this bank). The advised one removes it."""
    bank = tmp_path / "other bank"
    spec = {
        "wr-w0.50-r128": None,
        "cnn1d-base": None,
        "pr50-wr-w1.00-r128": "wr-w1.00-r128",
        "q8-pr50-wr-w1.00-r128": "pr50-wr-w1.00-r128",
    }
    tiny = export_onnx(
        PlainCNN((16, 32, 64), SlimConfig()).eval(), tmp_path / "t.onnx", (1, 128, 6)
    )
    write_manifest(bank, _bank(bank, spec, graph=tiny.read_bytes()), {"generator": "test"})
    warn_stale(load_manifest(bank).models, bank)
    (line,) = capsys.readouterr().err.splitlines()
    advised = shlex.split(line.split("; run ")[1].split(" to remove it")[0])
    assert advised[:3] == ["python", "-m", "tools.bank.compress"]
    assert advised[3:] == ["--bank", str(bank), "--parent", "wr-w0.50-r128"]

    with pytest.raises(SystemExit, match="'wr-w1.00-r128' is not a width-resolution member"):
        compress.run(compress.parse_args(["--bank", str(bank)]))

    def nothing_pays(*_a: Any, **_k: Any) -> tuple[list[ModelEntry], Any]:
        return [], []  # no pruned or int8 member pays this time

    monkeypatch.setattr(compress, "load_experiments", lambda *_a, **_k: ([], "no data"))
    monkeypatch.setattr(compress, "run_pruning", nothing_pays)
    monkeypatch.setattr(compress, "run_quantization", nothing_pays)
    compress.run(compress.parse_args(advised[3:]))
    lines = capsys.readouterr().out.splitlines()
    assert _removed("pr50-wr-w1.00-r128", "wr-w1.00-r128") in lines
    assert {m.id for m in load_manifest(bank).models} == {"wr-w0.50-r128", "cnn1d-base"}


def test_compress_default_folder_is_the_one_the_advice_leaves_unnamed() -> None:
    from tools.bank.derived import DEFAULT_BANK

    assert compress.parse_args([]).out == DEFAULT_BANK


def test_train_baseline_names_the_folder_not_its_working_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train_baseline registers its member in a working copy of the bank (``register(work,
    ...)``): the advice names the folder the user gave."""
    from tools import train_baseline

    shown, work = tmp_path / "bank", tmp_path / ".bank.staging"
    old = _bank(work, {"wr-w1.00-r128": None, "cnn1d-base": None, "q8-cnn1d-base": "cnn1d-base"})
    write_manifest(work, old, {"generator": "test"})
    (work / "cnn1d-base.onnx").write_bytes(b"a new baseline")
    new = model_entry(work / "cnn1d-base.onnx", "cnn1d-base", "baseline")
    train_baseline.register(work, new, {"generator": "x"}, shown=shown)
    assert capsys.readouterr().err.splitlines() == [
        _changed("q8-cnn1d-base", f"{COMPRESS} --bank {shown}")
    ]
