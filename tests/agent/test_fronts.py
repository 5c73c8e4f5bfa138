"""Fronts: an idle front keeps raw history only; activated, it cuts windows that continue the
predictions one hop on, equal to what a front that never stopped would have cut."""

from __future__ import annotations

import numpy as np
import pytest

from agent.fronts import Front
from agent.manifest import load_manifest
from agent.recording import Chunk, read_recording
from tests.agent.helpers import MODELS, RECORDINGS


def chunks(chunk: Chunk, size: int) -> list[Chunk]:
    labels = chunk.labels
    return [
        Chunk(
            chunk.t[i : i + size],
            chunk.values[i : i + size],
            labels[i : i + size] if labels is not None else None,
        )
        for i in range(0, len(chunk), size)
    ]


@pytest.mark.parametrize("member", ["wc-w1.00-r128", "wc-w1.00-r064", "wc-w0.50-r032"])
def test_activated_front_continues_like_a_running_one(member: str) -> None:
    header, chunk = read_recording(RECORDINGS[0])
    spec = load_manifest(MODELS).get(member).input
    steady = Front(header, spec, "rec")
    lazy = Front(header, spec, "rec")
    lazy.idle()
    parts = chunks(chunk, 10)
    reference = []
    for part in parts[:150]:  # 30 s of samples
        steady.push(part)
        lazy.push(part)
        reference.extend(steady.ready)
        steady.ready.clear()
    assert not lazy.ready  # idle: history only, no resampling, no windows
    last = reference[-2]  # as if the previous member had classified up to this window
    lazy.activate(last.start_t + lazy.hop_s)
    got = list(lazy.ready)
    later = [w for w in reference if w.start_t > last.start_t]
    assert got, "the history should hold at least one window"
    assert got[0].start_t == pytest.approx(last.start_t + lazy.hop_s, abs=1e-6)
    for g, r in zip(got, later, strict=False):
        assert g.start_t == pytest.approx(r.start_t, abs=1e-9)
        assert np.allclose(g.data, r.data, atol=1e-5)
    # and it keeps going with new samples like the running front
    for part in parts[150:200]:
        steady.push(part)
        lazy.push(part)
    s, z = list(steady.ready), list(lazy.ready)[len(got) :]
    assert [w.start_t for w in z] == pytest.approx([w.start_t for w in s])
    assert all(np.allclose(a.data, b.data, atol=1e-5) for a, b in zip(z, s, strict=True))


def test_history_is_bounded() -> None:
    header, chunk = read_recording(RECORDINGS[0])
    spec = load_manifest(MODELS).get("wc-w1.00-r064").input
    front = Front(header, spec, "rec")
    front.idle()
    for part in chunks(chunk, 10):
        front.push(part)
    span = float(front._history[-1].t[-1] - front._history[0].t[0])
    assert span <= spec.window.duration_s + 2 * spec.window.hop_s + 1.0 + 0.2
