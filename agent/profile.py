"""Profiles: one TOML file per deployment (board, model, source, broker), validated and versioned.

A profile is parsed with :mod:`tomllib` and turned into frozen dataclasses. Every key is checked:
an unknown key, a wrong type or an out-of-range value is a :class:`ConfigError` whose message names
the file and the dotted key. Relative paths in a profile are resolved against the profile's folder.
docs/profiles.md lists every key.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.errors import ConfigError
from agent.profile_checks import check_host, check_path, check_speed
from agent.profile_location import DEFAULT_PROFILE, find_profile
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
class DeviceConfig:
    id: str = "har-agent"
    """Names this agent in MQTT topics (``<prefix>/<id>/...``) and payloads."""


@dataclass(frozen=True)
class SourceConfig:
    kind: Literal["replay", "sensor"] = "replay"
    """``replay`` a recording, or read the live I2C ``sensor`` (its ``[sensor]`` table)."""
    path: str = ""
    """Recording to replay (for ``kind = "replay"``)."""
    speed: float = 1.0
    """1.0 replays in real time, 2.0 twice as fast, 0 as fast as possible."""
    loop: bool = False
    """Start the recording again when it ends (a demo that never stops)."""
    chunk_samples: int = 10
    """Samples handed to the pipeline at a time when pacing in real time."""


@dataclass(frozen=True)
class SensorConfig:
    """The live I2C IMU (``source.kind = "sensor"``, ``har-agent record``); docs/sensors.md."""

    chip: Literal["mpu6050", "mpu6500", "mpu9250", "lsm6dsox"] = "mpu6050"
    bus: int = 1
    """I2C bus number: /dev/i2c-<bus> (1 on a Raspberry Pi's header pins 3 and 5)."""
    address: int = 0x68
    rate_hz: float = 50.0
    """Output data rate asked of the chip; the pipeline resamples to the model's rate."""
    accel_range_g: int = 4
    gyro_range_dps: int = 500
    dlpf_hz: float = 20.0
    """Digital low-pass filter bandwidth; the chip's nearest setting is used (and logged)."""
    axes: tuple[str, ...] = ("x", "y", "z")
    """The chip axis (with sign) that gives the model's x, y and z, e.g. ["-y", "x", "z"]."""
    stuck_after_s: float = 2.0
    """Identical samples for this long mean the sensor is stuck."""
    retries: int = 3
    """Failed transfers in a row before the chip is re-initialised."""


@dataclass(frozen=True)
class ModelConfig:
    dir: str = "models"
    id: str = ""
    """Bank member to run; empty picks the most accurate fp32 member of the manifest."""


@dataclass(frozen=True)
class InferenceConfig:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = False
    """ONNX Runtime's busy-wait between runs: lower latency, but burns CPU while idle."""


@dataclass(frozen=True)
class SmoothingConfig:
    method: Literal["none", "mean", "vote"] = "none"
    """``mean`` averages probabilities, ``vote`` takes the majority label of the last windows."""
    window: int = 5


@dataclass(frozen=True)
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "har"
    qos: int = 1
    keepalive_s: int = 30
    client_id: str = ""
    """Empty means ``har-agent-<device id>``."""
    connect_timeout_s: float = 10.0
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60
    max_queued: int = 10000
    """Messages paho may hold in memory (the disk outbox holds the rest; see docs/mqtt.md)."""
    tls: bool = False
    ca_file: str = ""
    """CA bundle that signs the broker's certificate; empty: the system's CAs."""
    client_cert: str = ""
    client_key: str = ""
    credentials_file: str = ""
    """TOML file with ``username`` and ``password``; must not be readable by others."""


@dataclass(frozen=True)
class OutboxConfig:
    enabled: bool = True
    """Commit every prediction to disk before sending it (``har-agent run`` only)."""
    path: str = ""
    """SQLite file; empty: ``$STATE_DIRECTORY`` (systemd) or ~/.local/state/har-agent."""
    max_mb: float = 64.0
    ttl_h: float = 168.0
    policy: Literal["drop-oldest", "reject-new"] = "drop-oldest"
    window: int = 32
    """Messages in flight (sent, not yet acknowledged) at a time."""


@dataclass(frozen=True)
class HomeAssistantConfig:
    discovery: bool = True
    prefix: str = "homeassistant"


@dataclass(frozen=True)
class MonitorConfig:
    """The resource monitor (docs/adaptive.md): psutil sampled in a thread of its own."""

    enabled: bool = True
    interval_s: float = 1.0
    """Seconds between samples."""
    thermal_zone: str = ""
    """psutil sensor name to read the temperature from (e.g. "cpu_thermal"); empty: the hottest."""


@dataclass(frozen=True)
class PolicyConfig:
    """How the agent picks a bank member at run time (docs/adaptive.md)."""

    mode: Literal["static", "adaptive"] = "static"
    """``static`` runs ``model.id`` throughout; ``adaptive`` switches within ``candidates``."""
    candidates: tuple[str, ...] = ()
    """Bank members the policy may choose; empty: every member of the bank."""
    deadline_ms: float = 0.0
    """Per-window inference budget; 0 derives it from the hop (``deadline_fraction`` of it)."""
    deadline_fraction: float = 0.5
    cpu_share: float = 0.0
    """Largest share of one core inference may take on average (0 = no cap)."""
    energy_mj: float = 0.0
    """Largest expected energy per window in millijoules (0 = no cap)."""
    headroom_up: float = 0.7
    """Step up only to a member predicted to take at most this share of the budget."""
    headroom_down: float = 0.9
    """Step down when the active member is predicted to take more than this share."""
    dwell_s: float = 10.0
    """Least time between two step-ups (step-downs for a missed budget are immediate)."""
    ewma_alpha: float = 0.2
    """Weight of each new latency observation in the contention estimate."""
    thermal_c: float = 80.0
    """Step down (half the MACs) at or above this temperature, or while the board throttles."""
    thermal_release_c: float = 70.0
    preload_mb: float = 64.0
    """Memory for sessions loaded ahead of a switch (model file sizes count against it)."""
    latency_table: str = ""
    """JSON latency table for this board (``har-agent bench -m all --table``); empty: the bank's."""


@dataclass(frozen=True)
class EnergyConfig:
    """Energy meters, best available first (docs/adaptive.md)."""

    meter: Literal["auto", "ina219", "ina260", "rapl", "pmic", "estimate", "none"] = "auto"
    bus: int = 1
    """I2C bus of an INA219/INA260 power monitor."""
    address: int = 0x40
    shunt_ohms: float = 0.1
    max_current_a: float = 3.2
    idle_w: float = 2.7
    """Board power when idle (for the estimate; a Pi 4's figure by default)."""
    core_w: float = 1.0
    """Extra power per fully busy core (for the estimate)."""
    sample_hz: float = 0.0
    """How often a sampled meter (INA, PMIC) reads power; 0: the meter's default (INA 20 Hz,
    PMIC 2 Hz: each PMIC reading starts ``vcgencmd``, so keep it low)."""


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"


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
    """Folder that relative paths resolve against (the profile's folder); not a TOML key."""

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def with_device(p: Profile, device_id: str) -> Profile:
    """``p`` publishing as another device (``replay --device``)."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ConfigError(f"--device {device_id!r}: {_DEVICE_ID_RULE}")
    return dataclasses.replace(p, device=dataclasses.replace(p.device, id=device_id))


def path_values(p: Profile) -> dict[str, str]:
    """Each :data:`PATH_KEYS` key and its value in ``p`` ("" where unset)."""
    out: dict[str, str] = {}
    for key in PATH_KEYS:
        section, name = key.split(".")
        out[key] = getattr(getattr(p, section), name)
    return out


def _validate(p: Profile, where: str) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: {key} {why}")

    if p.profile_version != PROFILE_VERSION:
        raise bad(
            "profile_version", f"{p.profile_version} is not supported (expected {PROFILE_VERSION})"
        )
    if not _DEVICE_ID.fullmatch(p.device.id):
        raise bad("device.id", _DEVICE_ID_RULE)
    if p.source.kind == "replay" and not p.source.path:
        raise bad("source.path", "is required when source.kind is 'replay'")
    speed_problem = check_speed(p.source.speed)
    if speed_problem:
        raise bad("source.speed", speed_problem)
    for key, value in path_values(p).items():
        path_problem = check_path(value)
        if path_problem:
            raise bad(key, path_problem)
    if not 1 <= p.source.chunk_samples <= 100_000:
        raise bad("source.chunk_samples", "must be between 1 and 100000")
    sn = p.sensor
    if not 0 <= sn.bus <= 255:
        raise bad("sensor.bus", "must be an I2C bus number between 0 and 255")
    if not 0x08 <= sn.address <= 0x77:
        raise bad("sensor.address", "must be a 7-bit I2C address between 0x08 and 0x77")
    if not 1 <= sn.rate_hz <= 1000:
        raise bad("sensor.rate_hz", "must be between 1 and 1000 Hz")
    if sn.accel_range_g not in (2, 4, 8, 16):
        raise bad("sensor.accel_range_g", "must be 2, 4, 8 or 16 (g)")
    if sn.gyro_range_dps not in (250, 500, 1000, 2000):
        raise bad("sensor.gyro_range_dps", "must be 250, 500, 1000 or 2000 (deg/s)")
    if not 0 < sn.dlpf_hz <= 500:
        raise bad("sensor.dlpf_hz", "must be a bandwidth in (0, 500] Hz")
    try:
        parse_axes(sn.axes)
    except ValueError as exc:
        raise bad("sensor.axes", str(exc)) from exc
    if not 0.1 <= sn.stuck_after_s <= 3600:
        raise bad("sensor.stuck_after_s", "must be between 0.1 and 3600 s")
    if not 0 <= sn.retries <= 100:
        raise bad("sensor.retries", "must be between 0 and 100")
    for key, n in (
        ("intra_op_threads", p.inference.intra_op_threads),
        ("inter_op_threads", p.inference.inter_op_threads),
    ):
        if not 1 <= n <= 64:
            raise bad(f"inference.{key}", "must be between 1 and 64")
    if not 1 <= p.smoothing.window <= 1000:
        raise bad("smoothing.window", "must be between 1 and 1000")
    m = p.mqtt
    host_problem = check_host(m.host)
    if host_problem:
        raise bad("mqtt.host", host_problem)
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
    if not 1 <= m.reconnect_min_s <= m.reconnect_max_s <= 3600:
        raise bad("mqtt.reconnect_min_s", "must be >= 1 and <= mqtt.reconnect_max_s (<= 3600)")
    if not 1 <= m.max_queued <= 1_000_000:
        raise bad("mqtt.max_queued", "must be between 1 and 1000000")
    if (m.client_cert == "") != (m.client_key == ""):
        raise bad("mqtt.client_cert", "and mqtt.client_key must be given together")
    if (m.ca_file or m.client_cert) and not m.tls:
        raise bad("mqtt.tls", "must be true when a CA file or client certificate is set")
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
    if not (0 <= e.idle_w <= 1000 and 0 <= e.core_w <= 1000):
        raise bad("energy.idle_w", "and energy.core_w must be between 0 and 1000 W")


def _validate_policy(pol: PolicyConfig, bad: Callable[[str, str], ConfigError]) -> None:
    if not 0 <= pol.deadline_ms <= 3_600_000:  # (NaN fails every comparison)
        raise bad("policy.deadline_ms", "must be 0 (derived from the hop) or a positive number")
    if not 0 < pol.deadline_fraction <= 1:
        raise bad("policy.deadline_fraction", "must be in (0, 1]")
    if not 0 <= pol.cpu_share <= 64:
        raise bad("policy.cpu_share", "must be 0 (no cap) or a share of one core up to 64")
    if not 0 <= pol.energy_mj <= 1_000_000:
        raise bad("policy.energy_mj", "must be 0 (no cap) or a positive number")
    if not 0 < pol.headroom_up <= pol.headroom_down <= 1:
        raise bad("policy.headroom_up", "must be > 0 and <= policy.headroom_down (<= 1)")
    if not 0 <= pol.dwell_s <= 86400:
        raise bad("policy.dwell_s", "must be between 0 and 86400 s")
    if not 0 < pol.ewma_alpha <= 1:
        raise bad("policy.ewma_alpha", "must be in (0, 1]")
    if not pol.thermal_release_c < pol.thermal_c <= 150:
        raise bad("policy.thermal_release_c", "must be below policy.thermal_c (<= 150)")
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
    profile = dataclasses.replace(profile, base_dir=base_dir)
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
