"""Member distillation (``tools.bank.distill``) on a tiny column2d bank, and the fine-tuning
loop's precomputed soft targets."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from agent.manifest import load_manifest, sha256_file  # noqa: E402
from tools.bank import build, distill, distill_member, teachers  # noqa: E402
from tools.bank.finetune import FinetuneConfig, finetune  # noqa: E402
from tools.bank.parent import plain_from_onnx  # noqa: E402
from tools.bank.supernet2d import ColumnConfig  # noqa: E402
from tools.export import ort_logits, session, torch_logits  # noqa: E402

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(the bank as built, the same bank distilled, the distill report)."""
    root = tmp_path_factory.mktemp("distill")
    built = root / "built"
    args = build.parse_args(
        ["--smoke", "--max-steps", "3", "--distill-epochs", "0", "--out", str(built)]
    )
    build.run(args)
    distilled = root / "distilled"
    shutil.copytree(built, distilled)
    report = distill.run(distill.parse_args(["--smoke", "--epochs", "1", "--bank", str(distilled)]))
    return built, distilled, report


def test_every_member_is_distilled_from_the_full_configuration(
    banks: tuple[Path, Path, dict[str, Any]],
) -> None:
    built, distilled, report = banks
    before = {m.id: m for m in load_manifest(built).models}
    after = load_manifest(distilled)
    teacher = teachers.default_teacher(list(before.values()))
    assert teacher.id == "wc-w1.00-r128"
    assert {m.id for m in after.models} == set(before)
    changed = 0
    for m in after.models:
        old = before[m.id]
        d = m.provenance["distilled"]
        assert d["teacher"] == teacher.id and d["teacher_sha256"] == teacher.sha256
        assert d["supernet_sha256"] == old.sha256 and d["epochs"] == 1
        assert d["dataset"].startswith("UCI HAPT (CC BY 4.0), ")  # which source, for a rebuild
        assert m.family == old.family and m.input == old.input and m.macs == old.macs
        assert m.metrics["supernet_accuracy"] == old.metrics["accuracy"]
        assert "val_accuracy" in m.metrics and "supernet_val_accuracy" in m.metrics
        path = after.path_of(m)
        assert sha256_file(path) == m.sha256 and path.stat().st_size == m.file_bytes
        changed += m.sha256 != old.sha256
        # the exported graph is the fine-tuned module: ORT == PyTorch on the new weights
        plain = plain_from_onnx(path, ColumnConfig())
        x = np.random.default_rng(0).standard_normal((4, *m.input.shape[1:])).astype(np.float32)
        assert np.max(np.abs(torch_logits(plain, x) - ort_logits(session(path), x))) < 1e-4
    assert changed == len(before)  # training steps moved every member's weights
    assert not (distilled / distill.STAGING).exists()
    saved = json.loads((distilled / distill.REPORT_FILE).read_text())
    assert [r["id"] for r in saved["rows"]] == [r["id"] for r in report["rows"]]
    assert len(saved["rows"]) == len(before)


def test_a_distilled_bank_is_refused_and_left_alone(
    banks: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, distilled, _ = banks
    manifest = (distilled / "manifest.json").read_bytes()
    hint = r"already distilled: .*rebuild the bank with .* --distill-epochs 0\)"
    with pytest.raises(SystemExit, match=hint):  # (the hint: finding 13 of review s15)
        distill.run(distill.parse_args(["--smoke", "--bank", str(distilled)]))
    assert (distilled / "manifest.json").read_bytes() == manifest


def test_unknown_member_and_teacher_are_refused(banks: tuple[Path, Path, dict[str, Any]]) -> None:
    built, _, _ = banks
    with pytest.raises(SystemExit, match="not width-resolution members"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(built), "--members", "wc-nope"]))
    with pytest.raises(SystemExit, match="a teacher and --keep-teacher is set"):
        argv = ["--smoke", "--bank", str(built), "--members", "wc-w1.00-r128", "--keep-teacher"]
        distill.run(distill.parse_args(argv))
    with pytest.raises(SystemExit, match="no teacher wc-nope"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(built), "--teacher", "wc-nope"]))
    narrow = [m for m in load_manifest(built).models if (m.width or 1) < 0.9]
    with pytest.raises(ValueError, match="no member of width >= 0.9"):
        teachers.pick_teachers(narrow, None, 0.9)
    for bad in (["--epochs", "0"], ["--ensemble-width", "0"], ["--ensemble-width", "1.5"]):
        with pytest.raises(SystemExit):
            distill.parse_args(bad)
    with pytest.raises(SystemExit):  # one teacher rule at a time
        distill.parse_args(["--teacher", "wc-w1.00-r128", "--ensemble-width", "1"])


def test_finetune_follows_precomputed_soft_targets() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 2, 3))
    x = torch.randn(64, 8, 2)
    y = torch.zeros(64, dtype=torch.long)
    soft = torch.tensor([[0.0, 0.0, 1.0]]).repeat(64, 1)  # the teacher says class 2
    cfg = FinetuneConfig(lr=5e-2, kd_weight=1.0, weight_decay=0.0, scale_aug=0.0)
    finetune(model, None, x, y, 200, cfg, torch.Generator().manual_seed(0), soft=soft)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert bool((pred == 2).all())  # pure distillation ignores the labels
    with pytest.raises(ValueError, match="soft targets for 3 windows"):
        finetune(model, None, x, y, 1, cfg, torch.Generator(), soft=soft[:3])


def test_keep_teacher_leaves_the_full_configuration_alone(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    built, _, _ = banks
    bank = tmp_path / "bank"
    shutil.copytree(built, bank)
    teacher = load_manifest(built).get("wc-w1.00-r128")
    distill.run(
        distill.parse_args(["--smoke", "--epochs", "1", "--bank", str(bank), "--keep-teacher"])
    )
    after = load_manifest(bank)
    assert after.get(teacher.id) == teacher
    others = [m for m in after.models if m.id != teacher.id]
    assert others and all(
        m.provenance["distilled"]["teacher_sha256"] == teacher.sha256 for m in others
    )


def _distil_one(
    built: Path, bank: Path, soup: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], Any, dict[str, Any]]:
    """Distil ``wc-w0.25-r064`` of a copy of ``built`` with ``--soup N``; returns the trained
    runs (the modules finetune trained, in order), its manifest entry and the exported weights."""
    shutil.copytree(built, bank)
    runs: list[Any] = []

    def recording(model: Any, *args: Any, **kwargs: Any) -> float:
        runs.append(model)
        return finetune(model, *args, **kwargs)

    monkeypatch.setattr(distill_member, "finetune", recording)
    argv = ["--smoke", "--epochs", "1", "--bank", str(bank), "--keep-teacher"]
    distill.run(distill.parse_args([*argv, "--members", "wc-w0.25-r064", "--soup", str(soup)]))
    m = load_manifest(bank).get("wc-w0.25-r064")
    return runs, m, plain_from_onnx(bank / m.file, ColumnConfig()).state_dict()


def test_a_soup_member_is_the_mean_of_its_runs_each_with_its_own_seed(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = tmp_path / "bank"
    runs, m, exported = _distil_one(banks[0], bank, 3, monkeypatch)
    assert len(runs) == 3
    states = [r.state_dict() for r in runs]
    assert not torch.equal(states[0]["classifier.weight"], states[1]["classifier.weight"])
    for k, v in exported.items():
        mean = sum(s[k] for s in states) / 3
        assert torch.allclose(v, mean, atol=1e-6), k
    d = m.provenance["distilled"]
    assert d["soup"] == 3 and [r["seed"] for r in d["runs"]] == [0, 1, 2]
    for r in d["runs"]:
        assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1
    report = json.loads((bank / distill.REPORT_FILE).read_text())
    assert report["soup"] == 3 and [r["seed"] for r in report["rows"][0]["runs"]] == [0, 1, 2]


def test_soup_1_is_one_run_with_no_runs_in_its_provenance(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, m, exported = _distil_one(banks[0], tmp_path / "bank", 1, monkeypatch)
    assert len(runs) == 1
    assert all(torch.equal(v, runs[0].state_dict()[k]) for k, v in exported.items())
    assert m.provenance["distilled"]["soup"] == 1 and "runs" not in m.provenance["distilled"]


def test_a_soup_of_nothing_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        distill.parse_args(["--soup", "0"])
    assert exc.value.code == 2 and "--soup" in capsys.readouterr().err


def test_a_broken_bank_is_refused_with_one_line(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    built, _, _ = banks
    with pytest.raises(SystemExit, match="none: no such bank folder"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(tmp_path / "none")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no model manifest"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(tmp_path / "empty")]))
    bank = tmp_path / "bank"
    shutil.copytree(built, bank)
    manifest = (bank / "manifest.json").read_bytes()
    member = load_manifest(bank).get("wc-w0.25-r064")
    (bank / member.file).write_bytes(b"not onnx")
    with pytest.raises(SystemExit, match="does not match the manifest's sha256"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(bank)]))
    (bank / member.file).unlink()
    with pytest.raises(SystemExit, match="is missing"):
        distill.run(distill.parse_args(["--smoke", "--bank", str(bank)]))
    assert (bank / "manifest.json").read_bytes() == manifest
    assert not (bank / distill.STAGING).exists()


def test_an_ensemble_teacher_averages_its_members_at_their_own_resolutions(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    built, _, _ = banks
    members = load_manifest(built).models
    wide = teachers.pick_teachers(members, None, 1.0)
    assert {t.width for t in wide} == {1.0} and len({t.resolution for t in wide}) >= 2
    assert teachers.pick_teachers(members, "wc-w1.00-r128,wc-w1.00-r128", None) == [
        next(m for m in members if m.id == "wc-w1.00-r128")
    ]
    # the ensemble's targets are the mean of each teacher's softmax on the aligned rows
    rng = np.random.default_rng(0)
    inputs = {
        r: torch.from_numpy(rng.standard_normal((5, r, 6)).astype(np.float32))
        for r in {t.resolution for t in wide}
    }
    got = teachers.ensemble_soft_targets(built, wide, inputs)
    each = [
        teachers.soft_targets(plain_from_onnx(built / t.file, ColumnConfig()), inputs[t.resolution])
        for t in wide
    ]
    assert got.shape == each[0].shape
    assert torch.allclose(got, sum(each) / len(each), atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(5), atol=1e-5)
    # a run with the ensemble: its members stay (--keep-teacher), the others name all of them
    bank = tmp_path / "bank"
    shutil.copytree(built, bank)
    argv = [
        "--smoke",
        "--epochs",
        "1",
        "--bank",
        str(bank),
        "--ensemble-width",
        "1",
        "--keep-teacher",
    ]
    distill.run(distill.parse_args(argv))
    after = load_manifest(bank)
    for t in wide:
        assert after.get(t.id) == t
    others = [m for m in after.models if m.id not in {t.id for t in wide}]
    assert others
    for m in others:
        d = m.provenance["distilled"]
        assert d["teacher"] == [t.id for t in wide]
        assert d["teacher_sha256"] == [t.sha256 for t in wide]


def test_teacher_at_resolution_chains_through_the_full_width_members(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs: the width-1.0 members from the full configuration, then every other member
    from the width-1.0 member at its own resolution (a teacher assistant)."""
    built, _, _ = banks
    bank = tmp_path / "bank"
    shutil.copytree(built, bank)
    members = load_manifest(built).models
    full = [m.id for m in members if m.width == 1.0]
    base = ["--smoke", "--epochs", "1", "--bank", str(bank)]
    distill.run(distill.parse_args([*base, "--members", ",".join(full)]))
    assistants = {m.resolution: m for m in load_manifest(bank).models if m.width == 1.0}
    assert all("distilled" in m.provenance for m in assistants.values())

    real_finetune = distill_member.finetune
    seen: dict[str, tuple[Any, Any]] = {}

    def spy(model: Any, _v: Any, x: Any, y: Any, *a: Any, **kw: Any) -> float:
        seen[kw["desc"].split()[0]] = (x, kw["soft"])
        return real_finetune(model, _v, x, y, *a, **kw)

    monkeypatch.setattr(distill_member, "finetune", spy)
    distill.run(distill.parse_args([*base, "--teacher-at-resolution", "--keep-teacher"]))
    after = load_manifest(bank)
    for t in assistants.values():
        assert after.get(t.id) == t  # the assistants stay as the first run left them
    students = [m for m in after.models if m.width != 1.0]
    assert students and set(seen) == {m.id for m in students}
    for m in students:
        d = m.provenance["distilled"]
        t = assistants[m.resolution]
        assert d["teacher"] == t.id and d["teacher_sha256"] == t.sha256
        assert d["teacher_at_resolution"] is True
        # the targets a student learned from are its assistant's softmax on the student's rows
        x, soft = seen[m.id]
        want = teachers.soft_targets(plain_from_onnx(bank / t.file, ColumnConfig()), x)
        assert torch.allclose(soft, want, atol=1e-6)
    lowest = min(assistants)
    without = [m for m in members if not (m.width == 1.0 and m.resolution == lowest)]
    with pytest.raises(ValueError, match=f"no width-1.0 member at resolution {lowest}"):
        teachers.teachers_at_resolution(without, without)


def _with_stale_int8(built: Path, bank: Path) -> Path:
    """A copy of the smoke bank at ``bank`` with an int8 member of its full configuration
    (which distilling will change: the int8 member is then stale)."""
    from agent.manifest import write_manifest
    from tests.tools.conftest import int8_of

    shutil.copytree(built, bank)
    manifest = load_manifest(bank)
    parent = manifest.get("wc-w1.00-r128")
    assert parent is not None
    write_manifest(bank, [*manifest.models, int8_of(bank, parent)], dict(manifest.meta))
    return bank


@pytest.mark.parametrize("compress_follows", [False, True])
def test_members_left_stale_are_named_unless_compress_remakes_them(
    banks: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compress_follows: bool,
) -> None:
    bank = _with_stale_int8(banks[0], tmp_path / "bank")
    args = distill.parse_args(["--smoke", "--epochs", "1", "--bank", str(bank)])
    args.compress_follows = compress_follows  # what build --compress sets
    capsys.readouterr()
    distill.run(args)
    err = capsys.readouterr().err
    named = "warning: q8-wc-w1.00-r128 were made from a previous version of their parent" in err
    assert named is not compress_follows


@pytest.mark.parametrize("through_build", [False, True])
def test_the_stale_advice_names_the_bank_the_user_named(
    banks: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    through_build: bool,
) -> None:
    """The advice was ``run python -m tools.bank.compress`` (compress on models) for any bank;
    build runs distill on its working copy (``.NAME.staging``), which the advice must not
    name either."""
    shown = tmp_path / "bank"
    bank = _with_stale_int8(banks[0], tmp_path / ".bank.staging" if through_build else shown)
    args = distill.parse_args(["--smoke", "--epochs", "1", "--bank", str(shown)])
    args.bank = bank  # what build does (its working copy)
    capsys.readouterr()
    distill.run(args)
    assert (
        "warning: q8-wc-w1.00-r128 were made from a previous version of their parent; run "
        f"python -m tools.bank.compress --bank {shown} to remake them"
    ) in capsys.readouterr().err.splitlines()


def test_messages_name_the_bank_the_user_named_not_the_working_copy(
    banks: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """build runs distill on its working copy (``.NAME.staging``, set as ``args.bank`` after
    parsing ``--bank NAME``); the errors named that copy instead of the user's folder."""
    built, _, _ = banks
    shown, work = tmp_path / "bs", tmp_path / ".bs.staging"
    work.mkdir()

    def run_on_work() -> str:
        args = distill.parse_args(["--smoke", "--bank", str(shown)])
        args.bank = work  # what build does
        with pytest.raises(SystemExit) as exc:
            distill.run(args)
        text = str(exc.value)
        assert ".bs.staging" not in text, text
        return text

    assert f"{shown / 'manifest.json'}: no model manifest" in run_on_work()
    shutil.rmtree(work)
    shutil.copytree(built, work)
    member = load_manifest(work).get("wc-w0.25-r064")
    (work / member.file).unlink()
    assert f"{shown / member.file} is missing (model wc-w0.25-r064)" in run_on_work()


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _stop_at_second_member(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[str]:
    """distil_member runs for the first student and raises ``error`` for the second; returns
    the ids it was called with."""
    real = distill_member.distil_member  # (not a wrapper an earlier call set)
    called: list[str] = []

    def member(entry: Any, *a: Any, **k: Any) -> Any:
        called.append(entry.id)
        if len(called) > 1:
            raise error
        return real(entry, *a, **k)

    monkeypatch.setattr(distill, "distil_member", member)
    return called


@pytest.mark.parametrize(("signal_name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_leaves_the_bank_as_it_was_and_no_staging_folder(
    banks: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signal_name: str,
    status: int,
) -> None:
    """Ctrl-C said only ``interrupted`` and left ``BANK/.distill-staging/`` (with the members
    done so far) inside the bank; SIGTERM ended the process there and then (it now raises
    :class:`tools.cli.Terminated` where Ctrl-C raises KeyboardInterrupt: the same clean-up)."""
    import os
    import signal

    built, _, _ = banks
    bank = tmp_path / "bank"
    shutil.copytree(built, bank)
    before = _state(bank)

    class Signalled(KeyboardInterrupt):  # raised by the real handler, from a real signal
        pass

    called = _stop_at_second_member(monkeypatch, Signalled())
    real = distill.distil_member

    def member(entry: Any, *a: Any, **k: Any) -> Any:
        try:
            return real(entry, *a, **k)
        except Signalled:
            os.kill(os.getpid(), getattr(signal, signal_name))
            time.sleep(5)  # (the handler raises before this ends)
            raise AssertionError("the signal did not interrupt") from None

    monkeypatch.setattr(distill, "distil_member", member)
    with pytest.raises(SystemExit) as exc:
        distill.main(["--smoke", "--epochs", "1", "--bank", str(bank)])
    assert exc.value.code == status and len(called) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"interrupted: {bank} was left as it was"
    assert _state(bank) == before
    assert sorted(p.name for p in bank.iterdir()) == sorted(before)  # no staging folder


def test_a_failure_or_ctrl_c_in_builds_working_copy_removes_the_staging_folder(
    banks: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In build's working copy the interrupt goes on to build (which names the bank); a
    failure goes on as it is. Neither leaves the staging folder."""
    built, _, _ = banks
    for error in (KeyboardInterrupt(), RuntimeError("export is wrong")):
        work = tmp_path / f".bs-{type(error).__name__}.staging"
        shutil.copytree(built, work)
        before = _state(work)
        _stop_at_second_member(monkeypatch, error)
        args = distill.parse_args(["--smoke", "--epochs", "1", "--bank", str(tmp_path / "bs")])
        args.bank = work  # what build does
        with pytest.raises(type(error)):
            distill.run(args)
        assert _state(work) == before
        assert not (work / distill.STAGING).exists()
    assert "interrupted" not in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["read-only", "file"])
def test_a_bank_folder_distill_cannot_change_is_one_line_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    """A read-only bank was a PermissionError traceback (creating ``.distill-staging``)."""
    import os

    from tools.bank import distill_data

    def no_work(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the dataset was loaded before the refusal")

    monkeypatch.setattr(distill_data, "load_experiments", no_work)
    bank = tmp_path / "bank"
    if problem == "file":
        bank.write_text("not a folder")
        why = f"error: {bank} is a file, not a bank folder"
    else:
        bank.mkdir()
        real = os.access
        monkeypatch.setattr(  # tests run as root: chmod would not stop a write
            os, "access", lambda p, m, *a, **k: Path(p) != bank and real(p, m, *a, **k)
        )
        why = f"error: {bank}: cannot create or change the bank folder ({bank} is read-only)"
    with pytest.raises(SystemExit) as exc:
        distill.main(["--smoke", "--bank", str(bank)])
    assert str(exc.value.code) == why
    assert capsys.readouterr().err == ""


def test_the_docstrings_smoke_example_follows_a_build_it_can_distil() -> None:
    """The module's example ran distill on the bank ``build --smoke`` makes, which build had
    distilled already: refused ("already distilled")."""
    import shlex

    lines = [ln.split("#")[0].split() for ln in (distill.__doc__ or "").splitlines()]
    commands = [ln[2:] for ln in lines if ln[:2] == ["python", "-m"]]
    smoke = [c for c in commands if "--smoke" in c]
    assert [c[0] for c in smoke] == ["tools.bank.build", "tools.bank.distill"], smoke
    built = build.parse_args(smoke[0][1:])
    assert built.distill_epochs == 0  # the members are left for distill
    assert distill.parse_args(smoke[1][1:]).bank == built.out, shlex.join(smoke[1])


def test_a_soup_members_line_names_its_runs_figures() -> None:
    from tools.bank.distill_report import member_line

    row: dict[str, Any] = {
        "id": "wc-w0.50-r064",
        "val_before": 0.89,
        "val_after": 0.905,
        "test_before": 0.95,
        "test_after": 0.96,
        "ort_vs_torch": 3e-5,
        "seconds": 12.5,
        "runs": [],
    }
    assert member_line(row) == (
        "wc-w0.50-r064: val 89.00 % -> 90.50 %, test 95.00 % -> 96.00 %, ORT-torch 3e-05, 12.5 s"
    )
    runs = [{"val_accuracy": v, "test_accuracy": 0.95} for v in (0.9, 0.8975, 0.9123)]
    assert member_line({**row, "runs": runs}).endswith(
        "12.5 s (soup of 3 runs, val 90.00 / 89.75 / 91.23 %)"
    )
    refit = [{"val_accuracy": None, "test_accuracy": t} for t in (0.9642, 0.9649)]
    assert member_line({**row, "runs": refit}).endswith("(soup of 2 runs, test 96.42 / 96.49 %)")


def test_build_passes_its_distill_soup_on(tmp_path: Path) -> None:
    out = tmp_path / "bank"
    argv = ["--smoke", "--max-steps", "2", "--distill-epochs", "1", "--distill-soup", "2"]
    build.run(build.parse_args([*argv, "--out", str(out)]))
    members = [m for m in load_manifest(out).models if m.family == "width-resolution"]
    assert members
    for m in members:
        d = m.provenance["distilled"]
        assert d["soup"] == 2 and [r["seed"] for r in d["runs"]] == [0, 1]
        assert "--soup 2" in d["command"]
