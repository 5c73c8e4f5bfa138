"""har-agent: on-device human activity recognition runtime."""

import os

# ONNX Runtime 1.29+ sends usage telemetry from Linux too (a background uploader to a Microsoft
# endpoint) unless ORT_DISABLE_TELEMETRY=1 is set before it initialises. An edge daemon must not
# phone home by default; a user who wants it sets ORT_DISABLE_TELEMETRY=0. Set here, before any
# agent module imports onnxruntime. (1.32 still writes a device id and a small event cache under
# ~/.cache/Microsoft/DeveloperTools; the service's ProtectHome keeps it out of /home.)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
