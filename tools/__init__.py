"""Offline tools (PyTorch): dataset import, training, ONNX export, evaluation -> models/."""

# agent/__init__.py turns ONNX Runtime's telemetry off, which works only before onnxruntime is
# imported: ``python -m tools.x`` runs this first, whatever tools.x imports in which order.
import agent  # noqa: F401
