"""How much of each counting area a scene observed: valid, cloud-free pixels over all pixels.

One definition of an observed pixel, :func:`observed_tiles`: inside the scene, not nodata or
masked, and not under cloud (:mod:`railwatch.imagery.clouds`). ``railwatch count`` and
``railwatch inspect`` both read a scene through it, add up :func:`valid_area_pixels` tile by
tile, and turn the sums into fractions with :func:`coverage`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from railwatch.imagery.clouds import cloud_mask
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import Scene
from railwatch.imagery.tile import Tile, geometry_mask
from railwatch.imagery.warp import read_tiles
from railwatch.site import CountingArea

__all__ = ["coverage", "observed_tiles", "valid_area_pixels"]


def observed_tiles(
    scene: Scene, grid: SiteGrid, windows: Sequence[GridWindow], mask_clouds: bool = True
) -> Iterator[Tile]:
    """The scene's ``windows`` on ``grid`` as tiles whose ``valid`` mask is the observed pixels:
    read (:func:`~railwatch.imagery.scene.read_tiles`) and, with ``mask_clouds``, cloud-free."""
    for tile in read_tiles(scene, grid, windows):
        if mask_clouds:
            tile = replace(tile, valid=tile.valid & ~cloud_mask(tile.array, tile.gsd))
        yield tile


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


def coverage(valid_pixels: np.ndarray, areas: Sequence[CountingArea], gsd: float) -> dict[str, float]:
    """Fraction of each area observed, from ``valid_pixels`` ``(n_areas,)``: the
    :func:`valid_area_pixels` of one scene's tiles, summed.

    The denominator is the whole area (its area over the pixel area), so pixels that were never
    read, because the scene does not reach them, count as unobserved: unknown, not "no cars".
    """
    if np.shape(valid_pixels) != (len(areas),):
        raise ValueError(f"need one pixel count per area ({len(areas)}), got {np.shape(valid_pixels)}")
    return {
        a.name: float(min(1.0, valid_pixels[i] * gsd * gsd / a.geometry.area)) if a.geometry.area > 0
        else 0.0
        for i, a in enumerate(areas)
    }
