"""Error paths of the MQTT link (agent/mqtt.py, agent/mqtt_connect.py, agent/mqtt_tls.py) against
real sockets and a real mosquitto: a broker that never answers, a certificate for another host
name, unusable client certificate files, sockets of failed TLS handshakes, and paho's queue
running full."""

import gc
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import ConfigError, PublishError
from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings
from agent.mqtt_tls import tls_context
from agent.payload import Topics
from tests.conftest import (
    Broker,
    TlsFiles,
    closed_port,
    free_port,
    make_tls_files,
    start_broker_conf,
    stop_broker,
)

pytestmark = pytest.mark.integration

TOPICS = Topics("har", "link-errors")


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, tls: TlsFiles) -> Iterator[Broker]:
    """A mosquitto with one anonymous TLS listener on 127.0.0.1, its certificate issued for the
    IP address 127.0.0.1 only (subjectAltName IP:127.0.0.1), signed by ``tls.ca``."""
    port = free_port()
    body = (
        f"listener {port} 127.0.0.1\ncertfile {tls.cert}\nkeyfile {tls.key}\n"
        "allow_anonymous true\npersistence false\n"
    )
    broker = start_broker_conf(tmp_path, port, body, name="tls")
    yield broker
    stop_broker(broker)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_broker_that_never_answers_times_out() -> None:
    """TCP connects and CONNECT goes out, but no CONNACK ever comes: the start gives up after
    ``connect_timeout_s`` with one line saying so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)  # the kernel completes the handshake; nothing is ever sent back
        port = int(server.getsockname()[1])
        settings = MqttSettings("127.0.0.1", port, "timeout-test", connect_timeout_s=0.5)
        pub = MqttPublisher(settings, TOPICS)
        try:
            with pytest.raises(PublishError) as err:
                pub.start()
        finally:
            pub.stop()
        assert str(err.value) == (
            f"the MQTT broker at 127.0.0.1:{port} did not answer within 0.5 s"
        )
        # it was a silent broker, not a refusal: the connection was made and CONNECT sent
        server.settimeout(5)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            assert conn.recv(1)[:1] == b"\x10"  # MQTT CONNECT packet type


class NotABroker:
    """A TCP service that is not MQTT: it answers every connection with ``banner`` (or nothing)
    and closes it."""

    def __init__(self, banner: bytes) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = int(self.server.getsockname()[1])
        self.connections = 0
        self._banner = banner
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if self._banner:
                    conn.sendall(self._banner)

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize(
    "banner", [b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b""], ids=["ssh", "silent-close"]
)
def test_a_port_that_is_not_mqtt_fails_at_once(banner: bytes) -> None:
    """Another service on the port answers and hangs up before any CONNACK: one line at once
    that says so and what to check, instead of waiting out ``connect_timeout_s`` to report a
    broker that "did not answer"."""
    peer = NotABroker(banner)
    settings = MqttSettings("127.0.0.1", peer.port, "not-mqtt", connect_timeout_s=30)
    pub = MqttPublisher(settings, TOPICS)
    started = time.monotonic()
    try:
        with pytest.raises(PublishError) as err:
            pub.start()
    finally:
        pub.stop()
        peer.close()
    assert time.monotonic() - started < 15  # (not the 30 s timeout; no tighter bound asserted)
    assert str(err.value) == (
        f"127.0.0.1:{peer.port} closed the connection before answering as an MQTT broker "
        "(check mqtt.port and mqtt.tls)"
    )


def test_the_daemon_goes_on_at_once_past_a_port_that_is_not_mqtt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The daemon (outbox in front) does not hold classification back either: it warns once,
    naming the problem, and paho keeps retrying in the background."""
    caplog.set_level(logging.INFO, logger="agent")
    peer = NotABroker(b"220 smtp ready\r\n")
    settings = MqttSettings(
        "127.0.0.1", peer.port, "not-mqtt-daemon", connect_timeout_s=30, reconnect_min_s=1
    )
    pub = MqttPublisher(settings, TOPICS, retry_in_background=True)
    started = time.monotonic()
    try:
        pub.start()
        assert time.monotonic() - started < 15
        assert not pub.connected
        assert pub.start_failure is not None and "before answering as an MQTT broker" in (
            pub.start_failure
        )
        deadline = time.monotonic() + 10
        while peer.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert peer.connections >= 2  # retried in the background
    finally:
        pub.stop()
        peer.close()


@pytest.mark.parametrize("in_background", [False, True], ids=["replay", "daemon"])
def test_a_stop_while_the_broker_has_not_answered_ends_the_start(
    in_background: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C or SIGTERM (the run's stop event) while the first connection waits for a CONNACK
    that never comes: the start ends there, unconnected, as a stop: no broker error, nothing
    retried in the background. (It waited out ``connect_timeout_s``, then reported the broker.)"""
    caplog.set_level(logging.INFO, logger="agent")
    stop = threading.Event()
    accepted: list[socket.socket] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(30)
        port = int(server.getsockname()[1])

        def stop_once_connect_is_sent() -> None:
            conn, _ = server.accept()
            accepted.append(conn)
            conn.settimeout(30)
            if conn.recv(1)[:1] == b"\x10":  # CONNECT: start() now waits for the CONNACK
                stop.set()

        settings = MqttSettings("127.0.0.1", port, "stop-test", connect_timeout_s=30)
        pub = MqttPublisher(settings, TOPICS, retry_in_background=in_background, stop=stop)
        stopper = threading.Thread(target=stop_once_connect_is_sent, daemon=True)
        stopper.start()
        try:
            pub.start()  # returns: no PublishError
            assert stop.is_set()
            assert not pub.connected and pub.start_failure is None
            paho = [t for t in threading.enumerate() if t.name.endswith("-client-stop-test")]
            assert paho == []  # no network thread left retrying in the background
        finally:
            lost = pub.stop()
            stopper.join(timeout=30)
            for conn in accepted:
                conn.close()
    assert lost == 0
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert f"stopped before the MQTT broker at 127.0.0.1:{port} answered" in caplog.messages


def test_certificate_for_another_host_name_fails_with_one_line(
    tls_broker: Broker, tls: TlsFiles
) -> None:
    """The broker's certificate is signed by the trusted CA but names 127.0.0.1 only; reached
    as ``localhost``, host-name verification refuses it."""
    settings = MqttSettings(
        "localhost", tls_broker.port, "hostname-test", tls=True, ca_file=str(tls.ca)
    )
    pub = MqttPublisher(settings, TOPICS)
    try:
        with pytest.raises(PublishError) as err:
            pub.start()
    finally:
        pub.stop()
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"TLS with the MQTT broker at localhost:{tls_broker.port} failed (")
    assert "the broker's certificate was not accepted" in line
    assert "not valid for 'localhost'" in line  # OpenSSL's host-name mismatch
    assert line.endswith("; check mqtt.ca_file)")
    # the same broker and CA reached as 127.0.0.1 is accepted: the host name was the problem
    ok = MqttPublisher(
        MqttSettings("127.0.0.1", tls_broker.port, "hostname-ok", tls=True, ca_file=str(tls.ca)),
        TOPICS,
    )
    try:
        ok.start()
        assert ok.connected
    finally:
        ok.stop()


def test_missing_client_key_is_a_one_line_config_error(tls: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-client.key"
    with pytest.raises(ConfigError) as err:
        tls_context(str(tls.ca), str(tls.cert), str(missing))
    line = str(err.value)
    assert line == f"MQTT TLS set-up failed: client_key {missing} does not exist"


def test_garbage_client_cert_is_a_one_line_config_error(tls: TlsFiles, tmp_path: Path) -> None:
    garbage = tmp_path / "client.crt"
    garbage.write_bytes(b"this is not a certificate\n\x00\xff\n")
    with pytest.raises(ConfigError) as err:
        tls_context(str(tls.ca), str(garbage), str(tls.key))
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("MQTT TLS set-up failed")
    assert "PEM" in line  # OpenSSL's reason: no PEM certificate in the file
    assert str(garbage) in line  # which file to fix


def test_failed_handshakes_do_not_leak_sockets(
    tls_broker: Broker, tls: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon retrying against a broker whose certificate it does not trust: every failed
    handshake's socket is closed by the agent (ClosingSSLSocket), none is left for the garbage
    collector to find ("unclosed <ssl.SSLSocket>"), and the descriptors do not grow."""
    caplog.set_level(logging.INFO, logger="agent")
    log = tmp_path / "mosquitto-tls.log"

    def attempts() -> int:
        # mosquitto logs each handshake that failed on its side (the client's "unknown ca")
        return log.read_text().count("Client connection from 127.0.0.1 failed")

    def wait_attempts(n: int) -> int:
        deadline = time.monotonic() + 90
        while (got := attempts()) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got >= n, f"{got} connection attempts seen by the broker, expected {n}"
        return got

    settings = MqttSettings(
        "127.0.0.1",
        tls_broker.port,
        "fd-test",
        tls=True,
        ca_file=str(tls.other_ca),  # a CA that did not sign the broker's certificate
        reconnect_min_s=1,
        reconnect_max_s=1,
    )
    retries = 6
    # a socket dropped without close() warns when it is freed, on paho's thread too: record
    # those warnings (the filters are process-wide) instead of letting them go unnoticed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        pub = MqttPublisher(settings, TOPICS, retry_in_background=True)
        try:
            pub.start()  # the first attempt fails; paho goes on retrying on its thread
            assert pub.start_failure is not None and "check mqtt.ca_file" in pub.start_failure
            # a first background attempt: paho's thread and wake-up sockets exist by now
            seen = wait_attempts(2)
            before = _fds()
            wait_attempts(seen + retries)
            grown = _fds() - before
            assert not pub.connected
        finally:
            pub.stop()
        gc.collect()  # whatever was left to the cyclic collector warns now, inside the block
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, f"{len(unclosed)} unclosed-socket warnings, e.g. {unclosed[0]}"
    assert grown <= 2, f"{grown} more file descriptors after {retries} failed handshakes"


def test_full_queue_counts_drops_and_stop_reports_the_losses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No broker: the daemon goes on in the background and paho queues QoS-1 messages up to
    ``max_queued``; the rest are dropped and counted, and ``stop`` reports both as lost."""
    caplog.set_level(logging.INFO, logger="agent")
    with closed_port() as port:
        settings = MqttSettings("127.0.0.1", port, "queue-test", max_queued=5)
        pub = MqttPublisher(settings, TOPICS, retry_in_background=True)
        try:
            pub.start()
            assert pub.start_failure is not None and "cannot reach" in pub.start_failure
            for i in range(8):
                pub.publish(TOPICS.prediction, b"%d" % i, qos=1)
            assert pub.dropped == 3
            full = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
            assert full == ["MQTT queue full (5 messages): dropping"]  # logged once, not 3 times
            # send() reports a full queue as None rather than a mid, and counts nothing
            assert pub.send(TOPICS.prediction, b"x", qos=1) is None
            assert pub.dropped == 3
        finally:
            lost = pub.stop()
    assert lost == 5 + 3  # queued and never acknowledged, plus dropped
