"""Tiles: pixels that never travel without their georeferencing (after rio-tiler's ImageData)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from affine import Affine
from rasterio.crs import CRS

__all__ = ["PixelWindow", "Tile"]


@dataclass(frozen=True, slots=True)
class PixelWindow:
    """A window on a grid: ``rows`` × ``cols`` pixels from (``row_off``, ``col_off``)."""

    row_off: int
    col_off: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError(f"window must be non-empty, got {self.rows}×{self.cols}")

    @property
    def slices(self) -> tuple[slice, slice]:
        return (
            slice(self.row_off, self.row_off + self.rows),
            slice(self.col_off, self.col_off + self.cols),
        )


@dataclass(frozen=True, slots=True)
class Tile:
    """An RGB window of a scene on the site grid.

    ``array`` is ``(3, rows, cols)`` uint8; ``valid`` is ``(rows, cols)`` bool (inside the
    scene footprint, not nodata, not masked). ``transform`` maps (col, row) of this tile to
    ``crs`` coordinates. ``core`` is the part of the tile (tile pixel coordinates) that
    belongs to it alone; the rest is a halo shared with neighbouring tiles, so that objects
    cut by a tile edge lie whole in some tile.
    """

    array: np.ndarray
    valid: np.ndarray
    transform: Affine
    crs: CRS
    acquired: datetime
    scene: str
    core: PixelWindow

    def __post_init__(self) -> None:
        if self.array.ndim != 3 or self.array.shape[0] != 3 or self.array.dtype != np.uint8:
            raise ValueError(
                f"tile array must be (3, rows, cols) uint8, got {self.array.shape} {self.array.dtype}"
            )
        if self.valid.shape != self.array.shape[1:] or self.valid.dtype != np.bool_:
            raise ValueError(
                f"valid mask must be {self.array.shape[1:]} bool, got {self.valid.shape} {self.valid.dtype}"
            )
        if self.acquired.tzinfo is None:
            raise ValueError("acquired must be timezone-aware (UTC)")
        rows, cols = self.array.shape[1:]
        c = self.core
        if c.row_off < 0 or c.col_off < 0 or c.row_off + c.rows > rows or c.col_off + c.cols > cols:
            raise ValueError(f"core {c} lies outside the {rows}×{cols} tile")

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.array.shape[1]), int(self.array.shape[2])

    @property
    def gsd(self) -> float:
        """Ground sample distance in CRS units (metres on the site grid)."""
        return float(abs(self.transform.a))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (cols, rows)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def pixels_to_map(self, xy: np.ndarray) -> np.ndarray:
        """Pixel (col, row) coordinates, shape ``(..., 2)``, to map coordinates."""
        t = self.transform
        x = t.a * xy[..., 0] + t.b * xy[..., 1] + t.c
        y = t.d * xy[..., 0] + t.e * xy[..., 1] + t.f
        return np.stack([x, y], axis=-1)

    def map_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Map coordinates, shape ``(..., 2)``, to pixel (col, row) coordinates."""
        inv = ~self.transform
        c = inv.a * xy[..., 0] + inv.b * xy[..., 1] + inv.c
        r = inv.d * xy[..., 0] + inv.e * xy[..., 1] + inv.f
        return np.stack([c, r], axis=-1)
