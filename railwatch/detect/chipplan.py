"""The chip plan: which square chips of the site grid the model looks at (pure functions).

Chips overlap by at least one car length plus a margin, so every car lies whole in some chip;
only chips that touch the counting region (and valid pixels) are planned — chips of the whole
frame are never needed.

The plan is made once over the whole counting region (:func:`plan_region_windows`): the grid is
cut into bands one chip high (or wide), and each band is covered only along the stretches where
the region crosses it. A band stretch is read as one window and chipped with
:func:`axis_starts`; long stretches are split into windows of at most ``max_window`` pixels, so
memory stays bounded by one window whatever the scene's size. Within any window (a tile),
:func:`plan_chips` places the chips and skips those without a wanted pixel.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.tile import PixelWindow

__all__ = [
    "CAR_OVERLAP_M",
    "Chip",
    "ChipLayout",
    "axis_starts",
    "chip_layout",
    "count_chips",
    "plan_chips",
    "plan_region_windows",
]


#: Longest car (a locomotive) plus a margin, in metres: chips overlap by at least this, so that
#: every car lies whole in some chip.
CAR_OVERLAP_M = 24.0


@dataclass(frozen=True, slots=True)
class Chip:
    """A ``size`` × ``size`` chip whose top-left pixel is (``row``, ``col``) of its tile.

    A chip may reach past the tile's edge (a tile smaller than a chip); that part is padding.
    """

    row: int
    col: int
    size: int


@dataclass(frozen=True, slots=True)
class ChipLayout:
    """How chips are laid: ``size`` px square, overlapping by at least ``overlap`` px.

    ``overlap`` must be at least the longest car's extent (so each car lies whole in some chip);
    read windows are at most ``max_window`` px long.
    """

    size: int
    overlap: int
    max_window: int = 4096

    def __post_init__(self) -> None:
        if self.size <= 0 or not 0 <= self.overlap < self.size:
            raise ValueError(f"need 0 <= overlap < size, got {self.overlap}, {self.size}")
        if self.max_window < self.size:
            raise ValueError(f"max_window must be at least one chip ({self.size}), got {self.max_window}")

    @property
    def pad(self) -> int:
        """Half a car: how far past the region a car centred in it can reach."""
        return math.ceil(self.overlap / 2)


def chip_layout(chip: int, gsd: float, overlap_m: float = CAR_OVERLAP_M) -> ChipLayout:
    """Chips of ``chip`` pixels at ``gsd`` metres per pixel, overlapping by ``overlap_m`` metres
    (at most ``chip - 1`` pixels)."""
    return ChipLayout(chip, min(chip - 1, math.ceil(overlap_m / gsd)))


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

    ``wanted`` is typically the counting region, rasterised, and-ed with the valid mask: a car
    whose centre is wanted lies whole in a chip that holds its centre, so that chip is planned.
    Chips with no wanted pixel are skipped.
    """
    rows, cols = wanted.shape
    row_starts = axis_starts(rows, size, min_overlap)
    col_starts = axis_starts(cols, size, min_overlap)
    if len(row_starts) == 1 and len(col_starts) == 1:  # a one-chip tile: no table needed
        return [Chip(0, 0, size)] if wanted.any() else []
    # Summed-area table: any wanted pixel inside a chip, in O(1) per chip.
    sat = np.zeros((rows + 1, cols + 1), dtype=np.int32)
    np.cumsum(wanted, axis=0, dtype=np.int32, out=sat[1:, 1:])
    np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])
    chips = []
    for r in row_starts:
        for c in col_starts:
            r1, c1 = min(r + size, rows), min(c + size, cols)
            if sat[r1, c1] - sat[r, c1] - sat[r1, c] + sat[r, c] > 0:
                chips.append(Chip(r, c, size))
    return chips


def count_chips(windows: tuple[GridWindow, ...] | list[GridWindow], layout: ChipLayout) -> int:
    """Chips :func:`plan_chips` lays over ``windows`` at most (before skipping unwanted ones)."""
    return sum(
        len(axis_starts(w.window.rows, layout.size, layout.overlap))
        * len(axis_starts(w.window.cols, layout.size, layout.overlap))
        for w in windows
    )


@dataclass(frozen=True, slots=True)
class _Span:
    """A stretch ``[lo, hi)`` of a band to chip; ``own_lo``–``own_hi`` is the region's extent in it."""

    lo: int
    hi: int
    own_lo: int
    own_hi: int


def plan_region_windows(
    grid: SiteGrid, region: BaseGeometry, layout: ChipLayout
) -> tuple[GridWindow, ...]:
    """Windows of ``grid`` to read and chip so that every car centred in ``region`` lies whole in a chip.

    Bands one chip high run across the region (or one chip wide, down it: whichever needs fewer
    chips); each band is covered only over the stretches where the region crosses it, grown by
    half a car. Each window's ``core`` is its own part of the region: cores never overlap and
    together hold every pixel of the region, so summing over cores counts each pixel once, and
    a box cut by a window edge beyond which the core does not reach lies whole in a neighbour.
    """
    if region.is_empty:
        return ()
    pixels = shapely.affinity.affine_transform(region, (~grid.transform).to_shapely())
    across = _band_windows(pixels, grid.rows, grid.cols, layout)
    swapped = shapely.affinity.affine_transform(pixels, [0.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    down = [_transposed(w) for w in _band_windows(swapped, grid.cols, grid.rows, layout)]
    best = across if count_chips(across, layout) <= count_chips(down, layout) else down
    return tuple(best)


def _transposed(w: GridWindow) -> GridWindow:
    a, c = w.window, w.core
    return GridWindow(PixelWindow(a.col_off, a.row_off, a.cols, a.rows),
                      PixelWindow(c.col_off, c.row_off, c.cols, c.rows))


def _band_windows(pixels: BaseGeometry, rows: int, cols: int, layout: ChipLayout) -> list[GridWindow]:
    """Horizontal bands over ``pixels`` (the region in (col, row) pixel coordinates)."""
    size, overlap, pad = layout.size, layout.overlap, layout.pad
    minx, miny, maxx, maxy = pixels.bounds
    own_top, own_bottom = max(0, math.floor(miny)), min(rows, math.ceil(maxy))
    if own_top >= own_bottom or maxx <= 0 or minx >= cols:
        return []
    lo, hi = max(0, own_top - pad), min(rows, own_bottom + pad)
    starts = [lo + s for s in axis_starts(hi - lo, size, overlap)]
    out: list[GridWindow] = []
    for top, (core_top, core_bottom) in zip(
        starts, _cores(starts, size, _Span(lo, hi, own_top, own_bottom), rows), strict=True
    ):
        if core_bottom <= core_top:
            continue
        bottom = min(top + size, rows)
        band = shapely.clip_by_rect(pixels, -1.0, top, cols + 1.0, bottom)
        for span in _spans(band, cols, layout):
            pieces = [span.lo + s for s in axis_starts(span.hi - span.lo, layout.max_window, overlap)]
            for left, (core_left, core_right) in zip(
                pieces, _cores(pieces, layout.max_window, span, cols), strict=True
            ):
                if core_right <= core_left:
                    continue
                right = min(left + layout.max_window, span.hi)
                window = PixelWindow(top, left, bottom - top, right - left)
                core = PixelWindow(core_top - top, core_left - left, core_bottom - core_top,
                                   core_right - core_left)
                out.append(GridWindow(window, core))
    return out


def _cores(starts: list[int], size: int, span: _Span, length: int) -> list[tuple[int, int]]:
    """The own part ``[begin, end)`` of each piece of ``size`` at ``starts`` covering ``span``.

    Between two pieces the split is the middle of their overlap. The first piece's own part
    begins where the region does, the last one's ends where the region does — unless the span
    was cut short by the grid's border (0 or ``length``): then the own part reaches that border,
    so that a car cut by the border is still kept.
    """
    first = 0 if span.lo == 0 else span.own_lo
    last = length if span.hi == length else span.own_hi
    splits = [(starts[i] + starts[i + 1] + size) // 2 for i in range(len(starts) - 1)]
    bounds = [first, *splits, last]
    return list(itertools.pairwise(bounds))


def _spans(band: BaseGeometry, cols: int, layout: ChipLayout) -> list[_Span]:
    """Stretches of a band to chip: each piece of the region in it, grown by half a car, merged
    with its neighbour when one cover needs no more chips than two."""
    parts = [p for p in getattr(band, "geoms", [band]) if not p.is_empty and p.area > 0]
    extents = sorted((math.floor(p.bounds[0]), math.ceil(p.bounds[2])) for p in parts)
    spans: list[_Span] = []
    for own_lo, own_hi in extents:
        own_lo, own_hi = max(0, own_lo), min(cols, own_hi)
        if own_hi <= own_lo:
            continue
        lo, hi = max(0, own_lo - layout.pad), min(cols, own_hi + layout.pad)
        span = _Span(lo, hi, own_lo, own_hi)
        if spans:
            prev = spans[-1]
            merged = _Span(prev.lo, max(prev.hi, hi), prev.own_lo, max(prev.own_hi, own_hi))
            if lo <= prev.hi or _n(merged, layout) <= _n(prev, layout) + _n(span, layout):
                spans[-1] = merged
                continue
        spans.append(span)
    return spans


def _n(span: _Span, layout: ChipLayout) -> int:
    return len(axis_starts(span.hi - span.lo, layout.size, layout.overlap))
