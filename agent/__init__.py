"""har-agent: on-device human activity recognition runtime."""

__version__ = "0.1.0"
