"""Build the publisher a profile asks for: the MQTT link (TLS, credentials file, v5), and in front
of it, for the daemon, the disk-backed outbox."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from agent.credentials import load_credentials
from agent.discovery import ha_status_topic
from agent.errors import AgentError, ConfigError
from agent.forwarder import OutboxPublisher
from agent.mqtt import MqttPublisher
from agent.mqtt_settings import MqttSettings, broker_address
from agent.outbox import Outbox, free_bytes
from agent.payload import Topics
from agent.profile import Profile
from agent.publishers import Publisher

log = logging.getLogger(__name__)


def client_id(profile: Profile, *, replay: bool = False) -> str:
    """The profile's ``mqtt.client_id``, else ``har-agent-<device.id>``. A replay adds
    ``-replay-<pid>``: a broker drops one of two clients with the same id whenever the other
    connects, so a replay with the daemon's profile would knock the daemon off."""
    base = profile.mqtt.client_id or f"har-agent-{profile.device.id}"
    return f"{base}-replay-{os.getpid()}" if replay else base


def mqtt_link(
    profile: Profile,
    *,
    retry_in_background: bool = False,
    replay: bool = False,
    stop: threading.Event | None = None,
) -> MqttPublisher:
    """The MQTT link; ``retry_in_background``: a broker that cannot be reached at start is
    logged and retried instead of ending the run (the daemon, whose outbox keeps the rows);
    ``stop``, the run's stop event, ends the wait for the first connection."""
    m = profile.mqtt
    if m.tls:  # named as every profile error is: the file, the key, what is wrong
        for key in ("ca_file", "client_cert", "client_key"):
            value = getattr(m, key)
            if value and not profile.resolve(value).is_file():
                raise ConfigError(
                    f"{profile.file}: mqtt.{key} = {value}: no such file ({profile.resolve(value)})"
                )
    creds = load_credentials(profile.resolve(m.credentials_file)) if m.credentials_file else None
    if creds is not None and not m.tls and not _is_loopback(m.host):
        log.warning(
            "mqtt: the password of %s goes to %s in clear text (mqtt.tls = false); "
            "anyone on the network path can read it: set mqtt.tls = true",
            m.credentials_file,
            m.host,
        )
    ha = profile.homeassistant
    settings = MqttSettings(
        host=m.host,
        port=m.port,
        client_id=client_id(profile, replay=replay),
        keepalive_s=m.keepalive_s,
        qos=m.qos,
        connect_timeout_s=m.connect_timeout_s,
        reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s,
        max_queued=m.max_queued,
        tls=m.tls,
        ca_file=str(profile.resolve(m.ca_file)) if m.ca_file else None,
        client_cert=str(profile.resolve(m.client_cert)) if m.client_cert else None,
        client_key=str(profile.resolve(m.client_key)) if m.client_key else None,
        credentials=creds,
        subscriptions=(ha_status_topic(ha.prefix),) if ha.discovery else (),
    )
    return MqttPublisher(
        settings,
        Topics(m.topic_prefix, profile.device.id),
        retry_in_background=retry_in_background,
        stop=stop,
    )


def _is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): traffic that stays on this host."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def outbox_path(profile: Profile, env: Mapping[str, str] | None = None) -> Path:
    """The profile's ``outbox.path``, else systemd's state directory, else the XDG state home.
    With ``--broker`` (another broker than the profile's), the file is that broker's own, beside
    the one the profile's broker gets (``outbox-ID.db`` -> ``outbox-ID@HOST_PORT.db``, an
    ``outbox.path`` of ``o.db`` -> ``o@HOST_PORT.db``): rows queued for one broker are never
    drained into another."""
    env = os.environ if env is None else env
    if profile.outbox.path:
        path = profile.resolve(profile.outbox.path)
    else:
        name = f"outbox-{profile.device.id}.db"
        state = env.get("STATE_DIRECTORY", "").split(":")[0]
        xdg = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(state) / name if state else Path(xdg) / "har-agent" / name
    if profile.broker_override:
        m = profile.mqtt
        path = path.with_name(f"{path.stem}@{m.host.replace(':', '_')}_{m.port}{path.suffix}")
    return path


def make_publisher(
    profile: Profile, *, use_outbox: bool, stop: threading.Event | None = None
) -> Publisher:
    """The MQTT link, with the outbox in front for the daemon; ``stop`` (the run's stop event)
    ends the link's wait for the first connection (Ctrl-C, SIGTERM)."""
    o = profile.outbox
    if not (use_outbox and o.enabled):
        # a replay (or a daemon without outbox): an unreachable broker ends it with one line
        return mqtt_link(profile, replay=not use_outbox, stop=stop)
    link = mqtt_link(profile, retry_in_background=True, stop=stop)  # not connected until started
    path = outbox_path(profile)
    cap = int(o.max_mb * 1024 * 1024)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # (see Outbox)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise AgentError(f"{path.parent}: cannot create the outbox folder ({reason})") from exc
    room = free_bytes(path.parent)
    if cap > room // 2:
        # stay well under the free space of the filesystem (an SD card must not fill up)
        cap = max(room // 2, 1024 * 1024)
        log.warning(
            "outbox cap lowered to %.1f MB: half the free space of %s", cap / 1048576, path.parent
        )
    outbox = Outbox(path, max_bytes=cap, ttl_s=o.ttl_h * 3600.0, policy=o.policy)
    log.info(
        "outbox %s for the MQTT broker at %s (cap %.1f MB, TTL %g h, %s)",
        path,
        broker_address(profile.mqtt.host, profile.mqtt.port),
        cap / 1048576,
        o.ttl_h,
        o.policy,
    )
    return OutboxPublisher(outbox, link, window=o.window)
