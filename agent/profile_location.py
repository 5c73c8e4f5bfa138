"""Where a command finds its profile when none is named (``--profile``, ``$HAR_AGENT_PROFILE``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_PROFILE = Path("profiles/default.toml")
"""What commands run with when neither ``--profile`` nor ``$HAR_AGENT_PROFILE`` names one."""


def find_profile(path: Path) -> Path:
    """``path`` as given, unless it is :data:`DEFAULT_PROFILE` and missing from the current
    folder: then the installation's own copy (beside the ``agent`` package in a checkout, or
    beside the virtual environment, as in ``/opt/har-agent``), then the service's
    ``/etc/har-agent/profile.toml`` when readable. So ``har-agent bench`` works from any folder."""
    if path != DEFAULT_PROFILE or path.exists():
        return path
    tree = Path(__file__).resolve().parents[1] / DEFAULT_PROFILE
    beside_venv = Path(sys.prefix).resolve().parent / DEFAULT_PROFILE
    service = Path("/etc/har-agent/profile.toml")
    for candidate in (tree, beside_venv):
        if candidate.is_file():
            return candidate
    if service.is_file() and os.access(service, os.R_OK):
        return service
    return path
