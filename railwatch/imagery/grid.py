"""The site grid (local UTM at the model's ground sample distance) and the windows read on it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.imagery.tile import PixelWindow

__all__ = ["GridWindow", "SiteGrid", "plan_windows"]

#: Default block side and halo of the windows read from a scene, in grid pixels. The halo
#: must exceed a car length (20 m = 80 px at 0.25 m) so that every car lies whole in a block.
DEFAULT_BLOCK = 1024
DEFAULT_HALO = 96


@dataclass(frozen=True, slots=True)
class SiteGrid:
    """A north-up grid in ``crs`` with square pixels of ``gsd`` metres.

    ``transform`` maps (col, row) to map coordinates; the grid covers ``rows`` × ``cols``.
    """

    crs: CRS
    gsd: float
    transform: Affine
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not self.gsd > 0:
            raise ValueError(f"gsd must be positive, got {self.gsd}")
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError("grid must be non-empty")

    @classmethod
    def covering(cls, geometry: BaseGeometry, crs: CRS, gsd: float) -> SiteGrid:
        """The grid whose pixel edges fall on multiples of ``gsd`` and that covers ``geometry``."""
        minx, miny, maxx, maxy = geometry.bounds
        x0 = math.floor(minx / gsd) * gsd
        y1 = math.ceil(maxy / gsd) * gsd
        cols = math.ceil((maxx - x0) / gsd)
        rows = math.ceil((y1 - miny) / gsd)
        return cls(crs, gsd, Affine(gsd, 0.0, x0, 0.0, -gsd, y1), rows, cols)

    def window_transform(self, window: PixelWindow) -> Affine:
        return window.transform(self.transform)

    def window_bounds(self, window: PixelWindow) -> tuple[float, float, float, float]:
        x0, y1 = self.transform @ (window.col_off, window.row_off)
        x1, y0 = self.transform @ (window.col_off + window.cols, window.row_off + window.rows)
        return x0, y0, x1, y1


@dataclass(frozen=True, slots=True)
class GridWindow:
    """A window to read: ``window`` on the grid, of which ``core`` (tile coordinates) is its own."""

    window: PixelWindow
    core: PixelWindow


def plan_windows(
    grid: SiteGrid,
    region: BaseGeometry,
    block: int = DEFAULT_BLOCK,
    halo: int = DEFAULT_HALO,
) -> tuple[GridWindow, ...]:
    """Blocks of the grid that touch ``region``, each grown by ``halo`` pixels (clipped to the grid).

    Cores partition the covered part of the grid; windows overlap by ``2 * halo`` so that an
    object up to ``halo`` pixels long lies whole in at least one window. Only blocks whose core
    intersects ``region`` are returned: pixels far from the counting areas are never read.
    """
    if block <= 0 or halo < 0:
        raise ValueError("block must be positive and halo non-negative")
    if region.is_empty:
        return ()
    cores = [
        PixelWindow(r0, c0, min(block, grid.rows - r0), min(block, grid.cols - c0))
        for r0 in range(0, grid.rows, block)
        for c0 in range(0, grid.cols, block)
    ]
    boxes = shapely.box(*np.array([grid.window_bounds(c) for c in cores]).T)
    hits = shapely.intersects(region, boxes)
    out: list[GridWindow] = []
    for core, hit in zip(cores, hits, strict=True):
        if not hit:
            continue
        r0, c0 = core.row_off, core.col_off
        wr0, wc0 = max(0, r0 - halo), max(0, c0 - halo)
        wr1 = min(grid.rows, r0 + core.rows + halo)
        wc1 = min(grid.cols, c0 + core.cols + halo)
        window = PixelWindow(wr0, wc0, wr1 - wr0, wc1 - wc0)
        out.append(GridWindow(window, PixelWindow(r0 - wr0, c0 - wc0, core.rows, core.cols)))
    return tuple(out)
