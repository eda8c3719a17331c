"""Site scenes: the whole site at one acquisition time, as a georeferenced image with truth.

:func:`cars_at` places every train of a scenario at a moment (parked on its track, or
moving along the mainline, on the bridge deck where it crosses). :func:`render_scene`
paints the site block by block (only blocks touching the AOI), with the same ground,
rolling-stock and sensor code as the training chips, and returns the image, its valid mask
and the cars as they appear. The scene's geolocation error moves the image content by
``shift_m`` while the georeferencing stays nominal, as real ortho error behaves.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely
from rasterio.features import rasterize
from shapely.geometry import Point, Polygon

from railwatch.imagery.grid import SiteGrid
from railwatch.simulate.canvas import Canvas, RasterWindow, rgb
from railwatch.simulate.ground import palette_for
from railwatch.simulate.imaging import (
    CloudField,
    Sensor,
    View,
    apply_clouds,
    cloud_field,
    expose,
    illuminate,
)
from railwatch.simulate.scenario import Direction, Scenario, ScenarioError, SceneSpec, TrainSpec, train_states
from railwatch.simulate.stock import Car, PlacedCar, random_car, roof_offset
from railwatch.simulate.sun import Sun, solar_position
from railwatch.simulate.texture import fbm
from railwatch.simulate.trains import place_string, string_length
from railwatch.simulate.world import DECK_HEIGHT_M, SiteWorld, paint_world

__all__ = [
    "RenderedScene",
    "TrainBook",
    "build_train_book",
    "cars_at",
    "check_fits",
    "check_no_overlap",
    "render_scene",
    "scene_sun",
    "under_cloud",
    "zone_coverage",
    "zone_of",
]

#: Side of the blocks a scene is rendered in, pixels; and the margin rendered around each,
#: metres (long enough for the shadows of buildings, trees and the bridge truss).
BLOCK_PX = 512
MARGIN_M = 20.0
#: Cloud field parameters (world-anchored, so truth and image agree).
CLOUD_CELL_M = 500.0
CLOUD_SOFTNESS = 0.25


@dataclass(frozen=True, slots=True)
class TrainBook:
    """The cars of every train (their looks fixed for the whole scenario) and their gaps."""

    cars: dict[str, tuple[Car, ...]]
    gaps: dict[str, tuple[float, ...]]


def build_train_book(scenario: Scenario) -> TrainBook:
    """Cars for each train of ``scenario``: one look per car, block-train paint per class."""
    cars: dict[str, tuple[Car, ...]] = {}
    gaps: dict[str, tuple[float, ...]] = {}
    for train in scenario.trains:
        rng = np.random.default_rng([scenario.seed, zlib.crc32(train.train_id.encode())])
        shared: dict[int, np.ndarray] = {}
        out: list[Car] = []
        for cls in train.classes:
            base = shared.get(cls.class_id) if rng.random() > 0.2 else None
            car = random_car(cls, rng, base_color=base)
            shared.setdefault(cls.class_id, np.asarray(car.look.color))
            out.append(car)
        cars[train.train_id] = tuple(out)
        gaps[train.train_id] = tuple(float(g) for g in rng.uniform(1.0, 2.0, len(out)))
    return TrainBook(cars, gaps)


def _parked(world: SiteWorld, book: TrainBook, train: TrainSpec, track: str, offset: float
            ) -> list[PlacedCar]:
    line = world.tracks[track]
    cars = book.cars[train.train_id]
    return place_string(line, cars, offset, book.gaps[train.train_id], ids=train.car_ids())


def check_fits(scenario: Scenario, world: SiteWorld, book: TrainBook) -> None:
    """Raise :class:`ScenarioError` if a train does not fit where an event parks it."""
    for ev in scenario.events:
        if ev.track is None:
            continue
        if ev.track not in world.tracks:
            raise ScenarioError(
                f"{scenario.source}: unknown track {ev.track!r}; the site has {', '.join(world.tracks)}"
            )
        train = scenario.train(ev.train_id)
        length = string_length(book.cars[train.train_id], book.gaps[train.train_id])
        track_len = world.tracks[ev.track].length
        if ev.offset_m + length > track_len:
            raise ScenarioError(
                f"{scenario.source}: train {train.train_id!r} ({len(train.classes)} cars, {length:.0f} m) "
                f"does not fit on {ev.track} ({track_len:.0f} m) at offset_m = {ev.offset_m:.0f}; "
                f"use offset_m <= {max(track_len - length, 0):.0f} or a shorter train"
            )


def check_no_overlap(scenario: Scenario, world: SiteWorld, book: TrainBook) -> None:
    """Raise :class:`ScenarioError` if cars of two trains overlap in any scene.

    Yard tracks converge toward their ends, so trains parked too near an end of
    neighbouring tracks would collide; the truth would then be physically impossible.
    """
    for spec in scenario.scenes:
        cars = cars_at(scenario, world, book, spec.at)
        polys = [c.polygon for c in cars]
        tree = shapely.STRtree(polys)
        left, right = tree.query(polys, predicate="intersects")
        for i, j in zip(left, right, strict=True):
            a, b = cars[int(i)], cars[int(j)]
            if i >= j or a.car_id.rsplit("-", 1)[0] == b.car_id.rsplit("-", 1)[0]:
                continue
            if polys[int(i)].intersection(polys[int(j)]).area > 0.3:
                raise ScenarioError(
                    f"{scenario.source}: at {spec.at:%Y-%m-%d %H:%M}Z car {a.car_id} overlaps car "
                    f"{b.car_id}: their trains stand too close (yard tracks converge near their "
                    "ends); move one of them with offset_m or to another track"
                )


def _front(world: SiteWorld, book: TrainBook, train: TrainSpec, where: tuple[str, float] | None,
           direction: Direction, entering: bool) -> float:
    main = world.mainline
    if where is None:  # beyond the site: enters at one end, or leaves past the other
        ahead = direction is Direction.TO_KHASAN
        return (0.0 if ahead else main.length) if entering else (
            main.length + 2000.0 if ahead else -2000.0)
    track, offset = where
    length = string_length(book.cars[train.train_id], book.gaps[train.train_id])
    line = world.tracks[track]
    ends = [float(main.project(line.interpolate(offset))),
            float(main.project(line.interpolate(offset + length)))]
    return max(ends) if direction is Direction.TO_KHASAN else min(ends)


def cars_at(scenario: Scenario, world: SiteWorld, book: TrainBook, when: datetime) -> list[PlacedCar]:
    """Every car at the site at ``when``, where it truly is (no geolocation error)."""
    placed: list[PlacedCar] = []
    for state in train_states(scenario, when):
        train = state.train
        if state.track is not None:
            placed += _parked(world, book, train, state.track, state.offset_m)
            continue
        direction = state.direction or Direction.TO_KHASAN
        a = _front(world, book, train, state.route_from, direction, entering=True)
        b = _front(world, book, train, state.route_to, direction, entering=False)
        front = a + (b - a) * state.progress
        cars = list(book.cars[train.train_id])
        gaps = list(book.gaps[train.train_id])
        ids = list(train.car_ids())
        length = string_length(cars, gaps)
        if direction is Direction.TO_KHASAN:
            placed += place_string(world.mainline, cars[::-1], front - length, [*gaps[-2::-1], 1.5],
                                   ids=ids[::-1])
        else:
            placed += place_string(world.mainline, cars, front, gaps, ids=ids)
    out = []
    for p in placed:
        base = DECK_HEIGHT_M if world.on_bridge(p.centre) else 0.0
        out.append(PlacedCar(p.car, p.centre, p.heading, base, p.car_id))
    return out


def scene_sun(world: SiteWorld, when: datetime) -> Sun:
    """The sun over the site's centre at ``when``."""
    c = world.site.aoi.centroid
    return solar_position(c.y, c.x, when)


def _cloud_threshold(world: SiteWorld, spec: SceneSpec) -> float:
    """The noise level above which the AOI is cloudy over ``cloud_fraction`` of its area."""
    if spec.cloud_fraction <= 0:
        return 99.0
    minx, miny, maxx, maxy = world.site.aoi_local.bounds
    g = 10.0
    w = RasterWindow(minx, maxy, g, math.ceil((maxy - miny) / g), math.ceil((maxx - minx) / g))
    n = fbm(w, CLOUD_CELL_M, spec.seed, octaves=5, persistence=0.55)
    inside = rasterize([(world.site.aoi_local, 1)], out_shape=n.shape, transform=w.transform) > 0
    level = float(np.quantile(n[inside], 1.0 - spec.cloud_fraction))
    return level - CLOUD_SOFTNESS / 2


def _clouds(window: RasterWindow, spec: SceneSpec, sun: Sun, threshold: float) -> CloudField:
    return cloud_field(window, spec.seed, threshold, sun, cell_m=CLOUD_CELL_M,
                       altitude_m=1200.0, softness=CLOUD_SOFTNESS)


@dataclass(frozen=True, slots=True)
class RenderedScene:
    """A rendered scene: RGB (rows, cols, 3) uint8, valid mask, grid, and what is in it.

    ``cars`` are where they truly are; ``apparent`` the same cars where their tops appear in
    the image (moved by the scene's geolocation shift and the view's relief displacement).
    ``cloud`` is cloud opacity on the grid (uint8, 0–255).
    """

    spec: SceneSpec
    sun: Sun
    grid: SiteGrid
    image: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray
    cars: tuple[PlacedCar, ...]
    apparent: tuple[PlacedCar, ...]


def _sensor(spec: SceneSpec) -> Sensor:
    rng = np.random.default_rng([spec.seed, 3])
    return Sensor(
        blur_px=float(rng.uniform(0.5, 0.8)),
        noise=spec.noise,
        jpeg_quality=None,  # the GeoTIFF's own JPEG compression comes later
        gains=rgb(rng.normal(1.0, 0.03, 3)),
        gamma=float(rng.uniform(0.9, 1.1)),
        haze=spec.haze,
        sharpen=float(rng.uniform(0.2, 0.5)),
        exposure=float(rng.uniform(0.95, 1.1)),
    )


def render_scene(
    world: SiteWorld,
    spec: SceneSpec,
    cars: Sequence[PlacedCar],
    *,
    block: int = BLOCK_PX,
) -> RenderedScene:
    """Render the site's AOI on its grid at ``spec.gsd``; pixels outside the AOI are invalid."""
    site = world.site
    grid = SiteGrid.covering(site.aoi_local, site.crs, spec.gsd)
    sun = scene_sun(world, spec.at)
    if sun.elevation_deg <= 3.0:
        raise ScenarioError(
            f"scene at {spec.at:%Y-%m-%d %H:%M}Z: the sun is {sun.elevation_deg:.1f}° high at the "
            "site; optical satellites image in daylight, pick a time between about 00:00 and 07:00 UTC"
        )
    dx, dy = spec.shift_m
    palette = palette_for(spec.season, np.random.default_rng([world.seed, 5]))
    sensor = _sensor(spec)
    threshold = _cloud_threshold(world, spec)
    image = np.zeros((grid.rows, grid.cols, 3), dtype=np.uint8)
    cloud = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    valid = _polygon_mask(site.aoi_local, grid)
    lean = View(spec.off_nadir_deg, spec.view_azimuth_deg).lean
    apparent = []
    for c in cars:  # where each car's top appears: geolocation error plus relief displacement
        ox, oy = roof_offset(c.car, lean)
        seen = (c.centre[0] + dx + ox, c.centre[1] + dy + oy)
        apparent.append(PlacedCar(c.car, seen, c.heading, c.base, c.car_id))
    g = spec.gsd
    m = math.ceil(MARGIN_M / g)
    x0, y1 = grid.transform.c, grid.transform.f
    for br in range(0, grid.rows, block):
        for bc in range(0, grid.cols, block):
            sub = valid[br : br + block, bc : bc + block]
            rows = np.flatnonzero(sub.any(axis=1))
            if rows.size == 0:
                continue
            cols = np.flatnonzero(sub.any(axis=0))
            # render only the AOI's bounding box within the block
            r0, r1 = br + int(rows[0]), br + int(rows[-1]) + 1
            c0, c1 = bc + int(cols[0]), bc + int(cols[-1]) + 1
            # the content window: nominal pixels show the world moved by (dx, dy)
            window = RasterWindow(x0 + (c0 - m) * g - dx, y1 - (r0 - m) * g - dy, g,
                                  (r1 - r0) + 2 * m, (c1 - c0) + 2 * m)
            canvas = Canvas(window)
            block_seed = spec.seed * 7919 + r0 * 31 + c0
            paint_world(canvas, world, palette, sun, cars, block_seed, lean=lean)
            # sky light: a shadow is about half as bright as the sunlit ground (DOMAIN.md)
            radiance = illuminate(canvas, sun, ambient=0.4 + 0.4 * spec.haze)
            if threshold < 50:
                clouds = _clouds(window, spec, sun, threshold)
                radiance = apply_clouds(radiance, clouds, window, spec.seed)
                cloud[r0:r1, c0:c1] = (clouds.opacity[m:-m, m:-m] * 255).astype(np.uint8)
            pixels = expose(radiance, sensor, np.random.default_rng([spec.seed, r0, c0]))
            image[r0:r1, c0:c1] = pixels[m:-m, m:-m]
    image[~valid] = 0
    return RenderedScene(spec, sun, grid, image, valid, cloud, tuple(cars), tuple(apparent))


def _polygon_mask(poly: Polygon, grid: SiteGrid) -> np.ndarray:
    """Pixels of ``grid`` whose centres lie in ``poly`` (fast OpenCV fill)."""
    import cv2

    mask = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    inv = ~grid.transform
    polys = [poly] if isinstance(poly, Polygon) else list(getattr(poly, "geoms", []))
    rings = []
    for p in polys:
        for ring in (p.exterior, *p.interiors):
            xy = np.asarray(ring.coords)
            cols, rows = inv @ (xy[:, 0], xy[:, 1])
            pts = np.column_stack([np.asarray(cols) - 0.5, np.asarray(rows) - 0.5])
            rings.append(np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillPoly(mask, rings, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def zone_of(world: SiteWorld, xy: tuple[float, float]) -> str | None:
    """The zone containing a point (local CRS), or None."""
    p = Point(xy)
    for name, zone in zip(world.site.zone_names, world.site.zones_local, strict=True):
        if zone.contains(p):
            return name
    return None


def zone_coverage(scene: RenderedScene, zone: Polygon) -> float:
    """Fraction of a zone's pixels that are valid and cloud-free (opacity < 0.5)."""
    mask = _polygon_mask(zone, scene.grid)
    total = int(mask.sum())
    if total == 0:
        return 0.0
    good = mask & scene.valid & (scene.cloud < 128)
    return float(good.sum()) / total


def under_cloud(scene: RenderedScene, xy: tuple[float, float]) -> bool:
    """Whether the image pixel at local point ``xy`` is cloud (opacity >= 0.5)."""
    col, row = ~scene.grid.transform @ xy
    r, c = math.floor(row), math.floor(col)
    if not (0 <= r < scene.grid.rows and 0 <= c < scene.grid.cols):
        return False
    return bool(scene.cloud[r, c] >= 128)

