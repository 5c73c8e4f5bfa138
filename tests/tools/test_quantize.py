"""The int8 quantizer's configuration, as a member's provenance records it."""

from __future__ import annotations

from dataclasses import asdict

import pytest

ort = pytest.importorskip("onnxruntime")

from tools.bank.quantize import QuantConfig  # noqa: E402


def test_int8_members_record_the_onnxruntime_that_quantized_them() -> None:
    """quantize_stage writes ``asdict(QuantConfig)`` as an int8 member's ``quant_config``; the
    committed int8 members say which quantization recipe made them, not which quantizer."""
    assert asdict(QuantConfig())["onnxruntime"] == ort.__version__
