"""The chip plan: which square chips of a tile the model looks at (pure functions).

Chips overlap by at least one car length plus a margin, so every car lies whole in some chip;
only chips that touch the counting region (and valid pixels) are planned — chips of the whole
frame are never needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Chip", "axis_starts", "plan_chips"]


@dataclass(frozen=True, slots=True)
class Chip:
    """A ``size`` × ``size`` chip whose top-left pixel is (``row``, ``col``) of its tile.

    A chip may reach past the tile's edge (a tile smaller than a chip); that part is padding.
    """

    row: int
    col: int
    size: int


def axis_starts(length: int, size: int, min_overlap: int) -> list[int]:
    """Start offsets of chips of ``size`` covering ``[0, length)`` with at least ``min_overlap``.

    The chips are spread evenly, the first at 0 and the last ending at ``length``; a length
    shorter than a chip gets one chip at 0.
    """
    if size <= 0 or not 0 <= min_overlap < size:
        raise ValueError(f"need 0 <= min_overlap < size, got {min_overlap}, {size}")
    if length <= size:
        return [0]
    n = math.ceil((length - min_overlap) / (size - min_overlap))
    n = max(n, 2)
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def plan_chips(wanted: np.ndarray, size: int, min_overlap: int) -> list[Chip]:
    """Chips over a tile whose ``wanted`` mask ``(rows, cols)`` marks pixels to look at.

    ``wanted`` is typically the counting region, rasterised and dilated by half a car length
    (a car whose centre is in the region must lie whole in a planned chip), and-ed with the
    valid mask. Chips with no wanted pixel are skipped.
    """
    rows, cols = wanted.shape
    # Summed-area table: any wanted pixel inside a chip, in O(1) per chip.
    sat = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(wanted, axis=0, dtype=np.int64), axis=1)
    chips = []
    for r in axis_starts(rows, size, min_overlap):
        for c in axis_starts(cols, size, min_overlap):
            r1, c1 = min(r + size, rows), min(c + size, cols)
            if sat[r1, c1] - sat[r, c1] - sat[r1, c] + sat[r, c] > 0:
                chips.append(Chip(r, c, size))
    return chips
