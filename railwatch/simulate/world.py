"""The static world around a site's tracks.

River and bridge, yards, fields, roads, buildings and trees.

:func:`build_world` derives it once from the site and a seed, so every scene of a scenario
shows the same ground; :func:`paint_world` paints the part of it that falls in a canvas
(a block of a scene), with rolling stock on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import shapely
from shapely.affinity import rotate, translate
from shapely.geometry import LineString, MultiLineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from railwatch.simulate.canvas import Canvas
from railwatch.simulate.carpaint import paint_car
from railwatch.simulate.ground import (
    Building,
    Palette,
    paint_box,
    paint_landcover,
    paint_surface,
    paint_trees,
)
from railwatch.simulate.stock import PlacedCar
from railwatch.simulate.sun import Sun
from railwatch.simulate.track import paint_beds, paint_rails, site_track_look
from railwatch.site import Site

__all__ = ["DECK_HEIGHT_M", "SiteWorld", "build_world", "paint_world"]

#: Height of the bridge deck above the river, metres.
DECK_HEIGHT_M = 9.0
#: Height of the bridge's truss top chords above the river, metres.
TRUSS_HEIGHT_M = 17.0
#: Bearing of the Tumen river's course across the bridge (NNW → SSE), degrees from north.
RIVER_BEARING_DEG = 160.0


@dataclass(frozen=True, slots=True)
class SiteWorld:
    """Everything static at a site, in the site's local CRS (metres)."""

    site: Site
    tracks: dict[str, LineString]
    mainline: LineString
    deck: Polygon
    truss: MultiLineString
    piers: tuple[Polygon, ...]
    river: Polygon
    floodplain: Polygon
    gravel: Polygon
    fields: tuple[tuple[Polygon, int, float], ...]
    roads: tuple[tuple[LineString, float, int], ...]
    buildings: tuple[Building, ...]
    tree_xy: np.ndarray
    tree_r: np.ndarray
    tree_h: np.ndarray
    seed: int

    def on_bridge(self, xy: tuple[float, float]) -> bool:
        """Whether a point lies on the bridge deck."""
        return bool(self.deck.contains(Point(xy)))


def _bridge(site: Site, mainline: LineString) -> LineString:
    names = site.zone_names
    if "bridge" not in names:
        return LineString()
    zone = site.zones_local[names.index("bridge")]
    axis = mainline.intersection(zone)
    if isinstance(axis, MultiLineString):
        axis = max(axis.geoms, key=lambda g: g.length)
    return axis if isinstance(axis, LineString) else LineString()


def _river(axis: LineString, rng: np.random.Generator) -> tuple[Polygon, Polygon]:
    if axis.is_empty:
        return Polygon(), Polygon()
    mid = axis.interpolate(0.5, normalized=True)
    b = math.radians(RIVER_BEARING_DEG)
    d = np.array([math.sin(b), math.cos(b)])
    n = np.array([d[1], -d[0]])
    t = np.linspace(-4000, 4000, 161)
    wiggle = 60 * np.sin(t / 700 + rng.uniform(0, 6)) * np.clip(np.abs(t) / 400, 0, 1)
    pts = np.array([mid.x, mid.y]) + t[:, None] * d + wiggle[:, None] * n
    centre = LineString(pts)
    water = centre.buffer(95.0 + rng.uniform(-10, 10), quad_segs=8)
    plain = centre.buffer(min(axis.length / 2 - 30, 260.0), quad_segs=8)
    return water, plain


def build_world(site: Site, seed: int) -> SiteWorld:
    """The static world of ``site``: deterministic for a given ``seed``."""
    rng = np.random.default_rng([seed, 2024])
    names = [t.name for t in site.tracks]
    tracks = dict(zip(names, site.tracks_local, strict=True))
    mainline = tracks.get("mainline", max(site.tracks_local, key=lambda t: t.length))
    axis = _bridge(site, mainline)
    deck = axis.buffer(3.2, cap_style="flat") if not axis.is_empty else Polygon()
    truss_lines: list[LineString] = []
    piers: list[Polygon] = []
    if not axis.is_empty:
        for side in (-2.9, 2.9):
            chord = axis.offset_curve(side)
            if isinstance(chord, LineString):
                truss_lines.append(chord)
        left, right = (axis.offset_curve(-2.9), axis.offset_curve(2.9))
        panel = 9.0
        for s in np.arange(0.0, axis.length - panel / 2, panel):  # diagonal bracing
            a, b = left.interpolate(s), right.interpolate(min(s + panel, right.length))
            truss_lines.append(LineString([(a.x, a.y), (b.x, b.y)]))
        span = axis.length / 9
        for k in range(1, 9):
            p = axis.interpolate(k * span)
            q = axis.interpolate(k * span + 1.0)
            h = math.atan2(q.y - p.y, q.x - p.x)
            pier = rotate(box(p.x - 2.0, p.y - 5.5, p.x + 2.0, p.y + 5.5), h, origin=(p.x, p.y),
                          use_radians=True)
            piers.append(pier)
    river, plain = _river(axis, rng)
    yard_tracks = [t for n, t in tracks.items() if n != "mainline"]
    zones = dict(zip(site.zone_names, site.zones_local, strict=True))
    gravel_parts = [shapely.union_all([t.buffer(6.0, cap_style="flat") for t in yard_tracks])]
    for name in ("tumangang_yard", "khasan_yard"):
        if name in zones:
            gravel_parts.append(zones[name].buffer(-3.0))
    gravel = shapely.union_all(gravel_parts).intersection(site.aoi_local)
    corridor = shapely.union_all([t.buffer(9.0) for t in tracks.values()]).union(gravel.buffer(4.0))
    aoi = site.aoi_local.buffer(40.0)
    blocked = corridor.union(plain)
    # roads: a service road beside the line, a few crossing tracks
    roads: list[tuple[LineString, float, int]] = []
    side_road = mainline.offset_curve(rng.choice([-1, 1]) * 55.0)
    if isinstance(side_road, LineString) and not side_road.is_empty:
        side_road = side_road.difference(plain.buffer(30.0))
        for part in getattr(side_road, "geoms", [side_road]):
            if isinstance(part, LineString) and part.length > 50:
                roads.append((part, 6.0, 1))
    for _ in range(5):
        s = rng.uniform(0.05, 0.95) * mainline.length
        p = mainline.interpolate(s)
        q = mainline.interpolate(s + 5)
        h = math.atan2(q.y - p.y, q.x - p.x) + math.pi / 2 + rng.uniform(-0.4, 0.4)
        a = np.array([p.x, p.y]) + 400 * np.array([math.cos(h), math.sin(h)])
        b = np.array([p.x, p.y]) - 400 * np.array([math.cos(h), math.sin(h)])
        road = LineString([a, b])
        if road.intersects(plain) or road.intersects(gravel.buffer(20)):
            continue
        roads.append((road, float(rng.uniform(5.0, 8.0)), int(rng.choice([0, 1]))))
    for road, width, _ in roads:
        blocked = blocked.union(road.buffer(width / 2 + 3.0))
    # fields on the open land
    fields: list[tuple[Polygon, int, float]] = []
    minx, miny, maxx, maxy = aoi.bounds
    for _ in range(60):
        c = rng.uniform([minx, miny], [maxx, maxy])
        if not aoi.contains(Point(c)):
            continue
        ang = rng.uniform(0, math.pi)
        w, h = rng.uniform(60, 200), rng.uniform(40, 140)
        poly = rotate(box(c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), ang,
                      origin=tuple(c), use_radians=True)
        poly = poly.difference(blocked.buffer(5.0))
        if poly.area > 800:
            fields.append((poly if isinstance(poly, Polygon) else max(poly.geoms, key=lambda g: g.area),
                           int(rng.integers(0, 4)), float(ang)))
    # buildings: station buildings and sheds along the yards, houses scattered
    buildings: list[Building] = []

    def try_building(centre: np.ndarray, heading: float, length: float, width: float,
                     height: float, gable: float, ribs: float) -> bool:
        nonlocal blocked
        fp = rotate(box(centre[0] - length / 2, centre[1] - width / 2, centre[0] + length / 2,
                        centre[1] + width / 2), heading, origin=tuple(centre), use_radians=True)
        if fp.intersects(blocked) or not aoi.contains(fp):
            return False
        blocked = blocked.union(fp.buffer(3.0))
        roof = _roof(rng)
        buildings.append(Building((float(centre[0]), float(centre[1])), heading, length, width,
                                  roof, height, gable, ribs))
        return True

    for name in ("tumangang_yard", "khasan_yard"):
        if name not in zones:
            continue
        zone = zones[name]
        outline = zone.exterior
        for _ in range(40):
            p = outline.interpolate(rng.uniform(0, outline.length))
            q = outline.interpolate(outline.project(p) + 3.0)
            heading = math.atan2(q.y - p.y, q.x - p.x)
            normal = np.array([-math.sin(heading), math.cos(heading)])
            off = rng.uniform(14, 45) * rng.choice([-1, 1])
            c = np.array([p.x, p.y]) + off * normal
            if rng.random() < 0.5:
                try_building(c, heading, rng.uniform(20, 70), rng.uniform(10, 22),
                             rng.uniform(5, 10), 0.0 if rng.random() < 0.5 else 0.3, 1.0)
            else:
                try_building(c, heading, rng.uniform(8, 16), rng.uniform(6, 10),
                             rng.uniform(3, 6), 0.5, 0.0)
    for _ in range(120):
        c = rng.uniform([minx, miny], [maxx, maxy])
        try_building(c, rng.uniform(0, math.pi), rng.uniform(7, 14), rng.uniform(5, 9),
                     rng.uniform(3, 5), float(rng.choice([0.0, 0.5])), 0.0)
    # trees: groves, belts beside the line and shrubs on the floodplain
    pts: list[np.ndarray] = []
    for _ in range(70):
        c = rng.uniform([minx, miny], [maxx, maxy])
        pts.append(c + rng.normal(0, rng.uniform(5, 30), (int(rng.integers(5, 60)), 2)))
    for off in (-22.0, 24.0):
        belt = mainline.offset_curve(off)
        if isinstance(belt, LineString):
            s = rng.uniform(0, belt.length, 900)
            keep = rng.random(900) < 0.7
            pts.append(np.array([[belt.interpolate(v).x, belt.interpolate(v).y] for v in s[keep]]))
    if not plain.is_empty:
        pb = plain.difference(river).bounds
        cand = rng.uniform(pb[:2], pb[2:], (3000, 2))
        inside = shapely.contains_xy(plain.difference(river), cand[:, 0], cand[:, 1])
        pts.append(cand[inside][:500])
    xy = np.vstack(pts)
    ok = shapely.contains_xy(aoi, xy[:, 0], xy[:, 1])
    ok &= ~shapely.intersects(corridor.union(river).buffer(2.0), shapely.points(xy))
    ok &= ~shapely.intersects(
        shapely.union_all([r.buffer(w / 2 + 2) for r, w, _ in roads]) if roads else Polygon(),
        shapely.points(xy),
    )
    xy = xy[ok]
    tree_r = rng.uniform(1.5, 5.0, len(xy))
    tree_h = tree_r * rng.uniform(1.5, 3.0, len(xy))
    return SiteWorld(
        site=site, tracks=tracks, mainline=mainline, deck=deck,
        truss=MultiLineString(truss_lines) if truss_lines else MultiLineString(),
        piers=tuple(piers), river=river, floodplain=plain, gravel=gravel, fields=tuple(fields),
        roads=tuple(roads), buildings=tuple(buildings), tree_xy=xy, tree_r=tree_r, tree_h=tree_h,
        seed=seed,
    )


def _roof(rng: np.random.Generator) -> tuple[float, float, float]:
    table = [
        (0.55, 0.55, 0.53), (0.32, 0.32, 0.33), (0.68, 0.67, 0.64), (0.45, 0.30, 0.22),
        (0.30, 0.40, 0.52), (0.52, 0.24, 0.18), (0.30, 0.42, 0.33), (0.78, 0.78, 0.76),
    ]
    c = np.asarray(table[int(rng.integers(len(table)))]) * rng.normal(1.0, 0.06)
    return (float(c[0]), float(c[1]), float(c[2]))


def _near(geom: BaseGeometry, bounds: Polygon) -> bool:
    return not geom.is_empty and geom.intersects(bounds)


def paint_world(
    canvas: Canvas,
    world: SiteWorld,
    palette: Palette,
    sun: Sun,
    cars: Sequence[PlacedCar],
    seed: int,
    lean: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Paint the part of ``world`` inside ``canvas`` and the given cars on it.

    ``lean`` is the view's relief displacement per metre of height (see ``View``).
    """
    rng = np.random.default_rng(seed)
    view = box(*canvas.window.bounds).buffer(5.0)
    ws = world.seed
    paint_landcover(canvas, palette, ws, patchiness=0.5)
    for k, (poly, idx, ang) in enumerate(world.fields):
        if _near(poly, view):
            paint_surface(canvas, poly.intersection(view), palette.field[idx], ws + 100 + k,
                          cell_m=15.0, amount=0.08, stripes=(2.0 + (k % 5) * 0.6, ang))
    if _near(world.floodplain, view):
        paint_surface(canvas, world.floodplain.intersection(view), (0.56, 0.53, 0.46), ws + 7,
                      cell_m=30.0, amount=0.3, grain=0.06, opacity=0.55)
    if _near(world.river, view):
        paint_surface(canvas, world.river.intersection(view), palette.water, ws + 8,
                      cell_m=25.0, amount=0.10, grain=0.03)
    road_colors = (palette.asphalt, palette.dirt_road, (0.62, 0.61, 0.58))
    for k, (road, width, kind) in enumerate(world.roads):
        if _near(road, view):
            paint_surface(canvas, road.intersection(view.buffer(10)).buffer(width / 2, cap_style="flat"),
                          road_colors[kind], ws + 30 + k, cell_m=5.0, amount=0.1, grain=0.05)
    if _near(world.gravel, view):
        paint_surface(canvas, world.gravel.intersection(view), palette.gravel, ws + 21,
                      cell_m=2.5, amount=0.07, grain=0.08)
    tracks = list(world.tracks.values())  # whole lines: sleepers are anchored to their starts
    look = site_track_look(palette, ws)
    paint_beds(canvas, tracks, look, ws + 41)
    on_deck = _near(world.deck, view)
    if on_deck:
        for pier in world.piers:
            canvas.paint(canvas.coverage(pier), (0.55, 0.54, 0.50))
        canvas.paint(canvas.coverage(world.deck), (0.30, 0.29, 0.28))
        _bridge_shadows(canvas, world, sun, cars, view)
    paint_rails(canvas, tracks, look)
    east, north = sun.toward
    el = math.radians(sun.elevation_deg)
    toward = (east * math.cos(el), north * math.cos(el), math.sin(el))
    for b in world.buildings:
        if abs(b.centre[0] - view.centroid.x) > 2000 or not _near(Point(b.centre).buffer(b.length), view):
            continue
        paint_box(canvas, b.centre, b.heading, b.length, b.width, b.color, b.height,
                  gable=b.gable, sun_toward=toward, ribs_m=b.ribs_m, rng=rng, lean=lean,
                  wall=(0.58, 0.56, 0.52))
    x0, y0, x1, y1 = view.bounds
    sel = (
        (world.tree_xy[:, 0] > x0 - 8) & (world.tree_xy[:, 0] < x1 + 8)
        & (world.tree_xy[:, 1] > y0 - 8) & (world.tree_xy[:, 1] < y1 + 8)
    )
    paint_trees(canvas, world.tree_xy[sel], world.tree_r[sel], world.tree_h[sel], palette,
                ws + 51, leafless=palette.snow > 0)
    for car in cars:
        if x0 - 25 < car.centre[0] < x1 + 25 and y0 - 25 < car.centre[1] < y1 + 25:
            # on the deck, heights count from the deck: its own shadows are drawn apart
            paint_car(canvas, replace(car, base=0.0), sun, lean=lean)
    if _near(world.truss, view):
        cover = canvas.line_coverage(world.truss.intersection(view.buffer(10)), 0.4)
        canvas.albedo += (cover * 0.45)[..., None] * (np.float32(0.45) - canvas.albedo)


def _bridge_shadows(
    canvas: Canvas, world: SiteWorld, sun: Sun, cars: Sequence[PlacedCar], view: Polygon
) -> None:
    """Shadows of the raised deck, its truss and the cars on it, cast onto the river below.

    A height map cannot represent the open space under a deck, so these shadows are
    polygons moved away from the sun by each part's height.
    """
    east, north = sun.toward

    def away(h: float) -> tuple[float, float]:
        d = sun.shadow_length(h)
        return -east * d, -north * d

    region = view.buffer(60.0)
    parts = [translate(world.deck, *away(DECK_HEIGHT_M))]
    for car in cars:
        if car.base > 0 and region.contains(Point(car.centre)):
            parts.append(translate(car.polygon, *away(DECK_HEIGHT_M + car.car.height)))
    shade = canvas.coverage(shapely.union_all(parts).intersection(region))
    truss = translate(world.truss, *away(TRUSS_HEIGHT_M)).intersection(region)
    if not truss.is_empty:
        np.maximum(shade, canvas.line_coverage(truss, 0.4) * np.float32(0.8), out=shade)
    shade *= 1.0 - canvas.coverage(world.deck.intersection(region))
    np.maximum(canvas.shade, shade, out=canvas.shade)
