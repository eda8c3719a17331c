"""Pictures of counted scenes, read again from where the store last saw them: the quicklooks of
a zone, and the views of the report page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from PIL import Image
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.count.frames import CountedScene
from railwatch.detect.detections import Detections
from railwatch.errors import SceneError
from railwatch.imagery.scene import Scene, open_scene
from railwatch.imagery.source import SceneSource
from railwatch.report.inputs import ReportInputs, ReportSettings, iso_utc
from railwatch.report.page import Picture, ZoneView
from railwatch.report.quicklook import (
    CROP_SIDE_M,
    ZONE_MARGIN_M,
    Bounds,
    Quicklook,
    QuicklookSettings,
    busiest_squares,
    read_view,
    render,
    zone_quicklooks,
)
from railwatch.report.reported import ANY

__all__ = ["PAGE_SIDE", "PAGE_VIEWS", "TRACKS_VIEW", "open_counted", "page_views", "scene_quicklook",
           "scene_quicklooks"]


#: The report page holds at most this many scene × zone views (the latest, zones with cars first).
PAGE_VIEWS = 60
#: The view of a scene's cars outside every zone (on the tracks between them).
TRACKS_VIEW = "outside the zones"
#: The longest side of a view's picture on the page, pixels; its busiest parts come at native resolution.
PAGE_SIDE = 640


def page_views(inputs: ReportInputs, s: ReportSettings) -> list[ZoneView]:
    """Every scene × zone it saw, and the scene's cars outside any zone (on the tracks between)
    as one more view, so that the page shows every car of ``detections.geojson``; with their
    pictures when the imagery is read (``s.quicklooks``; ``series`` draws the boxes alone). At
    most :data:`PAGE_VIEWS`, the latest first."""
    areas = {a.name: a.geometry for a in inputs.site.zone_areas()}
    chosen: list[tuple[CountedScene, str, BaseGeometry, Detections]] = []
    for counted in sorted(inputs.scenes, key=lambda c: c.acquired, reverse=True):
        d = counted.detections
        zone_of = np.asarray(d.zone, dtype=object) if len(d) else np.zeros(0, dtype=object)
        for zone in inputs.zones:
            cars = d[zone_of == zone] if len(d) else d
            if zone in areas and (counted.coverage.get(zone, 0.0) > 0.0 or len(cars)):
                chosen.append((counted, zone, areas[zone], cars))
        elsewhere = d[np.array([z is None for z in zone_of], dtype=bool)] if len(d) else d
        if len(elsewhere):
            hull = shapely.MultiPoint(elsewhere.centres).convex_hull.buffer(40.0)
            chosen.append((counted, TRACKS_VIEW, hull, elsewhere))
    views = []
    for counted, zone, area, cars in sorted(chosen[:PAGE_VIEWS], key=lambda v: (v[1], v[0].acquired)):
        bounds = area.buffer(ZONE_MARGIN_M).bounds
        picture: Picture | None = None
        crops: tuple[Picture, ...] = ()
        if s.quicklooks:
            try:
                opened = open_counted(inputs, counted.scene, ANY)[0]
                picture, crops = _pictures(opened, inputs.site.crs, bounds, area, cars)
            except (SceneError, OSError, KeyError):
                pass  # the boxes alone
        if picture is not None or len(cars):  # nothing to draw otherwise
            views.append(ZoneView(counted.scene, counted.acquired, zone, bounds, cars, picture, crops))
    return views


def _pictures(scene: Scene, crs: CRS, bounds: Bounds, area: BaseGeometry, cars: Detections
              ) -> tuple[Picture, tuple[Picture, ...]]:
    """A zone's picture at most ``PAGE_SIDE`` pixels, and its two busiest parts at native resolution."""
    minx, miny, maxx, maxy = bounds
    gsd = max(scene.native_gsd, max(maxx - minx, maxy - miny) / PAGE_SIDE)

    def picture(b: Bounds, at: float) -> Picture:
        view = read_view(scene, crs, b, at)
        rgb = view.array.transpose(1, 2, 0).copy()
        rgb[~view.valid] = 128
        return Picture(np.ascontiguousarray(rgb), view.bounds)

    squares = busiest_squares(cars.centres if len(cars) else np.zeros((0, 2)), area, CROP_SIDE_M, 2)
    return picture(bounds, gsd), tuple(picture(sq, scene.native_gsd) for sq in squares)


def open_counted(
    inputs: ReportInputs, scene: str, zone: str
) -> tuple[Scene, CountedScene, dict[str, BaseGeometry], BaseGeometry]:
    """The counted scene opened from where the store last saw it, its counts, the zone outlines
    and the area of ``zone`` (``ANY``: all zones)."""
    rec = next((r for r in inputs.records if r.name == scene and r.status == "counted"), None)
    counted = next((c for c in inputs.scenes if c.scene == scene), None)
    if rec is None or counted is None:
        names = ", ".join(sorted(c.scene for c in inputs.scenes)) or "none"
        raise KeyError(f"{scene!r} is not a counted scene of this store (counted: {names})")
    areas = {a.name: a.geometry for a in inputs.site.zone_areas()}
    if zone != ANY and zone not in areas:
        raise KeyError(f"zone {zone!r} is not one of {', '.join(areas)} or {ANY!r}")
    source = SceneSource(rec.path, rec.name)  # a local path or a URL
    if not source.remote and not Path(rec.path).is_file():
        raise OSError(f"not found at {rec.path} (moved since it was counted)")
    opened = open_scene(source, inputs.site.crs, inputs.site.aoi_local, require_time=False)
    area = shapely.union_all(list(areas.values())) if zone == ANY else areas[zone]
    return opened, counted, areas, area


def scene_quicklooks(
    inputs: ReportInputs,
    scene: str,
    zone: str = ANY,
    max_side: int = 1600,
    crops: int = 3,
    with_crops: bool = True,
) -> list[Quicklook]:
    """A counted scene's whole-zone view (``ANY``: all zones) and crops of the zone's busiest
    parts at the scene's native resolution, with the detections drawn
    (:func:`~railwatch.report.quicklook.zone_quicklooks`). Reads the pixels from where the store
    last saw the scene file; raises ``OSError`` when it has moved, ``KeyError`` for a scene or
    zone the inputs do not hold."""
    opened, counted, areas, area = open_counted(inputs, scene, zone)
    detections = counted.detections
    if zone == ANY:  # every detection in a zone belongs to the union
        detections = detections.with_zones([ANY], [area])
    return zone_quicklooks(opened, inputs.site.crs, zone, area, detections, areas,
                           QuicklookSettings(label=f"{scene} ({iso_utc(counted.acquired)})",
                                             max_side=max_side, crops=crops, with_crops=with_crops))


def scene_quicklook(
    inputs: ReportInputs,
    scene: str,
    zone: str = ANY,
    max_side: int = 1600,
    window: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """A counted scene around one zone (``ANY``: all zones) with its detections drawn: the
    whole-zone view, or with ``window`` ``(minx, miny, maxx, maxy)`` in metres of the site CRS
    that box at the scene's resolution (coarser if it would exceed ``max_side`` pixels).
    Raises as :func:`scene_quicklooks`."""
    if window is None:
        return scene_quicklooks(inputs, scene, zone, max_side, with_crops=False)[0].image
    opened, counted, areas, _ = open_counted(inputs, scene, zone)
    minx, miny, maxx, maxy = window
    gsd = max(opened.native_gsd, max(maxx - minx, maxy - miny) / max_side)
    view = read_view(opened, inputs.site.crs, window, gsd)
    return render(view, counted.detections, areas,
                  title=f"{scene} ({iso_utc(counted.acquired)}) at {gsd:.2f} m/px")
