"""The tables of a profile (docs/profiles.md): one frozen dataclass per TOML table, with each
key's default and what it means. :class:`agent.profile.Profile` holds them all; the range checks
and the loading are in :mod:`agent.profile`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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

    chip: Literal["mpu6050", "mpu6500", "mpu9250", "lsm6dsox", "lsm6dso32"] = "mpu6050"
    """``lsm6dsox`` also for the LSM6DSO; ``lsm6dso32`` for the LSM6DSO32, which answers the same
    WHO_AM_I (0x6C) with other accelerometer ranges: the part marking tells them apart."""
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
