"""One scene observed: its detections per zone and how much of each zone it saw.

``observe_scene`` is the per-scene pipeline, in this order: a plan of the windows to read over
the counting areas (:func:`plan_scene`, made once for the whole region with
:func:`~railwatch.detect.chipplan.plan_region_windows`); then, tile by tile, each window read as
observed pixels (:func:`~railwatch.imagery.coverage.observed_tiles`), its valid pixels per zone
added to the coverage, and the tile handed to the detector's pass; then the detections with
zones. :func:`measure_coverage` reads the same plan the same way without a detector
(``railwatch inspect``), so both report the same coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from shapely.geometry.base import BaseGeometry

from railwatch.detect.chipplan import ChipLayout, chip_layout, plan_region_windows
from railwatch.detect.detections import Detections
from railwatch.imagery.coverage import coverage, observed_tiles, valid_area_pixels
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import Scene, footprint_lonlat, open_scene
from railwatch.imagery.tile import Tile
from railwatch.site import CountingArea, Site, load_site, site_for_footprint

__all__ = [
    "DetectionPassLike",
    "DetectorLike",
    "LaysChips",
    "Observation",
    "ScenePlan",
    "layout_of",
    "measure_coverage",
    "observe_file",
    "observe_scene",
    "plan_scene",
]

#: Read windows for a detector that does not say how it lays chips: square, this many pixels,
#: overlapping by CAR_OVERLAP_M.
FALLBACK_CHIP_PX = 1024


class DetectionPassLike(Protocol):
    """A detector's pass over one scene: tiles go in one at a time, the detections come out once."""

    def add(self, tile: Tile) -> None: ...

    def result(self) -> Detections:
        """Detections (site CRS) of cars centred in the pass's region, merged across chips."""
        ...


class DetectorLike(Protocol):
    """What the pipeline needs of a detector."""

    @property
    def gsd(self) -> float: ...

    @property
    def model_sha256(self) -> str: ...

    def start(self, region: BaseGeometry) -> DetectionPassLike:
        """A pass over one scene's tiles for cars whose centre lies in ``region``."""
        ...


@runtime_checkable
class LaysChips(Protocol):
    """A detector that says how its chips are laid, so that the windows read hold whole chips."""

    @property
    def chip_layout(self) -> ChipLayout: ...


def layout_of(detector: DetectorLike) -> ChipLayout:
    """How the detector lays its chips (a fallback layout for one that does not say)."""
    if isinstance(detector, LaysChips):
        return detector.chip_layout
    return chip_layout(FALLBACK_CHIP_PX, detector.gsd)


@dataclass(frozen=True, slots=True)
class ScenePlan:
    """What to read of one scene: the site ``grid``, the counting ``region`` within the scene's
    footprint, the site's ``zones`` and the ``windows`` to read (none: no counting area seen)."""

    grid: SiteGrid
    region: BaseGeometry
    zones: tuple[CountingArea, ...]
    windows: tuple[GridWindow, ...]


def plan_scene(scene: Scene, site: Site, gsd: float, layout: ChipLayout) -> ScenePlan:
    """The windows of the site grid at ``gsd`` to read so that ``layout``'s chips cover every
    car centred in the scene's part of the counting areas."""
    grid = SiteGrid.covering(site.aoi_local, site.crs, gsd)
    region = site.counting_region().intersection(scene.footprint)
    return ScenePlan(grid, region, site.zone_areas(), plan_region_windows(grid, region, layout))


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


def measure_coverage(scene: Scene, plan: ScenePlan, mask_clouds: bool = True) -> dict[str, float]:
    """Each zone's coverage by the scene, read as :func:`observe_scene` reads it."""
    pixels = np.zeros(len(plan.zones), dtype=np.int64)
    for tile in observed_tiles(scene, plan.grid, plan.windows, mask_clouds):
        pixels += valid_area_pixels(tile, plan.zones)
    return coverage(pixels, plan.zones, plan.grid.gsd)


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
    plan = plan_scene(scene, site, detector.gsd, layout_of(detector))
    zones = plan.zones
    if not plan.windows:  # the scene overlaps the AOI but no counting area: nothing observed
        return Observation(scene, Detections.empty(site.crs), {z.name: 0.0 for z in zones},
                           detector.model_sha256)
    pixels = np.zeros(len(zones), dtype=np.int64)
    detection = detector.start(plan.region)
    for tile in observed_tiles(scene, plan.grid, plan.windows, mask_clouds):
        pixels += valid_area_pixels(tile, zones)  # the tile's own pixels, each counted once
        detection.add(tile)
    found = detection.result().with_zones([z.name for z in zones], [z.geometry for z in zones])
    found = replace(found, scene=np.full(len(found), scene.name, dtype=object))
    return Observation(
        scene=scene,
        detections=found,
        coverage=coverage(pixels, zones, plan.grid.gsd),
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
