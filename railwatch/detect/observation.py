"""One scene observed: its detections per zone and how much of each zone it saw.

``observe_scene`` is the per-scene pipeline: a chip plan over the counting areas (made once
for the whole region, :func:`~railwatch.detect.chipplan.plan_region_windows`) → windows read as tiles
→ detector → detections with zones, plus the coverage of each zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from shapely.geometry.base import BaseGeometry

from railwatch.detect.chipplan import CAR_OVERLAP_M, ChipLayout, plan_region_windows
from railwatch.detect.detections import Detections
from railwatch.imagery.clouds import cloud_mask
from railwatch.imagery.coverage import coverage, valid_area_pixels
from railwatch.imagery.grid import SiteGrid
from railwatch.imagery.scene import Scene, footprint_lonlat, open_scene, read_tiles
from railwatch.imagery.tile import Tile
from railwatch.site import Site, load_site, site_for_footprint

__all__ = ["DetectorLike", "LaysChips", "Observation", "observe_file", "observe_scene"]

#: Read windows for a detector that does not say how it lays chips: square, this many pixels,
#: overlapping by CAR_OVERLAP_M.
FALLBACK_CHIP_PX = 1024


class DetectorLike(Protocol):
    """What the pipeline needs of a detector."""

    @property
    def gsd(self) -> float: ...

    @property
    def model_sha256(self) -> str: ...

    def detect(self, tiles: Iterable[Tile], region: BaseGeometry) -> Detections:
        """Detections (site CRS) of cars whose centre lies in ``region``, merged across chips."""
        ...


@runtime_checkable
class LaysChips(Protocol):
    """A detector that says how its chips are laid, so that the windows read hold whole chips."""

    @property
    def chip_layout(self) -> ChipLayout: ...


def _layout(detector: DetectorLike) -> ChipLayout:
    if isinstance(detector, LaysChips):
        return detector.chip_layout
    return ChipLayout(FALLBACK_CHIP_PX, math.ceil(CAR_OVERLAP_M / detector.gsd))


@dataclass(frozen=True, slots=True)
class Observation:
    """What one scene showed: detections (site CRS, zones assigned) and each zone's coverage."""

    scene: Scene
    detections: Detections
    coverage: dict[str, float]
    model_sha256: str

    def __post_init__(self) -> None:
        if any(not 0.0 <= c <= 1.0 for c in self.coverage.values()):
            raise ValueError(f"coverage must be fractions, got {self.coverage}")


def observe_scene(
    scene: Scene,
    site: Site,
    detector: DetectorLike,
    mask_clouds: bool = True,
) -> Observation:
    """Detect cars in the counting areas of one scene and measure each zone's coverage.

    Pixels under cloud (see :mod:`railwatch.imagery.clouds`) are not valid: they lower the coverage and
    no detection is reported on them.
    """
    grid = SiteGrid.covering(site.aoi_local, site.crs, detector.gsd)
    region = site.counting_region().intersection(scene.footprint)
    zones = site.zone_areas()
    windows = plan_region_windows(grid, region, _layout(detector))
    valid_counts: list[np.ndarray] = []

    def tiles() -> Iterator[Tile]:
        for tile in read_tiles(scene, grid, windows):
            if mask_clouds:
                tile = replace(tile, valid=tile.valid & ~cloud_mask(tile.array, tile.gsd))
            valid_counts.append(valid_area_pixels(tile, zones))
            yield tile

    if not windows:  # the scene overlaps the AOI but no counting area: nothing observed
        return Observation(scene, Detections.empty(site.crs), {z.name: 0.0 for z in zones},
                           detector.model_sha256)
    found = detector.detect(tiles(), region)
    found = found.with_zones([z.name for z in zones], [z.geometry for z in zones])
    found = Detections(
        found.corners, found.class_id, found.confidence, found.zone,
        np.full(len(found), scene.name, dtype=object), found.crs,
    )
    return Observation(
        scene=scene,
        detections=found,
        coverage=coverage(valid_counts, zones, grid.gsd),
        model_sha256=detector.model_sha256,
    )


def observe_file(
    image: str | Path, detector: DetectorLike, site: str | Site | None = None
) -> tuple[Site, Scene, Observation]:
    """Open and observe one image file, acquisition time not required (``detect``, ``evaluate``).

    ``site``: a bundled site name, a site file, a :class:`Site`, or ``None`` for a site that is
    the image's whole footprint. Raises :class:`~railwatch.errors.SceneError` for a refused image.
    """
    image = Path(image)
    if site is None:
        site = site_for_footprint(image.stem, footprint_lonlat(image))
    elif not isinstance(site, Site):
        site = load_site(site)
    scene = open_scene(image, site.crs, site.aoi_local, require_time=False)
    return site, scene, observe_scene(scene, site, detector)
