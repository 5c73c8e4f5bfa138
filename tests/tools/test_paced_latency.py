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
