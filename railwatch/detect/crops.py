"""Canonical car crops: one car cut out along its own axis at a fixed ground resolution (pure numpy).

The namer looks at one car at a time in a frame of its own: the car's long axis along x, its
centre in the middle, a fixed number of metres per pixel, and a margin of a few metres around
the body so that couplers, the gaps to the neighbours and the shadow are in view. The same
function cuts crops for training (from simulated chips or labelled imagery) and at run time
(from the pipeline's tiles), so the two always see cars the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CropSpec", "box_axes", "canonical_crops"]

#: Grey for crop pixels that fall outside the image (ultralytics' letterbox grey, as chips use).
PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class CropSpec:
    """The canonical frame: ``gsd`` metres per pixel, ``length_m`` along the car, ``width_m`` across."""

    gsd: float = 0.3
    length_m: float = 30.0
    width_m: float = 12.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.gsd <= 1.0:
            raise ValueError(f"crop gsd must be in [0.05, 1.0] m, got {self.gsd}")
        if self.length_m < 10 * self.gsd or self.width_m < 4 * self.gsd:
            raise ValueError(f"crop of {self.length_m} × {self.width_m} m is too small at {self.gsd} m")

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of a crop: rows across the car, columns along it."""
        return round(self.width_m / self.gsd), round(self.length_m / self.gsd)


def box_axes(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre ``(n, 2)``, unit long axis ``(n, 2)``, length and width ``(n,)`` of oriented boxes.

    ``corners`` ``(n, 4, 2)`` in any planar units, in ring order. The axis is the direction of
    the longer side, signed to point right (``+x``), or down for a vertical box, so that a box
    and the same box given from another corner get the same axis.
    """
    c = np.asarray(corners, dtype=np.float64)
    if c.ndim != 3 or c.shape[1:] != (4, 2):
        raise ValueError(f"corners must be (n, 4, 2), got {c.shape}")
    e0 = c[:, 1] - c[:, 0]
    e1 = c[:, 2] - c[:, 1]
    l0 = np.linalg.norm(e0, axis=1)
    l1 = np.linalg.norm(e1, axis=1)
    first = l0 >= l1
    axis = np.where(first[:, None], e0, e1)
    length = np.where(first, l0, l1)
    width = np.where(first, l1, l0)
    axis = axis / np.maximum(length, 1e-12)[:, None]
    flip = (axis[:, 0] < -1e-9) | ((np.abs(axis[:, 0]) <= 1e-9) & (axis[:, 1] < 0))
    axis[flip] *= -1.0
    return c.mean(axis=1), axis, length, width


def canonical_crops(
    image: np.ndarray, corners_px: np.ndarray, pixel_gsd: float, spec: CropSpec
) -> np.ndarray:
    """Crops ``(n, bands, rows, cols)`` uint8 of the boxes ``corners_px`` of ``image``.

    ``image`` ``(bands, H, W)`` uint8; ``corners_px`` ``(n, 4, 2)`` as ``(col, row)`` pixel
    coordinates (pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``) of an image with ``pixel_gsd``
    metres per pixel. Each crop is bilinearly resampled so that the box's long axis runs along
    the crop's columns, its centre at the crop's centre, at ``spec.gsd`` metres per pixel;
    pixels outside the image are :data:`PAD_VALUE`.
    """
    if image.ndim != 3:
        raise ValueError(f"image must be (bands, rows, cols), got {image.shape}")
    if pixel_gsd <= 0:
        raise ValueError(f"pixel_gsd must be positive, got {pixel_gsd}")
    bands, height, width = image.shape
    rows, cols = spec.shape
    n = len(corners_px)
    if n == 0:
        return np.zeros((0, bands, rows, cols), dtype=np.uint8)
    centre, axis, _, _ = box_axes(corners_px)
    perp = np.column_stack([-axis[:, 1], axis[:, 0]])
    step = spec.gsd / pixel_gsd
    u = (np.arange(cols) + 0.5 - cols / 2) * step  # along, in image pixels
    v = (np.arange(rows) + 0.5 - rows / 2) * step  # across
    # Sample positions (n, rows, cols) in (col, row) pixel coordinates, then to array indices.
    uu, vv = u[None, None, :], v[None, :, None]
    x = centre[:, 0, None, None] + uu * axis[:, 0, None, None] + vv * perp[:, 0, None, None]
    y = centre[:, 1, None, None] + uu * axis[:, 1, None, None] + vv * perp[:, 1, None, None]
    x = x - 0.5
    y = y - 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    out = np.zeros((n, bands, rows, cols), dtype=np.float32)
    weight_in = np.zeros((n, rows, cols), dtype=np.float32)  # share of each sample inside
    flat = image.reshape(bands, -1)  # gathered below, only the samples needed become floats
    corners = ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy))
    for dy, dx, w in corners:
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        idx = np.clip(yy, 0, height - 1) * width + np.clip(xx, 0, width - 1)
        wt = np.where(ok, w, 0.0).astype(np.float32)
        out += (flat[:, idx].astype(np.float32) * wt[None]).transpose(1, 0, 2, 3)
        weight_in += wt
    # Outside the image: the pad grey, blended in where a sample straddles the edge.
    out += PAD_VALUE * (1.0 - weight_in)[:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
