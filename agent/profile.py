"""Profiles: one TOML file per deployment (board, model, source, broker), validated and versioned.

A profile is parsed with :mod:`tomllib` and turned into frozen dataclasses (one per table, in
:mod:`agent.profile_tables`; :class:`Profile` holds them all). Every key is checked: an unknown
key, a wrong type or an out-of-range value is a :class:`ConfigError` whose message names the file
and the dotted key. Relative paths in a profile are resolved against the profile's folder.
docs/profiles.md lists every key.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError
from agent.profile_checks import check_host, check_path, check_speed, got
from agent.profile_location import DEFAULT_PROFILE, find_profile
from agent.profile_tables import (
    DeviceConfig,
    EnergyConfig,
    HomeAssistantConfig,
    InferenceConfig,
    LoggingConfig,
    ModelConfig,
    MonitorConfig,
    MqttConfig,
    OutboxConfig,
    PolicyConfig,
    SensorConfig,
    SmoothingConfig,
    SourceConfig,
)
from agent.sensors.axes import parse_axes
from agent.toml_tables import build_table

PROFILE_VERSION = 1
# matched with fullmatch: "$" would also match before a trailing newline, and a newline in a
# topic or client id makes the broker drop the connection (again on every reconnect)
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DEVICE_ID_RULE = "must be 1-64 letters, digits, '_', '.' or '-' (used in MQTT topics)"
_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
PATH_KEYS = (
    "source.path",
    "model.dir",
    "mqtt.ca_file",
    "mqtt.client_cert",
    "mqtt.client_key",
    "mqtt.credentials_file",
    "outbox.path",
    "policy.latency_table",
)
"""Profile keys that name a file or folder."""


@dataclass(frozen=True)
class Profile:
    profile_version: int
    name: str
    description: str = ""
    device: DeviceConfig = field(default_factory=DeviceConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    base_dir: Path = field(default=Path("."), metadata={"toml": False})
    """Folder that relative paths resolve against (the profile's folder, with its symbolic
    links resolved); not a TOML key."""
    file: str = field(default="", metadata={"toml": False})
    """The file the profile was read from, as named (for messages); not a TOML key."""
    broker_override: bool = field(default=False, metadata={"toml": False})
    """``mqtt.host``/``port`` come from ``--broker``, not the file: the default outbox is then
    one of that broker's own (rows queued for one broker are never sent to another)."""

    @property
    def where(self) -> str:
        """What messages about a profile key start with: its file, as every profile error."""
        return self.file or f"profile {self.name!r}"

    def resolve(self, path: str) -> Path:
        """``path`` from this profile as a path to open: ``~`` expanded, a relative one taken
        from the profile's folder. Its leading ``..`` are applied to that folder here, so that
        messages show ``/etc/har-agent/models``, not ``/etc/har-agent/profiles/../models``: that
        is exact, as the folder has no symbolic links left (:func:`parse_profile` resolves it).
        The rest stays as written: a ``..`` after a symbolic link means the link target's parent
        (``os.path.normpath`` would get that wrong), and a link the profile names on purpose (a
        ``models -> bank-v3`` folder) keeps its name (``Path.resolve`` would pin its target)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        base, parts = self.base_dir, p.parts
        while parts and parts[0] == ".." and base.is_absolute():
            base, parts = base.parent, parts[1:]
        return base.joinpath(*parts)


def with_device(p: Profile, device_id: str) -> Profile:
    """``p`` publishing as another device (``replay --device``)."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ConfigError(f"--device {device_id!r}: {_DEVICE_ID_RULE}")
    return dataclasses.replace(p, device=dataclasses.replace(p.device, id=device_id))


def with_broker(p: Profile, spec: str) -> Profile:
    """``p`` publishing to another broker (``--broker HOST[:PORT]``; an IPv6 address always in
    brackets, as in a URL: ``[::1]`` or ``[::1]:1883``). The rest of ``[mqtt]`` (TLS,
    credentials, QoS) stays the profile's."""
    bracket = "write an IPv6 address in brackets: [ADDRESS] or [ADDRESS]:PORT"
    port_text: str | None = None
    if "://" in spec:
        raise ConfigError(
            f"--broker {spec!r}: HOST[:PORT], not a URL (TLS is the profile's mqtt.tls)"
        )
    if spec.startswith("["):
        end = spec.find("]")
        rest = spec[end + 1 :] if end > 0 else "?"
        if end < 0 or (rest and not rest.startswith(":")):
            raise ConfigError(f"--broker {spec!r}: {bracket}")
        host = spec[1:end]
        if ":" not in host:
            raise ConfigError(f"--broker {spec!r}: brackets are for IPv6 addresses only")
        port_text = rest[1:] if rest else None
    elif spec.count(":") > 1:  # ::1:1884 could be an address or an address and a port
        raise ConfigError(f"--broker {spec!r}: {bracket}")
    elif ":" in spec:
        host, port_text = spec.split(":")
    else:
        host = spec
    port = p.mqtt.port
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
            raise ConfigError(f"--broker {spec!r}: the port must be a number between 1 and 65535")
        port = int(port_text)
    problem = check_host(host)
    if problem:
        raise ConfigError(f"--broker {spec!r}: the host {problem}")
    if (host, port) == (p.mqtt.host, p.mqtt.port):
        return p
    mqtt = dataclasses.replace(p.mqtt, host=host, port=port)
    return dataclasses.replace(p, mqtt=mqtt, broker_override=True)


def path_values(p: Profile) -> dict[str, str]:
    """Each :data:`PATH_KEYS` key and its value in ``p`` ("" where unset)."""
    out: dict[str, str] = {}
    for key in PATH_KEYS:
        section, name = key.split(".")
        out[key] = getattr(getattr(p, section), name)
    return out


class _Hex(int):
    """An I2C address, shown in hex as the rules and the datasheets write it."""

    def __repr__(self) -> str:
        return f"{int(self):#04x}"


def _value_of(p: Profile, key: str) -> object:
    """The value of the dotted ``key`` in ``p`` (an I2C address as :class:`_Hex`)."""
    section, _, name = key.rpartition(".")
    value = getattr(getattr(p, section) if section else p, name)
    return _Hex(value) if name == "address" else value


Bad = Callable[..., ConfigError]
"""``bad(key, rule, *other_keys)``: the error for a value of ``key`` outside its range or choices,
ending with the value refused (and those of ``other_keys`` that the rule compares it with)."""


def _validate(p: Profile, where: str) -> None:
    def bad(key: str, rule: str, *other_keys: str) -> ConfigError:
        others = [(k, _value_of(p, k)) for k in other_keys]
        return ConfigError(f"{where}: {key} {rule} {got(_value_of(p, key), *others)}")

    def refuse(key: str, why: str) -> ConfigError:  # why already says what the value is
        return ConfigError(f"{where}: {key} {why}")

    if p.profile_version != PROFILE_VERSION:
        raise bad("profile_version", f"must be {PROFILE_VERSION}, the version this har-agent reads")
    if not _DEVICE_ID.fullmatch(p.device.id):
        raise bad("device.id", _DEVICE_ID_RULE)
    if p.source.kind == "replay" and not p.source.path:
        raise refuse("source.path", "is required when source.kind is 'replay'")
    speed_problem = check_speed(p.source.speed)  # ends with (got ...) itself, for --speed too
    if speed_problem:
        raise refuse("source.speed", speed_problem)
    for key, value in path_values(p).items():
        path_problem = check_path(value)  # the length, not the path (thousands of bytes)
        if path_problem:
            raise refuse(key, path_problem)
    if not 1 <= p.source.chunk_samples <= 100_000:
        raise bad("source.chunk_samples", "must be between 1 and 100000")
    sn = p.sensor
    if not 0 <= sn.bus <= 255:
        raise bad("sensor.bus", "must be an I2C bus number between 0 and 255")
    if not 0x08 <= sn.address <= 0x77:
        raise bad("sensor.address", "must be a 7-bit I2C address between 0x08 and 0x77")
    if not 1 <= sn.rate_hz <= 1000:
        raise bad("sensor.rate_hz", "must be between 1 and 1000 Hz")
    if sn.chip == "lsm6dso32":  # its ranges are doubled (agent/sensors/lsm6dsox.py)
        if sn.accel_range_g not in (4, 8, 16, 32):
            raise bad("sensor.accel_range_g", "must be 4, 8, 16 or 32 (g) on the LSM6DSO32")
    elif sn.accel_range_g not in (2, 4, 8, 16):
        raise bad("sensor.accel_range_g", "must be 2, 4, 8 or 16 (g)")
    if sn.gyro_range_dps not in (250, 500, 1000, 2000):
        raise bad("sensor.gyro_range_dps", "must be 250, 500, 1000 or 2000 (deg/s)")
    if not 0 < sn.dlpf_hz <= 500:
        raise bad("sensor.dlpf_hz", "must be a bandwidth in (0, 500] Hz")
    try:
        parse_axes(sn.axes)
    except ValueError as exc:  # the reason names the axes given
        raise refuse("sensor.axes", str(exc)) from exc
    if not 0.1 <= sn.stuck_after_s <= 3600:
        raise bad("sensor.stuck_after_s", "must be between 0.1 and 3600 s")
    if not 0 <= sn.retries <= 100:
        raise bad("sensor.retries", "must be between 0 and 100")
    for key, n in (
        ("inference.intra_op_threads", p.inference.intra_op_threads),
        ("inference.inter_op_threads", p.inference.inter_op_threads),
    ):
        if not 1 <= n <= 64:
            raise bad(key, "must be between 1 and 64")
    if not 1 <= p.smoothing.window <= 1000:
        raise bad("smoothing.window", "must be between 1 and 1000")
    _validate_mqtt(p.mqtt, bad, refuse)
    o = p.outbox
    if not 0.01 <= o.max_mb <= 100_000:
        raise bad("outbox.max_mb", "must be between 0.01 and 100000")
    if o.ttl_h < 0:
        raise bad("outbox.ttl_h", "must be 0 (keep forever) or positive")
    if not 1 <= o.window <= 1000:
        raise bad("outbox.window", "must be between 1 and 1000")
    if not _TOPIC_PREFIX.fullmatch(p.homeassistant.prefix):
        raise bad("homeassistant.prefix", "must be topic levels without wildcards")
    if not 0.05 <= p.monitor.interval_s <= 3600:
        raise bad("monitor.interval_s", "must be between 0.05 and 3600 s")
    _validate_policy(p.policy, bad)
    e = p.energy
    if not 0 <= e.bus <= 255:
        raise bad("energy.bus", "must be an I2C bus number between 0 and 255")
    if not 0x40 <= e.address <= 0x4F:
        raise bad("energy.address", "must be an INA219/INA260 address between 0x40 and 0x4f")
    if not 0 < e.shunt_ohms <= 10:
        raise bad("energy.shunt_ohms", "must be in (0, 10] ohm")
    if not 0 < e.max_current_a <= 100:
        raise bad("energy.max_current_a", "must be in (0, 100] A")
    if not 0 <= e.sample_hz <= 1000:
        raise bad("energy.sample_hz", "must be 0 (the meter's default) or up to 1000 Hz")
    for key, w in (("energy.idle_w", e.idle_w), ("energy.core_w", e.core_w)):
        if not 0 <= w <= 1000:
            raise bad(key, "must be between 0 and 1000 W")


def _validate_mqtt(m: MqttConfig, bad: Bad, refuse: Callable[[str, str], ConfigError]) -> None:
    host_problem = check_host(m.host)  # names the host itself
    if host_problem:
        raise refuse("mqtt.host", host_problem)
    if not 1 <= m.port <= 65535:
        raise bad("mqtt.port", "must be between 1 and 65535")
    if m.qos not in (0, 1, 2):
        raise bad("mqtt.qos", "must be 0, 1 or 2")
    if not _TOPIC_PREFIX.fullmatch(m.topic_prefix):
        raise bad("mqtt.topic_prefix", "must be topic levels without wildcards, e.g. 'har'")
    if not 5 <= m.keepalive_s <= 3600:
        raise bad("mqtt.keepalive_s", "must be between 5 and 3600")
    if not 0 < m.connect_timeout_s <= 300:
        raise bad("mqtt.connect_timeout_s", "must be in (0, 300]")
    if not 1 <= m.reconnect_max_s <= 3600:
        raise bad("mqtt.reconnect_max_s", "must be between 1 and 3600")
    if not 1 <= m.reconnect_min_s <= m.reconnect_max_s:
        raise bad(
            "mqtt.reconnect_min_s",
            "must be >= 1 and <= mqtt.reconnect_max_s",
            "mqtt.reconnect_max_s",
        )
    if not 1 <= m.max_queued <= 1_000_000:
        raise bad("mqtt.max_queued", "must be between 1 and 1000000")
    if (m.client_cert == "") != (m.client_key == ""):
        raise bad(
            "mqtt.client_cert", "and mqtt.client_key must be given together", "mqtt.client_key"
        )
    if (m.ca_file or m.client_cert) and not m.tls:
        set_key = "mqtt.ca_file" if m.ca_file else "mqtt.client_cert"
        raise bad("mqtt.tls", "must be true when a CA file or client certificate is set", set_key)


def _validate_policy(pol: PolicyConfig, bad: Bad) -> None:
    if not 0 <= pol.deadline_ms <= 3_600_000:  # (NaN fails every comparison)
        raise bad("policy.deadline_ms", "must be 0 (derived from the hop) or a positive number")
    if not 0 < pol.deadline_fraction <= 1:
        raise bad("policy.deadline_fraction", "must be in (0, 1]")
    if not 0 <= pol.cpu_share <= 64:
        raise bad("policy.cpu_share", "must be 0 (no cap) or a share of one core up to 64")
    if not 0 <= pol.energy_mj <= 1_000_000:
        raise bad("policy.energy_mj", "must be 0 (no cap) or a positive number")
    if not 0 < pol.headroom_down <= 1:
        raise bad("policy.headroom_down", "must be in (0, 1]")
    if not 0 < pol.headroom_up <= pol.headroom_down:
        raise bad(
            "policy.headroom_up", "must be > 0 and <= policy.headroom_down", "policy.headroom_down"
        )
    if not 0 <= pol.dwell_s <= 86400:
        raise bad("policy.dwell_s", "must be between 0 and 86400 s")
    if not 0 < pol.ewma_alpha <= 1:
        raise bad("policy.ewma_alpha", "must be in (0, 1]")
    if not pol.thermal_c <= 150:
        raise bad("policy.thermal_c", "must be at most 150")
    if not pol.thermal_release_c < pol.thermal_c:
        raise bad("policy.thermal_release_c", "must be below policy.thermal_c", "policy.thermal_c")
    if not 0 <= pol.preload_mb <= 100_000:
        raise bad("policy.preload_mb", "must be between 0 and 100000")


def parse_profile(text: str, where: str, base_dir: Path) -> Profile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from exc
    except RecursionError:  # arrays or inline tables nested some thousands deep
        raise ConfigError(f"{where}: not valid TOML (nested too deeply)") from None
    if "profile_version" not in raw:
        raise ConfigError(
            f"{where}: missing profile_version (this har-agent reads {PROFILE_VERSION})"
        )
    if "name" not in raw:
        raise ConfigError(f"{where}: missing name")
    profile: Profile = build_table(Profile, raw, "", where)
    profile = dataclasses.replace(profile, base_dir=base_dir.resolve(), file=where)
    _validate(profile, where)
    return profile


def load_profile(path: str | Path) -> Profile:
    p = find_profile(Path(path))
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if p == DEFAULT_PROFILE:
            raise ConfigError(
                f"{p}: no such profile here, beside the installation, or at "
                "/etc/har-agent/profile.toml; name one with --profile"
            ) from exc
        raise ConfigError(f"{p}: no such profile") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read profile ({exc})") from exc
    return parse_profile(text, str(p), p.resolve().parent)
