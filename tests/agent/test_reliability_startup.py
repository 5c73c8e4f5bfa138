"""Starting with no broker: the daemon (``har-agent run``, outbox on) keeps classifying and
spooling, and delivers everything once a broker appears; a replay (no outbox) ends in one line
(test_cli.py::test_unreachable_broker_subprocess)."""

import signal
import time
from pathlib import Path

import pytest

from agent.outbox_counts import read_counts
from tests.agent.reliability import SeqSubscriber, persistent_broker, spawn_agent, write_profile
from tests.conftest import free_port, stop_broker

pytestmark = pytest.mark.integration


def _counter(db_path: Path, name: str) -> int:
    return read_counts(db_path)[name]


def test_run_with_no_broker_keeps_spooling_and_delivers_later(tmp_path: Path) -> None:
    port = free_port()
    # register the subscriber's persistent session first (SeqSubscriber returns once the broker
    # has acknowledged it), so nothing the agent sends after the broker appears can slip past it
    broker = persistent_broker(tmp_path, port)
    try:
        sub = SeqSubscriber(port, "startup-sub")
    finally:
        stop_broker(broker)  # (also when the subscriber failed: no broker outlives the test)
    outbox = tmp_path / "outbox.db"
    prof = write_profile(
        tmp_path / "p.toml", port, outbox=outbox, speed=30.0, mqtt="reconnect_max_s = 4"
    )
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as err:
        proc = spawn_agent(prof, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while _counter(outbox, "produced") < 40 and time.monotonic() < deadline:
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.2)
        assert _counter(outbox, "produced") >= 40 and _counter(outbox, "acked") == 0
        assert proc.poll() is None  # the daemon is up, classifying, spooling
        broker = persistent_broker(tmp_path, port)
        deadline = time.monotonic() + 60
        while _counter(outbox, "acked") < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _counter(outbox, "acked") >= 40  # the backlog went out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        stderr = err_path.read_text()
        produced = _counter(outbox, "produced")
        (boot,) = sub.boots(wait_s=30)
        missing = sub.wait_complete(boot, produced, timeout=30)
        assert not missing, f"{len(missing)} of {produced} missing, first {missing[:10]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        stop_broker(broker)
    loud = [ln for ln in stderr.splitlines() if " WARNING " in ln or " ERROR " in ln]
    assert len(loud) == 1, stderr
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in loud[0], loud[0]
    assert "predictions wait in the outbox" in loud[0]
    assert "at last" in stderr and "Traceback" not in stderr
