"""A conservative cloud mask from the pixels themselves.

Clouds over 0.3–0.8 m imagery are large (tens of metres and more), bright, nearly grey and
smooth at the scale of a few metres. Cars and roofs can be bright and grey too, but they are
small: candidates are found on 4 m cells and opened with a 24 m box, so nothing smaller than
a cloud survives. Thin haze is not masked (cars stay visible through it). Snow fields can look
like cloud; a scene's own cloud mask, where the provider gives one, is better — this is the
fallback that keeps "under cloud" from being counted as "no cars".
"""

from __future__ import annotations

import numpy as np

__all__ = ["CloudSettings", "cloud_mask"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """Thresholds on 0–255 RGB, and the scales in metres."""

    cell_m: float = 4.0
    min_brightness: float = 190.0
    max_saturation: float = 28.0
    max_texture: float = 10.0
    min_extent_m: float = 24.0
    margin_m: float = 8.0


def _box_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sum over the k×k box centred on each cell (zero outside)."""
    pad = k // 2
    p = np.pad(a.astype(np.int32), ((pad, k - 1 - pad), (pad, k - 1 - pad)))
    sat = np.zeros((p.shape[0] + 1, p.shape[1] + 1), dtype=np.int64)
    sat[1:, 1:] = p.cumsum(0).cumsum(1)
    return sat[k:, k:] - sat[:-k, k:] - sat[k:, :-k] + sat[:-k, :-k]


def cloud_mask(rgb: np.ndarray, gsd: float, settings: CloudSettings | None = None) -> np.ndarray:
    """``(rows, cols)`` bool: pixels under opaque cloud, for ``(3, rows, cols)`` uint8 RGB."""
    s = settings or CloudSettings()
    _, rows, cols = rgb.shape
    c = max(1, round(s.cell_m / gsd))
    pr, pc = -rows % c, -cols % c
    img = np.pad(rgb.astype(np.float32), ((0, 0), (0, pr), (0, pc)), mode="edge")
    h, w = img.shape[1] // c, img.shape[2] // c
    blocks = img.reshape(3, h, c, w, c)
    mean = blocks.mean(axis=(2, 4))  # (3, h, w)
    brightness = mean.mean(axis=0)
    saturation = mean.max(axis=0) - mean.min(axis=0)
    bright_grey = (brightness > s.min_brightness) & (saturation < s.max_saturation)
    if not bright_grey.any():  # most tiles: no cell is bright and grey, so no cloud
        return np.zeros((rows, cols), dtype=bool)
    grey = blocks.mean(axis=0)  # (h, c, w, c)
    texture = grey.std(axis=(1, 3))
    cand = bright_grey & (texture < s.max_texture)
    k = max(1, round(s.min_extent_m / s.cell_m)) | 1  # odd: boxes centred on their cell
    eroded = _box_sum(cand, k) == k * k
    opened = _box_sum(eroded, k) > 0
    m = max(1, round(s.margin_m / s.cell_m))
    grown = _box_sum(opened, 2 * m + 1) > 0
    full = np.repeat(np.repeat(grown, c, axis=0), c, axis=1)
    return full[:rows, :cols]
