"""The canvas a scene is painted on: a north-up raster window in world metres.

A :class:`RasterWindow` says where pixels are (west edge ``x0``, north edge ``y1``, square
pixels of ``gsd`` metres). A :class:`Canvas` holds the surface albedo (RGB, 0–1) and the
height above ground (metres) that shadows are cast from. Painting is done with anti-aliased
OpenCV polygon fills, so a polygon's edge pixels get partial coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from affine import Affine
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["Canvas", "RasterWindow", "rgb"]


def rgb(values: Iterable[float] | np.ndarray) -> tuple[float, float, float]:
    """An RGB colour (0–1) as a typed triple; ``values`` must hold exactly three numbers."""
    r, g, b = (float(v) for v in values)
    return (r, g, b)

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = float(1 << _SHIFT)


@dataclass(frozen=True, slots=True)
class RasterWindow:
    """A north-up pixel grid: west edge ``x0``, north edge ``y1``, ``gsd`` metres per pixel."""

    x0: float
    y1: float
    gsd: float
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not self.gsd > 0:
            raise ValueError(f"gsd must be positive, got {self.gsd}")
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError(f"window must be non-empty, got {self.rows}×{self.cols}")

    @property
    def transform(self) -> Affine:
        return Affine(self.gsd, 0.0, self.x0, 0.0, -self.gsd, self.y1)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y1 - self.rows * self.gsd, self.x0 + self.cols * self.gsd, self.y1)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """World (x, y) → continuous pixel (col, row), with pixel centres at ``i + 0.5``."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(xy[..., 0] - self.x0) / self.gsd, (self.y1 - xy[..., 1]) / self.gsd], -1)

    def pixel_centres(
        self, r0: int = 0, r1: int | None = None, c0: int = 0, c1: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """World x (1, n) and y (m, 1) of the pixel centres of a sub-block."""
        r1 = self.rows if r1 is None else r1
        c1 = self.cols if c1 is None else c1
        x = self.x0 + (np.arange(c0, c1, dtype=np.float32) + 0.5) * self.gsd
        y = self.y1 - (np.arange(r0, r1, dtype=np.float32) + 0.5) * self.gsd
        return x[None, :], y[:, None]

    def shifted(self, dx: float, dy: float) -> RasterWindow:
        """The same grid moved by (dx, dy) metres."""
        return RasterWindow(self.x0 + dx, self.y1 + dy, self.gsd, self.rows, self.cols)


@dataclass(slots=True)
class Canvas:
    """Surface layers of a window, painted in place.

    ``albedo`` (rows, cols, 3): reflectance 0–1; ``height`` (rows, cols): metres above the
    ground, what shadows are cast from; ``direct`` (rows, cols): direct sunlight a surface
    receives relative to flat ground (tilted roofs, cylinders, heaps); ``shade`` (rows,
    cols): shadows drawn explicitly (of overhangs a height map cannot hold, e.g. a bridge);
    ``floor`` (rows, cols): the underside of what overhangs open space (a car body between
    its bogies, a canopy, a catenary beam), metres; 0 where things stand solid on the ground.
    """

    window: RasterWindow
    albedo: np.ndarray = field(init=False)
    height: np.ndarray = field(init=False)
    direct: np.ndarray = field(init=False)
    shade: np.ndarray = field(init=False)
    floor: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.window.rows, self.window.cols)
        self.albedo = np.zeros((*shape, 3), dtype=np.float32)
        self.height = np.zeros(shape, dtype=np.float32)
        self.direct = np.ones(shape, dtype=np.float32)
        self.shade = np.zeros(shape, dtype=np.float32)
        self.floor = np.zeros(shape, dtype=np.float32)

    def _rings(self, geom: BaseGeometry) -> list[np.ndarray]:
        polys: list[Polygon]
        if isinstance(geom, Polygon):
            polys = [geom]
        elif isinstance(geom, MultiPolygon):
            polys = list(geom.geoms)
        elif hasattr(geom, "geoms"):
            polys = [g for g in geom.geoms if isinstance(g, Polygon)]
        else:
            polys = []
        rings = []
        for p in polys:
            if p.is_empty:
                continue
            for ring in (p.exterior, *p.interiors):
                rings.append(self._fixed(np.asarray(ring.coords)[:, :2]))
        return rings

    def _fixed(self, xy: np.ndarray) -> np.ndarray:
        px = self.window.to_pixels(xy) - 0.5  # OpenCV puts pixel centres on integers
        return np.round(px * _SCALE).astype(np.int32).reshape(-1, 1, 2)

    def coverage(self, geom: BaseGeometry) -> np.ndarray:
        """Anti-aliased coverage (0–1, float32) of a polygon or multipolygon."""
        mask = np.zeros((self.window.rows, self.window.cols), dtype=np.uint8)
        rings = self._rings(geom)
        if rings:
            cv2.fillPoly(mask, rings, 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        return mask.astype(np.float32) * (1.0 / 255.0)

    def line_coverage(self, geom: BaseGeometry, width_m: float) -> np.ndarray:
        """Coverage of a (multi)line drawn ``width_m`` wide; thinner than a pixel fades out."""
        mask = np.zeros((self.window.rows, self.window.cols), dtype=np.uint8)
        lines: list[LineString]
        if isinstance(geom, LineString):
            lines = [geom]
        elif isinstance(geom, MultiLineString):
            lines = list(geom.geoms)
        else:
            lines = []
        width_px = width_m / self.window.gsd
        thickness = max(1, round(width_px))
        value = round(255 * min(1.0, width_px / thickness))
        pts = [self._fixed(np.asarray(ln.coords)[:, :2]) for ln in lines if not ln.is_empty]
        if pts:
            cv2.polylines(mask, pts, False, value, thickness, cv2.LINE_AA, _SHIFT)
        return mask.astype(np.float32) * (1.0 / 255.0)

    def sub(self, r0: int, r1: int, c0: int, c1: int) -> RasterWindow:
        """The window of rows r0:r1, cols c0:c1."""
        w = self.window
        return RasterWindow(w.x0 + c0 * w.gsd, w.y1 - r0 * w.gsd, w.gsd, r1 - r0, c1 - c0)

    def paint_textured(
        self,
        cover: np.ndarray,
        texture: Callable[[RasterWindow], np.ndarray],
        height: float | None = None,
    ) -> None:
        """Blend a texture, computed only over the bounding box of ``cover``, into the canvas.

        ``texture(window)`` returns (rows, cols, 3) colours for a sub-window.
        """
        rows = np.flatnonzero(cover.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(cover.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        col = texture(self.sub(r0, r1, c0, c1))
        self.paint_region(r0, c0, np.ascontiguousarray(cover[r0:r1, c0:c1]), col, height)

    def paint(
        self,
        cover: np.ndarray,
        color: np.ndarray | tuple[float, float, float],
        height: float | np.ndarray | None = None,
    ) -> None:
        """Blend ``color`` (RGB triple or (rows, cols, 3) image) over the albedo by ``cover``.

        ``height`` (metres, scalar or per pixel) raises the height map where cover > 0.5.
        """
        col = np.asarray(color, dtype=np.float32)
        if col.ndim == 3:  # a full-canvas image: blend where covered
            a = cover[..., None]
            self.albedo += a * (col - self.albedo)
            self.direct += cover * (1.0 - self.direct)
            if height is not None:
                h = np.broadcast_to(np.asarray(height, dtype=np.float32), cover.shape)
                np.copyto(self.height, h, where=cover > 0.5)
                self.floor[cover > 0.5] = 0.0
            return
        rows = np.flatnonzero(cover.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(cover.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        if height is not None and np.ndim(height) == 2:
            height = np.asarray(height)[r0:r1, c0:c1]
        self.paint_region(r0, c0, np.ascontiguousarray(cover[r0:r1, c0:c1]), col, height)

    def paint_region(
        self,
        r0: int,
        c0: int,
        cover: np.ndarray,
        color: np.ndarray,
        height: np.ndarray | float | None = None,
        direct: np.ndarray | None = None,
        floor: np.ndarray | float | None = None,
    ) -> None:
        """Blend a small patch (top-left at row ``r0``, col ``c0``) into the canvas, clipped.

        Where ``height`` is given and the patch covers a pixel, the ``floor`` layer is set
        too (``floor``, or 0: solid to the ground).
        """
        rows, cols = cover.shape
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, self.window.rows), min(c0 + cols, self.window.cols)
        if rr1 <= rr0 or cc1 <= cc0:
            return
        sub = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
        dst = (slice(rr0, rr1), slice(cc0, cc1))
        a = cover[sub][..., None]
        col = np.asarray(color, dtype=np.float32)
        if col.ndim == 3:
            col = col[sub]
        self.albedo[dst] += a * (col - self.albedo[dst])
        if height is not None:
            h = np.asarray(height, dtype=np.float32)
            h = np.broadcast_to(h[sub] if h.ndim == 2 else h, a.shape[:2])
            np.copyto(self.height[dst], h, where=cover[sub] > 0.5)
            fl = np.asarray(0.0 if floor is None else floor, dtype=np.float32)
            fl = np.broadcast_to(fl[sub] if fl.ndim == 2 else fl, a.shape[:2])
            np.copyto(self.floor[dst], fl, where=cover[sub] > 0.5)
        d = self.direct[dst]
        target = np.float32(1.0) if direct is None else direct[sub]
        d += cover[sub] * (target - d)
