"""The one exception tree of har-agent.

    AgentError                      root: every error we raise on purpose
    ├── ConfigError                 a profile is missing, malformed or invalid
    ├── RecordingError              a recording file is missing, malformed or truncated
    ├── ModelError                  a model or manifest is missing, corrupt or does not fit
    ├── DataError                   samples do not fit what the pipeline expects
    ├── SourceError                 a sample source failed
    │   ├── SensorReadError         an I2C sensor transfer failed (EIO, timeout, NACK)
    │   └── SensorNotFoundError     no chip answers at the address, or another chip than expected
    ├── MeterError                  an energy meter is absent, unreadable or failed
    ├── PublishError                the MQTT broker cannot be reached or refused us
    └── OutboxError                 the disk-backed outbox cannot be opened or written

Library errors are mapped at the boundary (``raise ModelError(...) from exc``). The CLI prints
``str(error)`` on one line and exits non-zero; messages therefore name the file, key or host.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error har-agent raises on purpose."""


class ConfigError(AgentError):
    """A profile is missing, malformed or has an invalid value."""


class RecordingError(AgentError):
    """A recording file is missing, malformed or truncated."""


class ModelError(AgentError):
    """A model file or the bank manifest is missing, corrupt or does not fit."""


class DataError(AgentError):
    """Samples do not fit what the pipeline expects (channels, rate, shape)."""


class SourceError(AgentError):
    """A sample source failed."""


class SensorReadError(SourceError):
    """An I2C sensor transfer failed."""


class SensorNotFoundError(SourceError):
    """No chip answers at the configured address, or it is not the chip the profile names."""


class MeterError(AgentError):
    """An energy meter is absent, unreadable (permissions) or failed while sampling."""


class PublishError(AgentError):
    """The MQTT broker cannot be reached or refused the connection."""


class OutboxError(AgentError):
    """The disk-backed outbox (SQLite) cannot be opened or written."""
