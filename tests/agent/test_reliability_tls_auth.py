"""Issue 6, fault test 5: a wrong CA or a wrong password against a real TLS mosquitto.

The daemon logs the problem once, in one line that names it, backs off (a handful of attempts,
not a storm), keeps classifying and committing rows to the outbox; once the broker side is put
right (restarted with a certificate the agent trusts, or with the agent's password), the
backlog is delivered, oldest first, to a persistent subscriber.
"""

import dataclasses
import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.forwarder import OutboxPublisher
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import profile_for
from tests.agent.reliability import AgentThread, SeqSubscriber, persistent_broker
from tests.conftest import Broker, free_port, make_tls_files, stop_broker, wait_for_port

pytestmark = pytest.mark.integration


def _tls_broker(tmp: Path, port: int, plain: int, cert: Path, key: Path, pw: Path) -> Broker:
    """TLS + password on ``port``; anonymous plain listener on ``plain`` for the test's
    subscriber; sessions persist across restarts."""
    body = (
        "per_listener_settings true\n"
        f"listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {pw}\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
    )
    broker = persistent_broker(tmp, port, extra=body, name="tls")
    try:  # the broker opens its listeners one after the other: the subscriber's too
        wait_for_port(plain)
    except TimeoutError:
        stop_broker(broker)
        raise
    return broker


def _passwd(path: Path, password: str) -> Path:
    path.unlink(missing_ok=True)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(path), "har", password],
        check=True,
        capture_output=True,
    )
    return path


@pytest.mark.parametrize("fault", ["wrong-ca", "wrong-password"])
def test_tls_or_auth_failure_spools_then_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    tls = make_tls_files(tmp_path / "pki")
    port, plain = free_port(), free_port()
    pw = _passwd(tmp_path / "passwd", "other" if fault == "wrong-password" else "right")
    creds = tmp_path / "creds.toml"
    creds.write_text('username = "har"\npassword = "right"\n')
    creds.chmod(0o600)
    # the broker's certificate: signed by a CA the agent does not trust, or by the right one
    cert, key = tls.cert, tls.key
    if fault == "wrong-ca":
        cert, key = _sign(tmp_path / "pki", "other-ca")
    broker = _tls_broker(tmp_path, port, plain, cert, key, pw)
    log = (tmp_path / "mosquitto-tls.log").read_text
    try:
        sub = SeqSubscriber(plain, f"sub-{fault}")
    except Exception:
        stop_broker(broker)  # no broker outlives a failed test
        raise
    prof = profile_for(port, outbox=tmp_path / "outbox.db")
    prof = dataclasses.replace(
        prof,
        mqtt=dataclasses.replace(
            prof.mqtt,
            tls=True,
            ca_file=str(tls.ca),
            credentials_file=str(creds),
            reconnect_max_s=4,
        ),
    )
    stop = threading.Event()
    agent = build_agent(prof, options=RunOptions(speed=40.0, loop=True), stop=stop)
    fwd = agent.publisher
    assert isinstance(fwd, OutboxPublisher)
    th = AgentThread(agent)
    try:
        deadline = time.monotonic() + 60
        while fwd.stats().length < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        # rows accumulate: inference goes on, the outbox grows, nothing is acknowledged
        st = fwd.stats()
        assert th.is_alive() and st.length >= 60 and st.acked == 0
        time.sleep(3.0)
        assert fwd.stats().length > st.length
        # one clear line naming the problem, and no other warning or error from the agent
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(loud) == 1, [r.getMessage() for r in loud]
        line = loud[0].getMessage()
        assert f"127.0.0.1:{port}" in line and "outbox" in line
        if fault == "wrong-ca":
            assert "TLS" in line and "certificate" in line and "mqtt.ca_file" in line
        else:
            assert "refused the connection" in line and "mqtt.credentials_file" in line
        # backoff: a few attempts during the outage, not a storm (a storm makes hundreds)
        attempts = log().count(f"on port {port}")
        assert 1 <= attempts <= 10, attempts
        # put the broker right: the certificate the agent trusts, or the agent's password
        stop_broker(broker)
        _passwd(pw, "right")
        broker = _tls_broker(tmp_path, port, plain, tls.cert, tls.key, pw)
        deadline = time.monotonic() + 60
        while fwd.stats().acked < st.length and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fwd.stats().acked >= st.length  # the backlog went out
        assert any("at last" in r.getMessage() for r in caplog.records)  # logged once, cleared
    finally:
        stop.set()
        th.join(60)
    try:
        assert not th.is_alive()
        n = th.windows
        (boot,) = sub.boots(wait_s=30)
        missing = sub.wait_complete(boot, n, timeout=60)
        assert not missing, f"{len(missing)} of {n} missing, first {missing[:10]}"
    finally:
        sub.close()
        stop_broker(broker)


def _sign(pki: Path, ca: str) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by ``ca`` (not the CA the agent trusts)."""
    run = [
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"server-{ca}.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]
    subprocess.run(run, check=True, capture_output=True, cwd=pki)
    return pki / f"server-{ca}.crt", pki / "server.key"
