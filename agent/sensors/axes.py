"""The profile's axis remap (``sensor.axes``): how the chip sits relative to the model's frame.

``axes = ["-y", "x", "z"]`` reads: the model's x axis is the chip's -y axis, its y axis the chip's
x axis, its z axis the chip's z axis. The same remap applies to acceleration and angular rate, which
is only right for a rotation: a mirror image (an odd number of sign flips and swaps) would turn
angular rates the wrong way, so it is refused. Pure logic, no numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

AXIS_NAMES = ("x", "y", "z")


def parse_axes(axes: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``(chip axis index, sign)`` for the model's x, y and z; ValueError says what is wrong."""
    if len(axes) != 3:
        raise ValueError(f'must name 3 axes, e.g. ["x", "y", "z"] (got {list(axes)})')
    out: list[tuple[int, int]] = []
    for item in axes:
        text = item.strip().lower()
        sign = -1 if text.startswith("-") else 1
        name = text.lstrip("+-")
        if name not in AXIS_NAMES or len(text) - len(name) > 1:
            raise ValueError(f"{item!r} is not one of x, y, z, -x, -y, -z")
        out.append((AXIS_NAMES.index(name), sign))
    if sorted(i for i, _ in out) != [0, 1, 2]:
        raise ValueError(f"must use each of x, y and z once (got {list(axes)})")
    if _parity([i for i, _ in out]) * out[0][1] * out[1][1] * out[2][1] != 1:
        raise ValueError(
            f"{list(axes)} is a mirror image, not a rotation of the chip; "
            "flip one more sign or swap two axes"
        )
    return tuple(out)


def _parity(perm: list[int]) -> int:
    """+1 for an even permutation of (0, 1, 2), -1 for an odd one."""
    inversions = sum(1 for a in range(3) for b in range(a + 1, 3) if perm[a] > perm[b])
    return -1 if inversions % 2 else 1
