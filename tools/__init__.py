"""Offline tools (PyTorch): dataset import, training, ONNX export, evaluation -> models/."""
