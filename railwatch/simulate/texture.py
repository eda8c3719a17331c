"""Procedural noise tied to world coordinates, so neighbouring windows join without seams.

Lattice values come from an integer hash of (lattice x, lattice y, seed), and are
interpolated onto a window's pixels with one ``cv2.warpAffine``: the same world point gets
the same value whichever window it is rendered in.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from railwatch.simulate.canvas import RasterWindow

__all__ = ["fbm", "hash01", "value_noise"]


def hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice points."""
    with np.errstate(over="ignore"):
        h = (
            ix.astype(np.uint32) * np.uint32(374761393)
            + iy.astype(np.uint32) * np.uint32(668265263)
            + np.uint32((seed * 2246822519) & 0xFFFFFFFF)
        )
        h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(2654435769)
        h = h ^ (h >> np.uint32(15))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(window: RasterWindow, cell_m: float, seed: int) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``cell_m`` metres across (float32)."""
    if cell_m <= 0:
        raise ValueError("cell_m must be positive")
    x0, y0, x1, y1 = window.bounds
    ix0 = math.floor(x0 / cell_m) - 2
    ix1 = math.ceil(x1 / cell_m) + 2
    iy_top = math.ceil(y1 / cell_m) + 2
    iy_bot = math.floor(y0 / cell_m) - 2
    ix = np.arange(ix0, ix1 + 1, dtype=np.int64)[None, :]
    iy = np.arange(iy_top, iy_bot - 1, -1, dtype=np.int64)[:, None]
    lattice = hash01(ix + 0 * iy, iy + 0 * ix, seed) * 2.0 - 1.0
    g = window.gsd
    s = g / cell_m
    m = np.array(
        [
            [s, 0.0, (window.x0 + 0.5 * g) / cell_m - ix0],
            [0.0, s, iy_top - (window.y1 - 0.5 * g) / cell_m],
        ],
        dtype=np.float64,
    )
    interp = cv2.INTER_CUBIC if cell_m > 2 * g else cv2.INTER_LINEAR
    out = cv2.warpAffine(
        lattice,
        m,
        (window.cols, window.rows),
        flags=interp | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return out


def fbm(
    window: RasterWindow,
    cell_m: float,
    seed: int,
    octaves: int = 4,
    persistence: float = 0.5,
) -> np.ndarray:
    """Fractal (multi-octave) value noise, normalised to roughly [-1, 1].

    Octaves finer than a pixel are skipped: they would only alias.
    """
    total = np.zeros((window.rows, window.cols), dtype=np.float32)
    norm = 0.0
    amp = 1.0
    cell = cell_m
    for k in range(octaves):
        if cell < window.gsd * 0.9 and k > 0:
            break
        total += np.float32(amp) * value_noise(window, max(cell, window.gsd), seed + 7919 * k)
        norm += amp
        amp *= persistence
        cell /= 2.0
    return total / np.float32(norm * 0.6)
