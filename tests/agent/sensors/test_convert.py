"""Pure conversions: the axis remap, raw words, units."""

import math

import numpy as np
import pytest

from agent.sensors.axes import parse_axes
from agent.sensors.convert import remap, to_units, words


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        (["x", "y", "z"], ((0, 1), (1, 1), (2, 1))),
        (["-y", "x", "z"], ((1, -1), (0, 1), (2, 1))),  # 90 deg about z
        (["-x", "-y", "z"], ((0, -1), (1, -1), (2, 1))),  # 180 deg about z
        (["+z", "x", "y"], ((2, 1), (0, 1), (1, 1))),  # a cyclic permutation
        (["x", "-z", "y"], ((0, 1), (2, -1), (1, 1))),  # 90 deg about x
        ([" Y ", "-X", "z"], ((1, 1), (0, -1), (2, 1))),
    ],
)
def test_rotations_parse(axes: list[str], expected: tuple[tuple[int, int], ...]) -> None:
    assert parse_axes(axes) == expected


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        (["-x", "y", "z"], "mirror image"),
        (["y", "x", "z"], "mirror image"),
        (["x", "x", "z"], "each of x, y and z once"),
        (["x", "y"], "3 axes"),
        (["w", "y", "z"], "not one of"),
        (["--x", "y", "z"], "not one of"),
    ],
)
def test_bad_axes(axes: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_axes(axes)


def test_remap_moves_accel_and_gyro_alike() -> None:
    v = np.array([[1.0, 2.0, 3.0, 0.1, 0.2, 0.3]])
    out = remap(v, ["-y", "x", "z"])
    assert out.tolist() == [[-2.0, 1.0, 3.0, -0.2, 0.1, 0.3]]
    assert remap(v, ["x", "y", "z"]) is v


def test_words_both_byte_orders() -> None:
    data = bytes([0x40, 0x00, 0x80, 0x00, 0xFF, 0xFF])
    assert words(data, 3, big_endian=True).tolist() == [[16384, -32768, -1]]
    assert words(data, 3, big_endian=False).tolist() == [[64, 128, -1]]
    with pytest.raises(ValueError, match="whole rows"):
        words(data[:5], 3, big_endian=True)


def test_to_units() -> None:
    raw = np.array([[16384, -8192, 0, 131, -262, 0]])
    out = to_units(raw, 1 / 16384, 1 / 131)
    assert out[0, :3].tolist() == [1.0, -0.5, 0.0]
    assert out[0, 3:] == pytest.approx([math.radians(1), math.radians(-2), 0.0])
