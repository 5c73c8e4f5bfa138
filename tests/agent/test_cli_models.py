"""``har-agent models show`` and the default member's mark in ``models list``."""

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app
from agent.manifest import load_manifest
from tests.agent.helpers import DEFAULT_PROFILE, MODELS, ROOT, default_entry, one_line_error

runner = CliRunner()


def test_show_a_member_in_full() -> None:
    entry = default_entry()
    result = runner.invoke(app, ["models", "show", entry.id, "--profile", str(DEFAULT_PROFILE)])
    assert result.exit_code == 0, result.output
    facts = dict(ln.split(":", 1) for ln in result.stdout.splitlines() if not ln.startswith(" "))
    assert facts["id"].strip() == f"{entry.id}  (the profile's model)"
    assert "sha256 ok" in facts["file"] and entry.file in facts["file"]
    spec = entry.input
    assert (
        facts["input"]
        .strip()
        .startswith(f"{spec.length} samples x {len(spec.channels)} channels at {spec.rate_hz:g} Hz")
    )
    assert facts["classes"].strip() == ", ".join(entry.labels)
    assert f"{100 * entry.metrics['accuracy']:.2f} %" in facts["test accuracy"]
    assert facts["made by"].strip() == entry.provenance["command"]
    lat = entry.latency_ms
    assert (
        facts["paced latency"]
        .strip()
        .startswith(
            f"p50 {lat['paced_p50']:.3f} ms, p90 {lat['paced_p90']:.3f} ms, one run at a time "
            f"after a {lat['paced_gap_ms']:g} ms pause"
        )
    )


def test_list_shows_both_latencies_of_every_member() -> None:
    """The back-to-back p50 and the paced one (what the adaptive policy starts from)."""
    result = runner.invoke(app, ["models", "list", "--profile", str(DEFAULT_PROFILE)])
    assert result.exit_code == 0, result.output
    rows = {
        ln[1:].split()[0]: ln.split()
        for ln in result.stdout.splitlines()
        if ln[1:3] in ("wc", "cn", "pr", "q8")
    }
    bank = load_manifest(MODELS)
    assert set(rows) == {m.id for m in bank.models}
    for m in bank.models:
        assert rows[m.id][-3:] == [
            f"{m.latency_ms['p50']:.3f}",
            f"{m.latency_ms['paced_p50']:.3f}",
            "ok",
        ]


def test_show_json_is_the_manifest_entry() -> None:
    entry = load_manifest(MODELS).get("pr25-wc-w1.00-r128")
    result = runner.invoke(app, ["models", "show", entry.id, "--dir", str(MODELS), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {**entry.to_dict(), "file_check": "ok"}
    # with --dir there is no profile, so no member is marked as its model
    plain = runner.invoke(app, ["models", "show", entry.id, "--dir", str(MODELS)])
    assert "the profile's model" not in plain.stdout and "parent:" in plain.stdout


def test_show_refuses_an_unknown_id_and_an_altered_file(tmp_path: Path) -> None:
    one_line_error(runner.invoke(app, ["models", "show", "nope", "--dir", str(MODELS)]), "'nope'")
    bank = tmp_path / "bank"
    shutil.copytree(ROOT / "models", bank)
    with open(bank / "wc-w0.10-r032.onnx", "r+b") as fh:
        fh.seek(500)
        fh.write(b"\x00\x01\x02")
    result = runner.invoke(app, ["models", "show", "wc-w0.10-r032", "--dir", str(bank)])
    assert "sha256 altered" in result.stdout
    one_line_error(result, "wc-w0.10-r032: model file altered")
    # cut short, the file line says what is on disk beside what the manifest says
    (bank / "wc-w0.10-r032.onnx").write_bytes(b"x" * 1024)
    result = runner.invoke(app, ["models", "show", "wc-w0.10-r032", "--dir", str(bank)])
    assert "KiB in the manifest, 1.0 KiB on disk, sha256 altered)" in result.stdout


def test_list_marks_the_profiles_model() -> None:
    result = runner.invoke(app, ["models", "list", "--profile", str(DEFAULT_PROFILE)])
    assert result.exit_code == 0, result.output
    marked = [ln.split()[0] for ln in result.stdout.splitlines() if ln.startswith("*")]
    assert marked[0] == f"*{default_entry().id}"
    assert f"* the profile's model ({default_entry().id})" in result.stdout


def test_show_survives_free_form_provenance_and_metrics(tmp_path: Path) -> None:
    """Provenance and the latency block are free-form JSON: odd types are shown as text or
    left out, never a traceback (the loader checks the metrics' types itself)."""
    bank = tmp_path / "bank"
    shutil.copytree(ROOT / "models", bank)
    manifest = json.loads((bank / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["id"] == "cnn1d-base")
    entry["provenance"]["git_commit"] = 123
    del entry["latency_ms"]["p90"]
    entry["latency_ms"]["threads"] = 2
    entry["latency_ms"]["paced_p90"] = "slow"
    entry["latency_ms"]["paced_gap_ms"] = True
    (bank / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["models", "show", "cnn1d-base", "--dir", str(bank)])
    assert result.exit_code == 0, result.output
    assert ", git 123" in result.stdout
    facts = dict(ln.split(":", 1) for ln in result.stdout.splitlines() if not ln.startswith(" "))
    assert "2 threads)" in facts["latency"] and "p90" not in facts["latency"]
    paced = facts["paced latency"]
    assert "p90" not in paced and "pause" not in paced and "p50 0." in paced
