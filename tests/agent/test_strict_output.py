"""What the agent writes is always valid JSON, and the files it reads fail in one line: the
last holes the fuzz review found (metrics with a NaN figure, deeply nested credentials and
latency tables, a FIFO as a model file)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from agent.credentials import load_credentials
from agent.errors import ConfigError, ModelError
from agent.inference import verified_bytes
from agent.latency import load_latency_table
from agent.publishers import MemoryPublisher
from agent.strict_json import strict_json
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import default_entry, profile_for


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def strict_loads(payload: bytes) -> Any:
    return json.loads(payload, parse_constant=_no_constants)


def test_non_finite_figures_become_null() -> None:
    body = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": 2, "e": "x"}
    assert strict_loads(strict_json(body)) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": 2,
        "e": "x",
    }
    assert strict_json({"a": 1.5}) == b'{"a":1.5}'


def test_metrics_with_a_nan_figure_stay_json() -> None:
    pub = MemoryPublisher()
    agent = build_agent(profile_for(), options=RunOptions(speed=0, loop=False), publisher=pub)
    agent.pipeline.metrics = lambda: {"resources": {"temperature_c": math.nan}}
    agent.run()
    snaps = [strict_loads(p) for t, p, _, _ in pub.messages if t == "har/demo/metrics"]
    assert snaps and all(s["resources"]["temperature_c"] is None for s in snaps)
    configs = [strict_loads(p) for t, p, _, _ in pub.messages if t == "har/demo/config"]
    assert configs


def test_deeply_nested_credentials_are_one_error(tmp_path: Path) -> None:
    creds = tmp_path / "creds.toml"
    creds.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    creds.chmod(0o600)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_credentials(creds)


def test_deeply_nested_latency_table_is_one_error(tmp_path: Path) -> None:
    table = tmp_path / "t.json"
    table.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_latency_table(table)


def test_a_fifo_as_a_model_file_is_named_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        verified_bytes(fifo, default_entry())  # would block forever if it were opened to read
    with pytest.raises(ModelError, match="missing"):
        verified_bytes(tmp_path / "nope.onnx", default_entry())
