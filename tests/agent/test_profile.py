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


def test_sensor_section_lsm6dso32(tmp_path: Path) -> None:
    text = (
        'profile_version = 1\nname = "t"\n[source]\nkind = "sensor"\n'
        '[sensor]\nchip = "lsm6dso32"\naddress = 0x6a\nrate_hz = 52\naccel_range_g = 32\n'
    )
    p = parse_profile(text, "x.toml", tmp_path)
    assert (p.sensor.chip, p.sensor.accel_range_g) == ("lsm6dso32", 32)
    assert imu_settings(p.sensor).chip == "lsm6dso32"  # the chip can do it


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
        ("[sensor]\naccel_range_g = 32\n", "sensor.accel_range_g must be 2, 4, 8 or 16"),
        (
            "[sensor]\nchip = 'lsm6dso32'\naccel_range_g = 2\n",
            "sensor.accel_range_g must be 4, 8, 16 or 32 .g. on the LSM6DSO32",
        ),
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
        # (every range check of the profile has a case: found untested by a review)
        ("[mqtt]\nkeepalive_s = 4\n", "mqtt.keepalive_s must be between 5 and 3600"),
        ("[mqtt]\nconnect_timeout_s = 0\n", r"mqtt.connect_timeout_s must be in \(0, 300\]"),
        ("[mqtt]\nmax_queued = 0\n", "mqtt.max_queued must be between 1 and 1000000"),
        ("[mqtt]\nclient_cert = 'c.pem'\n", "mqtt.client_cert and mqtt.client_key must be"),
        ("[mqtt]\nclient_key = 'k.pem'\n", "mqtt.client_cert and mqtt.client_key must be"),
        ("[mqtt]\nca_file = 'ca.pem'\n", "mqtt.tls must be true when a CA file"),
        ("[outbox]\nmax_mb = 0\n", "outbox.max_mb must be between 0.01 and 100000"),
        ("[outbox]\nttl_h = -1\n", r"outbox.ttl_h must be 0 \(keep forever\) or positive"),
        ("[outbox]\nwindow = 0\n", "outbox.window must be between 1 and 1000"),
        ("[energy]\nbus = 256\n", "energy.bus must be an I2C bus number"),
        ("[energy]\nshunt_ohms = 0\n", r"energy.shunt_ohms must be in \(0, 10\] ohm"),
        ("[energy]\nmax_current_a = 101\n", r"energy.max_current_a must be in \(0, 100\] A"),
        ("[energy]\nidle_w = -1\n", r"energy.idle_w must be between 0 and 1000 W \(got -1.0\)"),
        ("[energy]\ncore_w = 1001\n", r"energy.core_w must be between 0 and 1000 W \(got 1001.0\)"),
        # the rules between two keys name the one out of its own range
        ("[mqtt]\nreconnect_max_s = 3601\n", "mqtt.reconnect_max_s must be between 1 and 3600"),
        ("[policy]\nheadroom_down = 1.5\n", r"policy.headroom_down must be in \(0, 1\]"),
        ("[policy]\nthermal_c = 151\n", "policy.thermal_c must be at most 150"),
        ("[policy]\ncpu_share = 65\n", "policy.cpu_share must be 0"),
        ("[policy]\ndwell_s = -1\n", "policy.dwell_s must be between 0 and 86400"),
        ("[policy]\npreload_mb = -1\n", "policy.preload_mb must be between 0 and 100000"),
        ("[homeassistant]\nprefix = 'a/+'\n", "homeassistant.prefix must be topic levels"),
        ("[mqtt]\nhost = ''\n", "mqtt.host"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: str, match: str) -> None:
    # keys after [source] belong to it unless a new table starts; put top-level keys first
    text = (extra + MINIMAL) if not extra.startswith("[") else (MINIMAL + extra)
    if extra.startswith("colour") or extra.startswith("mqtt ="):
        text = 'profile_version = 1\nname = "t"\n' + extra + '[source]\npath = "r"\n'
    with pytest.raises(ConfigError, match=match):
        parse_profile(text, "x.toml", tmp_path)


# every range or choice error ends with the value refused, in one format (review: some did not)
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[mqtt]\nport = 70000\n", "mqtt.port must be between 1 and 65535 (got 70000)"),
        ("[mqtt]\nqos = 3\n", "mqtt.qos must be 0, 1 or 2 (got 3)"),
        ("[mqtt]\nkeepalive_s = 4\n", "mqtt.keepalive_s must be between 5 and 3600 (got 4)"),
        ("[mqtt]\nconnect_timeout_s = 0\n", "mqtt.connect_timeout_s must be in (0, 300] (got 0.0)"),
        (
            "[mqtt]\nreconnect_min_s = 100\nreconnect_max_s = 10\n",
            "mqtt.reconnect_min_s must be >= 1 and <= mqtt.reconnect_max_s "
            "(got 100 with mqtt.reconnect_max_s = 10)",
        ),
        ("[mqtt]\nmax_queued = 0\n", "mqtt.max_queued must be between 1 and 1000000 (got 0)"),
        (
            "[mqtt]\ntopic_prefix = 'har/#'\n",
            "mqtt.topic_prefix must be topic levels without wildcards, e.g. 'har' (got 'har/#')",
        ),
        (
            "[mqtt]\nca_file = 'ca.pem'\n",
            "mqtt.tls must be true when a CA file or client certificate is set "
            "(got false with mqtt.ca_file = 'ca.pem')",
        ),
        (
            "[mqtt]\nclient_key = 'k.pem'\n",
            "mqtt.client_cert and mqtt.client_key must be given together "
            "(got '' with mqtt.client_key = 'k.pem')",
        ),
        ("[smoothing]\nwindow = 0\n", "smoothing.window must be between 1 and 1000 (got 0)"),
        (
            "[smoothing]\nmethod = 'median'\n",
            "smoothing.method must be one of 'none' | 'mean' | 'vote' (got 'median')",
        ),
        (
            "[inference]\nintra_op_threads = 0\n",
            "inference.intra_op_threads must be between 1 and 64 (got 0)",
        ),
        (
            "[inference]\ninter_op_threads = 65\n",
            "inference.inter_op_threads must be between 1 and 64 (got 65)",
        ),
        (
            "speed = -1\n",
            "source.speed must be 0 (as fast as possible) or between 0.001 and 1e+06 (got -1.0)",
        ),
        (
            "chunk_samples = 0\n",
            "source.chunk_samples must be between 1 and 100000 (got 0)",
        ),
        (
            "[sensor]\nbus = 256\n",
            "sensor.bus must be an I2C bus number between 0 and 255 (got 256)",
        ),
        (
            "[sensor]\naddress = 0x80\n",
            "sensor.address must be a 7-bit I2C address between 0x08 and 0x77 (got 0x80)",
        ),
        ("[sensor]\nrate_hz = 0\n", "sensor.rate_hz must be between 1 and 1000 Hz (got 0.0)"),
        ("[sensor]\naccel_range_g = 3\n", "sensor.accel_range_g must be 2, 4, 8 or 16 (g) (got 3)"),
        (
            "[sensor]\ngyro_range_dps = 125\n",
            "sensor.gyro_range_dps must be 250, 500, 1000 or 2000 (deg/s) (got 125)",
        ),
        ("[sensor]\nretries = 101\n", "sensor.retries must be between 0 and 100 (got 101)"),
        (
            "[sensor]\nchip = 'bmi160'\n",
            "sensor.chip must be one of 'mpu6050' | 'mpu6500' | 'mpu9250' | 'lsm6dsox' | "
            "'lsm6dso32' (got 'bmi160')",
        ),
        (
            '[device]\nid = "demo\\n"\n',
            "device.id must be 1-64 letters, digits, '_', '.' or '-' (used in MQTT topics) "
            "(got 'demo\\n')",
        ),
        (
            f'[device]\nid = "{"d" * 100}"\n',
            "device.id must be 1-64 letters, digits, '_', '.' or '-' (used in MQTT topics) "
            f"(got '{'d' * 40}'..., 100 characters)",
        ),
        ("[outbox]\nmax_mb = 0\n", "outbox.max_mb must be between 0.01 and 100000 (got 0.0)"),
        ("[outbox]\nttl_h = -1\n", "outbox.ttl_h must be 0 (keep forever) or positive (got -1.0)"),
        (
            "[outbox]\npolicy = 'oldest'\n",
            "outbox.policy must be one of 'drop-oldest' | 'reject-new' (got 'oldest')",
        ),
        (
            "[homeassistant]\nprefix = 'a/+'\n",
            "homeassistant.prefix must be topic levels without wildcards (got 'a/+')",
        ),
        (
            "[monitor]\ninterval_s = 0\n",
            "monitor.interval_s must be between 0.05 and 3600 s (got 0.0)",
        ),
        (
            "[policy]\ndeadline_fraction = 1.5\n",
            "policy.deadline_fraction must be in (0, 1] (got 1.5)",
        ),
        (
            "[policy]\nheadroom_up = 0.95\nheadroom_down = 0.9\n",
            "policy.headroom_up must be > 0 and <= policy.headroom_down "
            "(got 0.95 with policy.headroom_down = 0.9)",
        ),
        (
            "[policy]\nthermal_c = 60\nthermal_release_c = 70\n",
            "policy.thermal_release_c must be below policy.thermal_c "
            "(got 70.0 with policy.thermal_c = 60.0)",
        ),
        ("[policy]\nthermal_c = 151\n", "policy.thermal_c must be at most 150 (got 151.0)"),
        ("[policy]\ndeadline_ms = nan\n", "policy.deadline_ms must be a finite number (got nan)"),
        (
            "[energy]\naddress = 0x68\n",
            "energy.address must be an INA219/INA260 address between 0x40 and 0x4f (got 0x68)",
        ),
        ("[energy]\nshunt_ohms = 11\n", "energy.shunt_ohms must be in (0, 10] ohm (got 11.0)"),
        ("[energy]\nidle_w = -1\n", "energy.idle_w must be between 0 and 1000 W (got -1.0)"),
        ("[energy]\ncore_w = 1001\n", "energy.core_w must be between 0 and 1000 W (got 1001.0)"),
        (
            "[logging]\nlevel = 'verbose'\n",
            "logging.level must be one of 'debug' | 'info' | 'warning' | 'error' (got 'verbose')",
        ),
    ],
)
def test_range_errors_end_with_the_value(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:  # keys before any table belong to [source]
        parse_profile(MINIMAL + extra, "x.toml", tmp_path)
    assert str(caught.value) == f"x.toml: {message}"
    assert "\n" not in str(caught.value)  # one line, whatever the value holds


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 't'\n", "missing profile_version"),
        (
            "profile_version = 2\nname = 't'\n[source]\npath='r'\n",
            r"profile_version must be 1, the version this har-agent reads \(got 2\)",
        ),
        ("profile_version = 1\n", "missing name"),
        ("profile_version = 1\nname = 't'\n", "source.path is required"),
        ("profile_version = 1\nname = [\n", "not valid TOML"),
        ("profile_version = 1\nname = 't'\n[source]\npath='r'\nspeed = -1\n", "source.speed"),
        (
            "profile_version = 1\nname = 't'\n[source]\npath='r'\nchunk_samples = 0\n",
            "source.chunk_samples must be between 1 and 100000",
        ),
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


def test_the_default_profile_is_defined_once() -> None:
    """The commands' ``--profile`` default (cli_common) is the very path that find_profile and
    load_profile treat as the default (profile_location): it was defined twice, a str and a
    Path, free to drift apart."""
    from agent import cli_common, profile, profile_location

    assert cli_common.DEFAULT_PROFILE is profile_location.DEFAULT_PROFILE
    assert profile.DEFAULT_PROFILE is profile_location.DEFAULT_PROFILE


# -- fuzz review: values that used to crash the agent later, or hang it -------------------------
def _float_keys() -> list[str]:
    """Every float key of the profile (docs/profiles.md lists them as 'number')."""
    import dataclasses
    import typing

    from agent.profile import Profile

    keys = []
    for f in dataclasses.fields(Profile):
        tp = typing.get_type_hints(Profile)[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(tp) if hints[g.name] is float]
    return keys


def _with(key: str, value: str) -> str:
    section, name = key.split(".")
    if section == "source":  # MINIMAL already has [source]
        return MINIMAL + f"{name} = {value}\n"
    return MINIMAL + f"[{section}]\n{name} = {value}\n"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize("key", _float_keys())
def test_no_float_key_takes_nan_or_infinity(tmp_path: Path, key: str, value: str) -> None:
    assert len(_float_keys()) >= 20  # the walk found the profile's float fields
    with pytest.raises(ConfigError, match=f"{key} must be a finite number"):
        parse_profile(_with(key, value), "x.toml", tmp_path)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        # a trailing newline passed regexes ending in "$"; mosquitto then drops the client
        ('[device]\nid = "demo\\n"\n', "device.id must be 1-64"),
        ('[mqtt]\ntopic_prefix = "har\\n"\n', "mqtt.topic_prefix"),
        ('[homeassistant]\nprefix = "homeassistant\\n"\n', "homeassistant.prefix"),
        # hosts that paho refuses at connect (a crash) or loops over with tracebacks
        ('[mqtt]\nhost = ""\n', "mqtt.host must not be empty"),
        ('[mqtt]\nhost = "../../etc"\n', "mqtt.host '../../etc' is not a host name"),
        (f'[mqtt]\nhost = "{"a" * 5000}"\n', "mqtt.host 'aaaa.* is longer than 253 characters"),
        (f'[mqtt]\nhost = "{"a" * 64}.lan"\n', "is not a host name"),
        ('[mqtt]\nhost = "-broker.lan"\n', "is not a host name"),
        ('[mqtt]\nhost = "broker lan"\n', "is not a host name"),
        ('[mqtt]\nhost = "broker\\n"\n', "is not a host name"),
        ('[mqtt]\nhost = "brøker.lan"\n', "xn-- form"),
        ('[mqtt]\nhost = "[::1]"\n', "is not a host name"),
        # paths: NUL ("embedded null byte" tracebacks), too long (OSError tracebacks)
        (
            '[mqtt]\ncredentials_file = "a\\u0000b"\n',
            "mqtt.credentials_file must not contain a NUL",
        ),
        ('[outbox]\npath = "a\\u0000b"\n', "outbox.path must not contain a NUL"),
        ('[mqtt]\ntls = true\nca_file = "\\u0000"\n', "mqtt.ca_file must not contain a NUL"),
        ('[policy]\nlatency_table = "t\\u0000"\n', "policy.latency_table must not contain a NUL"),
        ('[model]\ndir = "m\\u0000"\n', "model.dir must not contain a NUL"),
        ('[mqtt]\nclient_id = "c\\u0000"\n', "mqtt.client_id must not contain a NUL"),
        ('[policy]\ncandidates = ["a\\u0000"]\n', "policy.candidates must not contain a NUL"),
        (f'[outbox]\npath = "{"d/" * 2100}x.db"\n', "outbox.path is 4204 bytes long"),
        (f'[mqtt]\ncredentials_file = "/etc/{"c" * 256}"\n', "name of 256 bytes; at most 255"),
        ("[policy]\nthermal_release_c = -inf\n", "policy.thermal_release_c must be a finite"),
    ],
)
def test_fuzzed_values_are_refused(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_profile(MINIMAL + extra, "x.toml", tmp_path)


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("a" * 5000, "source.path is 5000 bytes long; a path may have at most 4095"),
        ("rec/" + "a" * 300, "source.path has a file or folder name of 300 bytes"),
        ("a\\u0000b", "source.path must not contain a NUL"),
    ],
)
def test_source_path_that_cannot_name_a_file(tmp_path: Path, path: str, match: str) -> None:
    text = f'profile_version = 1\nname = "t"\n[source]\npath = "{path}"\n'
    with pytest.raises(ConfigError, match=match):
        parse_profile(text, "x.toml", tmp_path)


@pytest.mark.parametrize(
    ("speed", "ok"),
    [("0", True), ("0.001", True), ("1e6", True), ("1e-300", False), ("2e6", False)],
)
def test_source_speed_range(tmp_path: Path, speed: str, ok: bool) -> None:
    text = MINIMAL + f"speed = {speed}\n"
    if ok:
        assert parse_profile(text, "x.toml", tmp_path).source.speed == float(speed)
    else:
        with pytest.raises(ConfigError, match="source.speed must be 0 .* or between 0.001 and"):
            parse_profile(text, "x.toml", tmp_path)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "broker.example.com",
        "broker.example.com.",
        "my_broker",
        "192.168.1.10",
        "::1",
        "fe80::1%eth0",
        "xn--brker-gra.lan",
        "a" * 63 + ".lan",
        ".".join(["a" * 63] * 3) + "." + "a" * 61,  # 253 characters
    ],
)
def test_good_hosts_are_accepted(tmp_path: Path, host: str) -> None:
    p = parse_profile(MINIMAL + f'[mqtt]\nhost = "{host}"\n', "x.toml", tmp_path)
    assert p.mqtt.host == host


@pytest.mark.parametrize(
    "value", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000, "[" * 100_000]
)
def test_toml_nested_too_deeply_is_one_error(tmp_path: Path, value: str) -> None:
    text = 'profile_version = 1\nname = "t"\nx = ' + value + "\n"
    with pytest.raises(ConfigError, match=r"x.toml: not valid TOML \(nested too deeply\)"):
        parse_profile(text, "x.toml", tmp_path)


def test_with_device_refuses_a_trailing_newline(tmp_path: Path) -> None:
    from agent.profile import with_device

    p = parse_profile(MINIMAL, "x.toml", tmp_path)
    assert with_device(p, "bench-1").device.id == "bench-1"
    for bad in ("bench-1\n", "bench-1\r\n", "a" * 65, ""):
        with pytest.raises(ConfigError, match="--device"):
            with_device(p, bad)


def test_a_host_of_253_characters_may_end_in_the_roots_dot() -> None:
    from agent.profile_checks import check_host

    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert len(name) == 253
    assert check_host(name) is None and check_host(name + ".") is None
    assert check_host("c" + name) is not None  # 254: too long, dot or not
