"""sensors probe and record on the command line: output, files, one-line errors."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent import cli_sensors
from agent.cli import app
from agent.clock import FakeClock
from agent.recording import read_recording
from agent.testing.feeds import RecordingFeed
from agent.testing.i2c_emulation import EmulatedBus
from agent.testing.ina219_model import Ina219Model, constant
from agent.testing.mpu6050_model import Mpu6050Model
from tests.agent.helpers import needs_no_i2c_bus_1, one_line_error
from tests.agent.sensors.rigs import RECORDING, ROOT, spoil_sensor_block

runner = CliRunner()
PI4 = ROOT / "profiles" / "pi4.toml"


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> EmulatedBus:
    clock = FakeClock()
    bus = EmulatedBus(clock, {0x68: Mpu6050Model(RecordingFeed.from_file(RECORDING))})
    monkeypatch.setattr(cli_sensors, "_bus_factory", lambda: bus.factory)
    monkeypatch.setattr(cli_sensors, "_clock", lambda: clock)
    return bus


@pytest.mark.parametrize(
    "args", [["sensors", "--help"], ["sensors", "probe", "--help"], ["record", "--help"]]
)
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "Usage" in result.output


def test_probe_lists_chips(emulated: EmulatedBus) -> None:
    emulated.attach(0x40, Ina219Model(constant(5.0, 0.2)))
    result = runner.invoke(app, ["sensors", "probe", "--bus", "1"])
    assert result.exit_code == 0, result.output
    assert "I2C bus 1:" in result.stdout
    assert "0x68  MPU-6050" in result.stdout and 'sensor.chip = "mpu6050"' in result.stdout
    assert "0x40  INA219" in result.stdout
    assert emulated.closed


def test_probe_empty_bus(emulated: EmulatedBus) -> None:
    emulated.detach(0x68)
    one_line_error(
        runner.invoke(app, ["sensors", "probe"]), "no supported chip answers on I2C bus 1"
    )


def test_probe_without_a_bus() -> None:
    # raspi-config is on Raspberry Pi OS only: the hint says what to do on other machines too
    one_line_error(
        runner.invoke(app, ["sensors", "probe", "--bus", "250"]),
        "I2C bus 250 is not available (/dev/i2c-250: No such file or directory); "
        "on a Raspberry Pi: enable I2C with raspi-config (Interface Options -> I2C, or "
        "'sudo raspi-config nonint do_i2c 0') and reboot; elsewhere: load the i2c-dev module "
        "('sudo modprobe i2c-dev') and check the bus number ('ls /dev/i2c-*')",
    )
    # bus numbers are 0-255, as in a profile's sensor.bus
    refused = runner.invoke(app, ["sensors", "probe", "--bus", "999"])
    assert refused.exit_code == 2 and "--bus" in refused.output


def test_record(emulated: EmulatedBus, tmp_path: Path) -> None:
    out = tmp_path / "me.har.csv.gz"
    args = [
        "record",
        "--profile",
        str(PI4),
        "--out",
        str(out),
        "--duration",
        "5",
        "--label",
        "SITTING",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "recording: " in result.stderr
    summary = re.search(r"recorded (\d+) samples \((.*)\) from the (.*) to (.*)", result.stderr)
    assert summary is not None, result.stderr
    n, detail, sensor, path = summary.groups()
    assert 249 <= int(n) <= 251 and detail == "5.0 s, 0 gaps"
    assert (sensor, path) == ("MPU-6050 on I2C bus 1 at 0x68", str(out))
    header, chunk = read_recording(out)
    assert len(chunk) == int(n) and header.labels == ("SITTING",)
    assert header.source["device"] == "pi4"
    # never overwrite a recording
    one_line_error(runner.invoke(app, args), "already exists")


def test_record_warns_about_a_label_the_models_do_not_know(
    emulated: EmulatedBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt class is recorded as given (it is the user's data) but said at once: a
    replay would not score its windows."""

    def record(name: str, label: str) -> list[str]:
        caplog.clear()
        args = ["record", "--profile", str(PI4), "--out", str(tmp_path / name), "--duration", "1"]
        result = runner.invoke(app, [*args, "--label", label])
        assert result.exit_code == 0, result.output
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    said = record("typo.har.csv", "WALKNG")
    assert len(said) == 1 and said[0].startswith(
        "--label 'WALKNG' is not one of the models' classes (LAYING, SITTING, STANDING, WALKING,"
    )
    assert read_recording(tmp_path / "typo.har.csv")[0].labels == ("WALKNG",)
    assert record("ok.har.csv", "WALKING") == []
    # a label it cannot write is refused by itself: one line, no warning about its class first
    caplog.clear()
    args = ["record", "--profile", str(PI4), "--out", str(tmp_path / "bad.har.csv")]
    one_line_error(runner.invoke(app, [*args, "--label", "A,B"]), "--label must be 1-64")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


def test_record_without_the_chip(emulated: EmulatedBus, tmp_path: Path) -> None:
    emulated.detach(0x68)
    out = tmp_path / "x.har.csv"
    result = runner.invoke(app, ["record", "--profile", str(PI4), "--out", str(out)])
    one_line_error(result, "no chip answers at address 0x68 on I2C bus 1")
    assert not out.exists() and not Path(str(out) + ".part").exists()


def test_record_stops_at_a_block_it_cannot_write(
    emulated: EmulatedBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line that names the sample and where the samples before it are, and how to publish
    them; that file is readable."""
    spoil_sensor_block(monkeypatch, "a NaN value", at=2)
    out = tmp_path / "nan.har.csv"
    part = Path(f"{out}.part")
    args = ["record", "--profile", str(PI4), "--out", str(out), "--duration", "10"]
    one_line_error(
        runner.invoke(app, args),
        f"{out}: sample 2 of a block of 10: value is not finite (NaN, Inf, or beyond float32's "
        f"range); nothing of the block was written; the recording stopped there: {part} keeps "
        f"the 20 samples before it (har-agent recording recover {part} publishes them)",
    )
    assert not out.exists() and len(read_recording(part)[1]) == 20


@needs_no_i2c_bus_1
def test_run_on_a_pi_profile_without_i2c() -> None:
    result = runner.invoke(app, ["run", "--profile", str(PI4)])
    one_line_error(result, "I2C bus 1 is not available")


def test_a_log_line_does_not_run_into_the_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    import logging
    import sys

    from agent.cli_sensors import _ProgressLine

    line = _ProgressLine()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(line)
    log = logging.getLogger("test.progress")
    log.addHandler(handler)
    log.propagate = False
    try:
        sys.stderr.write("\rrecording: 50 samples, 1.0 s")
        line.open = True
        log.warning("received SIGINT, stopping")
        log.warning("and another")  # no blank line when no progress line is open
        line.end()
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert err == "\rrecording: 50 samples, 1.0 s\nreceived SIGINT, stopping\nand another\n"
