"""Pixels with no signal: blank, constant or saturated areas, which show nothing and so are not
observed (unknown is not zero: an unwritten block of zeros must never read as "no cars").

A pixel has no signal when it lies in a square of ``side`` × ``side`` pixels in which every band
of the (stretched, 8-bit) image is constant: fill values, unwritten blocks of a sparse file,
areas clipped to 0 or 255 by saturation or by the stretch. The square is wider than a rail car
(:data:`BLANK_SIDE_M`), so a car's roof, however even, never makes its own pixels blank, and
real ground, which always carries some sensor noise and texture, is not flat over metres.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BLANK_SIDE_M", "blank_mask", "blank_side_px"]

#: Side of the square that must be constant for its pixels to count as blank, in metres: wider
#: than any rail car (3.0–3.3 m), so no car fits inside one.
BLANK_SIDE_M = 5.0


def blank_side_px(gsd: float) -> int:
    """:data:`BLANK_SIDE_M` in pixels of ``gsd`` metres (at least 3)."""
    if not gsd > 0:
        raise ValueError(f"gsd must be positive, got {gsd}")
    return max(3, math.ceil(BLANK_SIDE_M / gsd))


def blank_mask(array: np.ndarray, side: int) -> np.ndarray:
    """``(bands, rows, cols)`` → ``(rows, cols)`` bool: pixels inside some ``side`` × ``side``
    square in which every band is constant."""
    if array.ndim != 3 or side < 2:
        raise ValueError(f"need (bands, rows, cols) and side >= 2, got {array.shape}, {side}")
    _, rows, cols = array.shape
    if rows < side or cols < side:
        return np.zeros((rows, cols), dtype=bool)
    # A square is constant when every neighbouring pair inside it is equal, in every band:
    # first along rows; only where some square passes, along columns (most tiles stop here).
    pairs = side * (side - 1)
    same_right = np.all(array[:, :, 1:] == array[:, :, :-1], axis=0)
    flat = _box_sums(same_right, side, side - 1) == pairs
    if not flat.any():
        return np.zeros((rows, cols), dtype=bool)
    same_below = np.all(array[:, 1:, :] == array[:, :-1, :], axis=0)
    flat &= _box_sums(same_below, side - 1, side) == pairs
    if not flat.any():
        return np.zeros((rows, cols), dtype=bool)
    # Every pixel of each constant square: the squares whose top-left corner lies within
    # side - 1 pixels above and to the left.
    padded = np.zeros((rows + side - 1, cols + side - 1), dtype=bool)
    padded[side - 1 : rows, side - 1 : cols] = flat
    return _box_sums(padded, side, side) > 0


def _box_sums(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sum of ``mask`` over every ``height`` × ``width`` box, indexed by its top-left corner."""
    rows, cols = mask.shape
    integral = np.zeros((rows + 1, cols + 1), dtype=np.int64 if mask.size >= 2**31 else np.int32)
    np.cumsum(mask, axis=0, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return (integral[height:, width:] - integral[:-height, width:]
            - integral[height:, :-width] + integral[:-height, :-width])
