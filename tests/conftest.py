"""Shared fixtures: a real mosquitto broker on a free loopback port, and the repo's paths."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs: bound, never
    listening. A port that is merely free can, now and then, connect to itself (Linux picks
    the same port as the ephemeral source: a TCP self-connect), so nothing would refuse."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


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
    """A plain mosquitto on a free (or the given) loopback port, logging into ``tmp``."""
    port = port or free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {tmp / f'mosquitto-{port}.log'}\n"
    )
    return _launch(conf, port)


def _launch(conf: Path, port: int) -> Broker:
    proc = subprocess.Popen(
        [mosquitto_exe(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a long fault-injection test (30 s outage, soak); deselect with -m 'not slow'",
    )


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        pytest.fail(
            "mosquitto is not installed (apt-get install mosquitto mosquitto-clients), "
            "or deselect broker tests with -m 'not integration'"
        )
    return exe


def start_broker_conf(tmp: Path, port: int, body: str, name: str = "") -> Broker:
    """A mosquitto with a hand-written configuration ``body`` (listeners included); it logs
    to ``mosquitto-<name or port>.log`` in ``tmp``. Runs as root so that it may read the
    password, ACL and key files the test wrote."""
    tag = name or str(port)
    conf = tmp / f"mosquitto-{tag}.conf"
    conf.write_text(f"user root\nlog_dest file {tmp / f'mosquitto-{tag}.log'}\n{body}")
    return _launch(conf, port)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """The CA that signed ``cert``."""
    cert: Path
    key: Path
    """The broker's certificate (for 127.0.0.1) and its key."""
    other_ca: Path
    """A CA that signed nothing here: trusting it is the 'wrong CA'."""


def make_tls_files(tmp: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is not installed (apt-get install openssl)")
    tmp.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=tmp)

    for ca in ("ca", "other-ca"):
        files = ["-keyout", f"{ca}.key", "-out", f"{ca}.crt"]
        run("req", "-x509", *ec, *files, "-days", "2", "-subj", f"/CN=har-agent test {ca}")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    sign = "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt"
    run(*sign.split(), "-days", "2", "-extfile", "san.ext")
    return TlsFiles(tmp / "ca.crt", tmp / "server.crt", tmp / "server.key", tmp / "other-ca.crt")
