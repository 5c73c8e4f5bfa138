"""Issue 6, fault test 7: one corpus of malformed input of every kind, each with its own error.

- recordings, profiles, models, sensors: through the real command line, each must end in exactly
  one ``har-agent: error:`` line carrying the specific reason, exit status 1, no traceback;
- MQTT commands: sent by a real client through a real mosquitto to a running daemon (adaptive
  runtime, disk outbox), each answered ``{"ok": false, "error": ...}`` with its reason on the
  response topic, while the daemon stays up and keeps publishing.

Module-level unit tables elsewhere (test_recording.py, test_profile.py, test_model_integrity.py,
test_cli.py) check the parsers in depth; this file checks that every kind reaches the user as one
clear line, in one place.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from agent.cli import app
from agent.commands import MAX_COMMAND_BYTES
from agent.manifest import sha256_file
from agent.wiring import RunOptions, build_agent
from tests.agent.helpers import (
    DEFAULT_PROFILE,
    MODELS,
    RECORDINGS,
    ROOT,
    Subscriber,
    needs_no_i2c_bus_1,
    one_line_error,
    profile_for,
)
from tests.conftest import Broker

runner = CliRunner()


def _one_line_error(args: list[str], fragment: str) -> None:
    one_line_error(runner.invoke(app, args), fragment)


# -- recordings ----------------------------------------------------------------------------------
def _recording_lines() -> list[str]:
    """The first 400 lines of a bundled recording (header, column names, samples)."""
    with gzip.open(RECORDINGS[0], "rt", encoding="utf-8") as fh:
        return [next(fh) for _ in range(400)]


def _edit_row(lines: list[str], row: int, edit: Callable[[list[str]], list[str]]) -> list[str]:
    out = list(lines)
    out[2 + row] = ",".join(edit(out[2 + row].rstrip("\n").split(","))) + "\n"
    return out


def _set(col: int, value: str) -> Callable[[list[str]], list[str]]:
    return lambda f: f[:col] + [value] + f[col + 1 :]


def _header(lines: list[str], key: str, value: Any) -> list[str]:
    tag, body = lines[0].split(" ", 1)
    head = json.loads(body)
    head[key] = value
    return [f"{tag} {json.dumps(head)}\n", *lines[1:]]


RECORDING_CASES: dict[str, tuple[Callable[[list[str]], bytes], str]] = {
    "empty": (lambda ls: b"", "not a har-agent recording"),
    "truncated-gzip": (lambda ls: RECORDINGS[0].read_bytes()[:3000], "the gzip stream is cut off"),
    "wrong-channel-count": (
        lambda ls: "".join(_edit_row(ls, 100, lambda f: f[:-2])).encode(),
        "line 103: expected",
    ),
    "nan": (lambda ls: "".join(_edit_row(ls, 50, _set(1, "nan"))).encode(), "line 53"),
    "inf": (lambda ls: "".join(_edit_row(ls, 60, _set(2, "-inf"))).encode(), "not finite"),
    "time-goes-back": (
        lambda ls: "".join(_edit_row(ls, 70, _set(0, "0"))).encode(),
        "does not increase",
    ),
    "label-outside-the-header": (
        lambda ls: "".join(_edit_row(ls, 80, lambda f: [*f[:-1], "LAYI"])).encode(),
        "line 83: label 'LAYI' is not one of the header's labels",
    ),
    "rate-disagrees-with-times": (
        lambda ls: "".join(_header(ls, "sample_rate_hz", 100.0)).encode(),
        "the header says 100 Hz but lines 3-",
    ),
    "absurd-rate": (
        lambda ls: "".join(_header(ls, "sample_rate_hz", 5e7)).encode(),
        "sample_rate_hz",
    ),
    "missing-channel": (
        lambda ls: "".join(
            [_header(ls, "channels", json.loads(ls[0].split(" ", 1)[1])["channels"][1:])[0]]
            + [
                ",".join(ln.rstrip("\n").split(",")[:1] + ln.rstrip("\n").split(",")[2:]) + "\n"
                for ln in ls[1:]
            ]
        ).encode(),
        "no channel 'acc_x'",
    ),
}


@pytest.mark.parametrize("case", sorted(RECORDING_CASES))
def test_bad_recording(tmp_path: Path, case: str) -> None:
    make, fragment = RECORDING_CASES[case]
    gz = case == "truncated-gzip"
    bad = tmp_path / ("bad.har.csv.gz" if gz else "bad.har.csv")
    bad.write_bytes(make(_recording_lines()))
    args = ["replay", str(bad), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    _one_line_error(args, fragment)


# -- profiles ------------------------------------------------------------------------------------
PROFILE_CASES: dict[str, tuple[tuple[str, str], str]] = {
    "unknown-key": (("[mqtt]", "[mqtt]\nhots = 1"), "unknown key 'mqtt.hots'"),
    "wrong-type": (("qos = 1", 'qos = "1"'), "mqtt.qos"),
    "out-of-range": (("window = 3", "window = 0"), "smoothing.window"),
    "unknown-section": (("[logging]", "[logginng]"), "logginng"),
    "not-toml": (("[mqtt]", "[mqtt"), "p.toml"),
    "ca-without-tls": (("qos = 1", 'qos = 1\nca_file = "ca.pem"'), "mqtt.tls"),
    "world-readable-credentials": (
        ("qos = 1", 'qos = 1\ncredentials_file = "creds.toml"'),
        "chmod 600",
    ),
    "missing-ca-file": (
        ("qos = 1", 'qos = 1\ntls = true\nca_file = "nope.pem"'),
        "p.toml: mqtt.ca_file = nope.pem: no such file",
    ),
}


@pytest.mark.parametrize("case", sorted(PROFILE_CASES))
def test_bad_profile(tmp_path: Path, case: str) -> None:
    edit, fragment = PROFILE_CASES[case]
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    assert edit[0] in text
    (tmp_path / "creds.toml").write_text('username = "u"\npassword = "p"\n')
    (tmp_path / "creds.toml").chmod(0o644)
    prof = tmp_path / "p.toml"
    prof.write_text(text.replace(edit[0], edit[1], 1))
    _one_line_error(["run", "--profile", str(prof)], fragment)


def test_outbox_folder_that_cannot_be_made(tmp_path: Path) -> None:
    """An outbox path below a plain file (or a folder the service may not write): one line."""
    (tmp_path / "afile").write_text("")
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof = tmp_path / "p.toml"
    prof.write_text(f'{text}\n[outbox]\npath = "{tmp_path}/afile/state/outbox.db"\n')
    _one_line_error(["run", "--profile", str(prof)], "cannot create the outbox folder")


# -- models --------------------------------------------------------------------------------------
def _one_model_bank(tmp: Path) -> tuple[Path, dict[str, Any]]:
    """A bank folder with one member, the default profile's best fp32 model; its raw entry."""
    from tests.agent.helpers import default_entry

    entry = default_entry()
    raw = json.loads((MODELS / "manifest.json").read_text())
    (member,) = [m for m in raw["models"] if m["id"] == entry.id]
    raw["models"] = [member]
    bank = tmp / "bank"
    bank.mkdir()
    shutil.copy(MODELS / entry.file, bank / entry.file)
    return bank, raw


def _tamper(bank: Path, m: dict[str, Any]) -> None:
    with open(bank / m["file"], "r+b") as fh:
        fh.seek(300)
        fh.write(b"\x00\xff\x00")


def _truncate(bank: Path, m: dict[str, Any]) -> None:
    f = bank / m["file"]
    f.write_bytes(f.read_bytes()[:1500])
    m["sha256"] = sha256_file(f)


def _unknown_file(bank: Path, m: dict[str, Any]) -> None:
    m["file"] = "not-there.onnx"


def _external_data(bank: Path, m: dict[str, Any]) -> None:
    onnx = pytest.importorskip("onnx")  # the tools extra: needed only to write such a file
    f = bank / m["file"]
    model = onnx.load(str(f))
    f.unlink()
    onnx.save_model(model, str(f), save_as_external_data=True, location="w.bin", size_threshold=0)
    m["sha256"] = sha256_file(f)


def _wrong_shape(bank: Path, m: dict[str, Any]) -> None:
    m["input"]["length"] = m["input"]["length"] * 2


MODEL_CASES: dict[str, tuple[Callable[[Path, dict[str, Any]], None], str]] = {
    "sha-mismatch": (_tamper, "does not match"),
    "truncated-onnx": (_truncate, "ONNX Runtime cannot load the model"),
    "unknown-file": (_unknown_file, "missing"),
    "external-data": (_external_data, "external data"),
    "wrong-input-shape": (_wrong_shape, "input shape"),
    "path-in-manifest": (lambda b, m: m.update(file="../../etc/passwd"), "plain file name"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model(tmp_path: Path, case: str) -> None:
    edit, fragment = MODEL_CASES[case]
    bank, raw = _one_model_bank(tmp_path)
    member = raw["models"][0]
    edit(bank, member)
    (bank / "manifest.json").write_text(json.dumps(raw))
    text = DEFAULT_PROFILE.read_text().replace('"../', f'"{ROOT}/')
    prof = tmp_path / "p.toml"
    prof.write_text(text.replace(f'dir = "{ROOT}/models"', f'dir = "{bank}"'))
    args = ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--profile", str(prof)]
    _one_line_error([*args, "--model", member["id"]], fragment)


def test_unknown_model_id() -> None:
    args = ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", "--profile", str(DEFAULT_PROFILE)]
    _one_line_error([*args, "--model", "no-such-member"], "no-such-member")


# -- sensors -------------------------------------------------------------------------------------
@needs_no_i2c_bus_1
def test_sensor_without_an_i2c_bus() -> None:
    """The real smbus2 path on a machine with no I2C bus: the daemon refuses in one line."""
    _one_line_error(
        ["run", "--profile", str(ROOT / "profiles" / "pi4.toml")],
        "I2C bus 1 is not available (/dev/i2c-1",
    )


# -- MQTT commands -------------------------------------------------------------------------------
COMMAND_CASES: dict[str, tuple[bytes, str]] = {
    "malformed-json": (b'{"cmd": "ping"', "not JSON: Expecting"),
    "not-utf8": (b"\xff\xfe{}", "not UTF-8 text (byte 0 is 0xff)"),
    "mode-missing": (b'{"cmd": "mode"}', "'mode' must be one of adaptive, static (it is missing)"),
    "not-an-object": (b'["ping"]', "a command must be a JSON object"),
    "duplicate-key": (b'{"cmd": "ping", "cmd": "status"}', "duplicate key 'cmd' in the command"),
    "unknown-command": (b'{"cmd": "reboot"}', "unknown command 'reboot'"),
    "unknown-field": (b'{"cmd": "ping", "exec": "rm -rf /"}', "unexpected field(s) ['exec']"),
    "oversized": (
        json.dumps({"cmd": "ping", "id": "x" * MAX_COMMAND_BYTES}).encode(),
        f"command larger than {MAX_COMMAND_BYTES} bytes",
    ),
    "force-a-path": (
        b'{"cmd": "force", "model": "../../etc/passwd"}',
        "'model' must be a bank member id",
    ),
    "force-unknown-model": (
        b'{"cmd": "force", "model": "wr-w9.99-r999"}',
        "model 'wr-w9.99-r999' is not one of the policy's candidates",
    ),
    "bad-mode": (b'{"cmd": "mode", "mode": "turbo"}', "'mode' must be one of adaptive, static"),
    "bad-id": (b'{"cmd": "ping", "id": {"a": 1}}', "'id' must be a string or an integer"),
    "nan-id": (b'{"cmd": "ping", "id": NaN}', "not JSON: NaN is not a JSON value"),
    "bool-id": (b'{"cmd": "ping", "id": true}', "'id' must be a string or an integer (got true)"),
}


def _strict_json(body: bytes) -> Any:
    """A reply parsed as strict JSON (Python's json also reads NaN and Infinity)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"reply is not JSON ({name}): {body!r}")

    return json.loads(body, parse_constant=refuse)


@pytest.mark.integration
def test_bad_commands_are_answered_and_the_daemon_stays_up(broker: Broker, tmp_path: Path) -> None:
    prof = profile_for(broker.port, outbox=tmp_path / "outbox.db")
    prof = dataclasses.replace(prof, policy=dataclasses.replace(prof.policy, mode="adaptive"))
    stop = threading.Event()
    agent = build_agent(prof, options=RunOptions(speed=20.0, loop=True, monitor=False), stop=stop)
    sub = Subscriber(broker.port)
    th = threading.Thread(target=agent.run)
    th.start()
    sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        assert len(sub.wait_for("/prediction", 1, timeout=30)) >= 1
        replies: dict[str, dict[str, Any]] = {}
        for case in sorted(COMMAND_CASES):
            n = len(sub.on("/cmd/response"))
            sender.publish("har/demo/cmd", COMMAND_CASES[case][0], qos=1).wait_for_publish(10)
            got = sub.wait_for("/cmd/response", n + 1, timeout=20)
            assert len(got) == n + 1, case
            replies[case] = _strict_json(got[-1])
        for case, reply in replies.items():
            assert reply["ok"] is False, (case, reply)
            assert COMMAND_CASES[case][1] in reply["error"], (case, reply)
        # still up: a good command is answered and predictions keep coming
        assert th.is_alive()
        before = len(sub.on("/prediction"))
        sender.publish("har/demo/cmd", b'{"cmd": "ping", "id": 7}', qos=1).wait_for_publish(10)
        pong = [json.loads(p) for p in sub.wait_for("/cmd/response", len(replies) + 1)]
        assert pong[-1] == {"ok": True, "cmd": "ping", "id": 7}
        assert len(sub.wait_for("/prediction", before + 3, timeout=20)) >= before + 3
    finally:
        sender.disconnect()
        sender.loop_stop()
        stop.set()
        th.join(30)
        sub.close()
    assert not th.is_alive()
