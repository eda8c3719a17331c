"""How much of each counting area a scene observed: valid, cloud-free pixels over all pixels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from railwatch.imagery.tile import Tile, geometry_mask
from railwatch.site import CountingArea

__all__ = ["coverage", "valid_area_pixels"]


def valid_area_pixels(tile: Tile, areas: Sequence[CountingArea]) -> np.ndarray:
    """``(n_areas,)`` int: valid pixels of each area in the tile's core.

    Cores partition the grid, so summing over a scene's tiles counts every pixel once.
    """
    core = tile.core
    core_valid = tile.valid[core.slices]
    transform = core.transform(tile.transform)
    out = np.zeros(len(areas), dtype=np.int64)
    for i, area in enumerate(areas):
        out[i] = int((geometry_mask(area.geometry, core.shape, transform) & core_valid).sum())
    return out


def coverage(
    counts: Iterable[np.ndarray], areas: Sequence[CountingArea], gsd: float
) -> dict[str, float]:
    """Fraction of each area observed, from the per-tile ``valid_area_pixels`` of one scene.

    The denominator is the whole area (its area over the pixel area), so pixels that were never
    read, because the scene does not reach them, count as unobserved: unknown, not "no cars".
    """
    valid = np.zeros(len(areas), dtype=np.int64)
    for c in counts:
        valid += c
    return {
        a.name: float(min(1.0, valid[i] * gsd * gsd / a.geometry.area)) for i, a in enumerate(areas)
    }
