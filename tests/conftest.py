"""Shared fixtures: a real mosquitto broker on a free loopback port, and the repo's paths."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    config: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start_broker(tmp: Path, port: int | None = None) -> Broker:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        pytest.fail(
            "mosquitto is not installed (apt-get install mosquitto mosquitto-clients), "
            "or deselect broker tests with -m 'not integration'"
        )
    port = port or free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {tmp / f'mosquitto-{port}.log'}\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise
    return Broker("127.0.0.1", port, proc, conf)


def stop_broker(broker: Broker) -> None:
    broker.process.terminate()
    try:
        broker.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path)
    yield b
    stop_broker(b)
