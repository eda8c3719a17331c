"""Tiles: pixels that never travel without their georeferencing (after rio-tiler's ImageData).

Also the one place for the maths between pixels and map coordinates (:func:`pixels_to_map`,
:func:`map_to_pixels`, on ``rasterio.transform``) and for burning a geometry into a raster
window (:func:`geometry_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import rasterio.transform
import rasterio.windows
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from shapely.geometry.base import BaseGeometry

__all__ = ["PixelWindow", "Tile", "geometry_mask", "map_to_pixels", "pixels_to_map"]


def pixels_to_map(transform: Affine, xy: np.ndarray) -> np.ndarray:
    """Pixel coordinates (col, row), shape ``(..., 2)``, to map coordinates under ``transform``.

    (0, 0) is the top-left corner of the top-left pixel, not its centre.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.size == 0:
        return xy.copy()
    x, y = rasterio.transform.xy(transform, xy[..., 1].ravel(), xy[..., 0].ravel(), offset="ul")
    return np.stack([np.asarray(x), np.asarray(y)], axis=-1).reshape(xy.shape)


def map_to_pixels(transform: Affine, xy: np.ndarray) -> np.ndarray:
    """Map coordinates, shape ``(..., 2)``, to fractional pixel coordinates (col, row)."""
    # rasterio's rowcol rounds to whole pixels; the inverse transform's xy keeps the fraction.
    return pixels_to_map(~transform, xy)


def geometry_mask(
    geometry: BaseGeometry, shape: tuple[int, int], transform: Affine, all_touched: bool = False
) -> np.ndarray:
    """``shape`` bool: the pixels of a raster (``shape``, ``transform``) whose centre lies in
    ``geometry``, or, with ``all_touched``, that ``geometry`` touches at all."""
    rows, cols = shape
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (cols, rows)
    part = (shapely.clip_by_rect(geometry, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            if not geometry.is_empty else geometry)
    if part.is_empty:
        return np.zeros(shape, dtype=bool)
    burnt = rasterize([(part, 1)], out_shape=shape, transform=transform, fill=0, dtype="uint8",
                      all_touched=all_touched)
    return np.asarray(burnt, dtype=bool)


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

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def as_rasterio(self) -> rasterio.windows.Window:
        return rasterio.windows.Window(self.col_off, self.row_off, self.cols, self.rows)

    def transform(self, parent: Affine) -> Affine:
        """The transform of this window of a raster whose transform is ``parent``."""
        # what rasterio.windows.transform computes, without its deprecated ``*`` on affine 3
        return parent @ Affine.translation(self.col_off, self.row_off)


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
        """Pixel (col, row) coordinates of this tile, shape ``(..., 2)``, to map coordinates."""
        return pixels_to_map(self.transform, xy)

    def map_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Map coordinates, shape ``(..., 2)``, to pixel (col, row) coordinates of this tile."""
        return map_to_pixels(self.transform, xy)

    def mask(self, geometry: BaseGeometry, all_touched: bool = False) -> np.ndarray:
        """The tile's pixels in ``geometry`` (map coordinates); see :func:`geometry_mask`."""
        return geometry_mask(geometry, self.shape, self.transform, all_touched)
