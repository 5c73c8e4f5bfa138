from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.profile import PROFILE_VERSION, load_profile, parse_profile
from agent.sensors.source import imu_settings

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = 'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'


@pytest.mark.parametrize("name", ["default", "pi4", "pi5", "pizero2w"])
def test_shipped_profiles_load(name: str) -> None:
    p = load_profile(ROOT / "profiles" / f"{name}.toml")
    assert p.profile_version == PROFILE_VERSION
    if p.source.kind == "replay":
        assert p.resolve(p.source.path).is_file(), "the profile's recording must ship with the repo"
    else:  # the board profiles read the live sensor: realistic defaults the chip can run
        assert name != "default"
        s = p.sensor
        assert (s.chip, s.bus, s.address, s.rate_hz) == ("mpu6050", 1, 0x68, 50.0)
        imu_settings(s)  # ConfigError if the chip could not do it
    assert (p.resolve(p.model.dir) / "manifest.json").is_file()


def test_sensor_section(tmp_path: Path) -> None:
    text = (
        'profile_version = 1\nname = "t"\n[source]\nkind = "sensor"\n'
        '[sensor]\nchip = "lsm6dsox"\naddress = 0x6b\nrate_hz = 104\naxes = ["-y", "x", "z"]\n'
    )
    p = parse_profile(text, "x.toml", tmp_path)
    assert p.source.kind == "sensor" and p.source.path == ""  # no recording needed
    assert (p.sensor.chip, p.sensor.address, p.sensor.rate_hz) == ("lsm6dsox", 0x6B, 104.0)
    assert p.sensor.axes == ("-y", "x", "z")


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    p = parse_profile(MINIMAL, "x.toml", tmp_path)
    assert p.mqtt.port == 1883 and p.mqtt.qos == 1 and p.smoothing.method == "none"
    assert p.inference.allow_spinning is False
    assert p.resolve("r.har.csv") == tmp_path / "r.har.csv"
    assert p.resolve("/abs/x") == Path("/abs/x")


def test_int_accepted_for_float(tmp_path: Path) -> None:
    p = parse_profile(MINIMAL + "speed = 2\n", "x.toml", tmp_path)
    assert p.source.speed == 2.0 and isinstance(p.source.speed, float)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("[mqtt]\nhots = 'x'\n", "unknown key 'mqtt.hots'"),
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("[mqtt]\nport = '1883'\n", "mqtt.port must be an integer"),
        ("[mqtt]\nport = 70000\n", "mqtt.port must be between"),
        ("[mqtt]\nqos = 3\n", "mqtt.qos"),
        ("[mqtt]\ntopic_prefix = 'har/#'\n", "topic_prefix"),
        ("[inference]\nallow_spinning = 1\n", "allow_spinning must be true or false"),
        ("[inference]\nintra_op_threads = 0\n", "intra_op_threads"),
        ("[smoothing]\nmethod = 'median'\n", "smoothing.method must be one of"),
        ("[device]\nid = 'a b/c'\n", "device.id"),
        ("mqtt = 5\n", r"\[mqtt\] must be a table"),
        ("[mqtt]\nreconnect_min_s = 100\nreconnect_max_s = 10\n", "reconnect_min_s"),
        ("[sensor]\nchip = 'bmi160'\n", "sensor.chip must be one of 'mpu6050'"),
        ("[sensor]\naddress = 0x80\n", "sensor.address must be a 7-bit I2C address"),
        ("[sensor]\nbus = -1\n", "sensor.bus"),
        ("[sensor]\nrate_hz = 0\n", "sensor.rate_hz must be between 1 and 1000"),
        ("[sensor]\naccel_range_g = 3\n", "sensor.accel_range_g must be 2, 4, 8 or 16"),
        ("[sensor]\ngyro_range_dps = 125\n", "sensor.gyro_range_dps"),
        ("[sensor]\ndlpf_hz = 0\n", "sensor.dlpf_hz"),
        ("[sensor]\naxes = 'xyz'\n", "sensor.axes must be a list of strings"),
        ("[sensor]\naxes = ['x', 'x', 'z']\n", "sensor.axes must use each of x, y and z once"),
        ("[sensor]\naxes = ['-x', 'y', 'z']\n", "sensor.axes .* is a mirror image"),
        ("[sensor]\nstuck_after_s = 0\n", "sensor.stuck_after_s"),
        ("[sensor]\nretries = -1\n", "sensor.retries"),
        ("[sensor]\ncolour = 1\n", "unknown key 'sensor.colour'"),
        ("[monitor]\ninterval_s = 0\n", "monitor.interval_s"),
        ("[policy]\nmode = 'greedy'\n", "policy.mode must be one of"),
        ("[policy]\ndeadline_ms = -1\n", "policy.deadline_ms"),
        ("[policy]\ndeadline_ms = nan\n", "policy.deadline_ms"),
        ("[policy]\ndeadline_ms = inf\n", "policy.deadline_ms"),
        ("[policy]\nenergy_mj = nan\n", "policy.energy_mj"),
        ("[policy]\nenergy_mj = inf\n", "policy.energy_mj"),
        ("[policy]\ndeadline_fraction = 1.5\n", "policy.deadline_fraction"),
        ("[policy]\nheadroom_up = 0.95\nheadroom_down = 0.9\n", "policy.headroom_up"),
        ("[policy]\nthermal_c = 60\nthermal_release_c = 70\n", "policy.thermal_release_c"),
        ("[policy]\newma_alpha = 0\n", "policy.ewma_alpha"),
        ("[policy]\ncandidates = 'wc-w1.00-r064'\n", "policy.candidates must be a list"),
        ("[energy]\nmeter = 'ina999'\n", "energy.meter must be one of"),
        ("[energy]\naddress = 0x68\n", "energy.address"),
        ("[energy]\nsample_hz = -1\n", "energy.sample_hz"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: str, match: str) -> None:
    # keys after [source] belong to it unless a new table starts; put top-level keys first
    text = (extra + MINIMAL) if not extra.startswith("[") else (MINIMAL + extra)
    if extra.startswith("colour") or extra.startswith("mqtt ="):
        text = 'profile_version = 1\nname = "t"\n' + extra + '[source]\npath = "r"\n'
    with pytest.raises(ConfigError, match=match):
        parse_profile(text, "x.toml", tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 't'\n", "missing profile_version"),
        (
            "profile_version = 2\nname = 't'\n[source]\npath='r'\n",
            "profile_version 2 is not supported",
        ),
        ("profile_version = 1\n", "missing name"),
        ("profile_version = 1\nname = 't'\n", "source.path is required"),
        ("profile_version = 1\nname = [\n", "not valid TOML"),
        ("profile_version = 1\nname = 't'\n[source]\npath='r'\nspeed = -1\n", "source.speed"),
        (
            "profile_version = 1\nname = 't'\n[source]\nkind = 'i2c'\n",
            r"source.kind must be one of 'replay' \| 'sensor'",
        ),
    ],
)
def test_bad_profiles(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_profile(text, "x.toml", tmp_path)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such profile"):
        load_profile(tmp_path / "nope.toml")


def test_default_profile_is_found_from_any_folder(tmp_path: Path, monkeypatch: Any) -> None:
    """`har-agent bench` from another folder: the installation's own default profile."""
    from agent.profile import DEFAULT_PROFILE, find_profile

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    assert find_profile(DEFAULT_PROFILE) == root / "profiles" / "default.toml"
    assert load_profile(DEFAULT_PROFILE).device.id == "demo"
    other = Path("profiles/pi4.toml")  # only the default is searched for
    assert find_profile(other) == other
    (tmp_path / "profiles").mkdir()
    text = (root / "profiles" / "default.toml").read_text().replace('"../', f'"{root}/')
    (tmp_path / "profiles" / "default.toml").write_text(text.replace('id = "demo"', 'id = "here"'))
    assert load_profile(DEFAULT_PROFILE).device.id == "here"  # the current folder's comes first
