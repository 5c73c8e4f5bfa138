from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.profile import PROFILE_VERSION, load_profile, parse_profile

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = 'profile_version = 1\nname = "t"\n[source]\npath = "r.har.csv"\n'


@pytest.mark.parametrize("name", ["default", "pi4", "pi5", "pizero2w"])
def test_shipped_profiles_load(name: str) -> None:
    p = load_profile(ROOT / "profiles" / f"{name}.toml")
    assert p.profile_version == PROFILE_VERSION
    assert p.resolve(p.source.path).is_file(), "the profile's recording must ship with the repo"
    assert (p.resolve(p.model.dir) / "manifest.json").is_file()


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
    ],
)
def test_bad_profiles(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_profile(text, "x.toml", tmp_path)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such profile"):
        load_profile(tmp_path / "nope.toml")
