"""The committed bank in models/: every member loads in ONNX Runtime, matches its checksum and
the windows the agent cuts for it, and a sample of members re-evaluated on the test subjects
reproduces the accuracy in the manifest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.fronts import Front
from agent.inference import Classifier, OrtEngine, SessionSettings
from agent.manifest import ModelEntry, load_manifest, sha256_file
from agent.recording import read_recording
from tools.bank.evaluate import member_metrics
from tools.bank.windows import eval_windows
from tools.data import load_experiments, recordings_in
from tools.hapt import ACTIVITIES, CHANNELS, RATE_HZ, TEST_SUBJECTS

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
BANK = load_manifest(MODELS)
RECORDING = ROOT / "recordings" / "hapt-s02-e04.har.csv.gz"
BANK_FAMILIES = ("width-resolution", "pruned", "int8")
SAMPLE = ("wc-w0.10-r032", "wc-w0.25-r096", "pr25-wc-w1.00-r128", "q8-cnn1d-base")
"""Re-evaluated on all test subjects: both ends of the grid, a pruned and an int8 member."""
TOLERANCE = 0.002
"""Accuracy may move by a few windows of 2,874 where another CPU sums in another order."""


def entry_ids() -> list[str]:
    return [m.id for m in BANK.models]


def test_the_bank_is_the_grid_and_its_compressed_members() -> None:
    fams = {m.family for m in BANK.models}
    assert set(BANK_FAMILIES) <= fams
    grid = {(m.width, m.resolution) for m in BANK.models if m.family == "width-resolution"}
    assert {r for _, r in grid} == {32, 64, 96, 128}
    assert min(w for w, _ in grid) <= 0.1 and max(w for w, _ in grid) == 1.0
    assert len(grid) == len([m for m in BANK.models if m.family == "width-resolution"])
    for m in BANK.models:
        if m.family in ("pruned", "int8"):  # made from a member that is in the bank
            parent = m.id.split("-", 1)[1]
            assert parent in entry_ids(), m.id


@pytest.mark.parametrize("member", entry_ids())
def test_member_loads_and_takes_the_windows_the_agent_cuts(member: str) -> None:
    entry = BANK.get(member)
    path = MODELS / entry.file
    assert path.stat().st_size == entry.file_bytes
    assert sha256_file(path) == entry.sha256
    assert entry.labels == tuple(ACTIVITIES)
    assert entry.input.channels == tuple(CHANNELS)
    if entry.family in BANK_FAMILIES:  # the shared rule: R samples over the same 2.56 s
        assert entry.input.length == entry.resolution
        assert entry.input.rate_hz == pytest.approx(RATE_HZ * entry.resolution / 128)
        assert entry.input.hop == entry.resolution // 2
    engine = OrtEngine(path, entry, SessionSettings())  # checks checksum and input shape again

    header, chunk = read_recording(RECORDING)
    front = Front(header, entry.input, RECORDING.name)
    front.push(chunk)
    windows = list(front.ready)
    assert len(windows) > 50
    assert windows[0].data.shape == (entry.input.length, len(entry.input.channels))
    step = windows[1].start_t - windows[0].start_t
    assert step == pytest.approx(entry.input.hop / entry.input.rate_hz, abs=1e-6)
    out = Classifier(entry, engine, time.perf_counter).classify(windows[len(windows) // 2].data)
    assert out.probs.shape == (len(entry.labels),) and np.isfinite(out.probs).all()
    assert out.probs.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def test_experiments() -> list:  # type: ignore[type-arg]
    imported = ROOT / "data" / "hapt"
    source = imported if len(recordings_in(imported)) == 61 else "pickle"
    experiments, _ = load_experiments(source, TEST_SUBJECTS)
    assert {e.subject for e in experiments} == set(TEST_SUBJECTS)
    return experiments


@pytest.mark.parametrize("member", SAMPLE)
def test_sample_reproduces_the_manifest_accuracy(member: str, test_experiments: list) -> None:  # type: ignore[type-arg]
    entry: ModelEntry = BANK.get(member)
    windows = eval_windows(test_experiments, entry.input.length)
    engine = OrtEngine(MODELS / entry.file, entry, SessionSettings())
    got = member_metrics(engine.session, windows, entry.normalization, entry.input)
    assert got["test_windows"] == entry.metrics["test_windows"]
    assert got["accuracy"] == pytest.approx(entry.metrics["accuracy"], abs=TOLERANCE)
    assert got["f1_weighted"] == pytest.approx(entry.metrics["f1_weighted"], abs=TOLERANCE)


@pytest.mark.parametrize(
    "member", [m.id for m in BANK.models if m.family in ("width-resolution", "pruned")]
)
def test_fp32_member_was_checked_against_pytorch_and_has_bn_folded(member: str) -> None:
    """What the export promises for every committed fp32 member: ONNX Runtime matched PyTorch
    within the tolerance the build now enforces, and no BatchNormalization node is left."""
    import onnx

    from tools.export import PARITY_TOLERANCE

    entry = BANK.get(member)
    assert entry.metrics["ort_vs_torch_max_abs_diff"] <= PARITY_TOLERANCE
    graph = onnx.load(str(MODELS / entry.file)).graph
    assert not any(n.op_type == "BatchNormalization" for n in graph.node)
