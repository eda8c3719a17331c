"""Random freight-yard scenes for training chips: a layout, then its painting.

:func:`random_yard` draws what is where in a square of world metres around the origin: a
group of parallel tracks at a random angle (straight or curved, maybe with a switch or a
stub), strings of cars on them, and the surroundings (gravel yard, fields, roads with
trucks, container stacks, buildings, trees, catenary masts). :func:`paint_yard` paints a
layout into a canvas. Ground truth is the layout's own list of placed cars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.affinity import rotate
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import substring

from railwatch.simulate.canvas import Canvas, rgb
from railwatch.simulate.ground import (
    Palette,
    Season,
    paint_ballast,
    paint_box,
    paint_landcover,
    paint_masts,
    paint_rails,
    paint_surface,
    paint_trees,
    paint_truck,
)
from railwatch.simulate.stock import PlacedCar, paint_car
from railwatch.simulate.sun import Sun
from railwatch.simulate.trains import place_string, random_consist

__all__ = ["Building", "YardLayout", "paint_yard", "random_yard"]


@dataclass(frozen=True, slots=True)
class Building:
    """A building: oriented footprint, roof colour, height, pitch and roof rib spacing."""

    centre: tuple[float, float]
    heading: float
    length: float
    width: float
    color: tuple[float, float, float]
    height: float
    gable: float
    ribs_m: float


@dataclass(frozen=True, slots=True)
class YardLayout:
    """Everything in a random yard scene, in world metres around the origin."""

    half_extent: float
    tracks: tuple[LineString, ...]
    cars: tuple[PlacedCar, ...]
    gravel: Polygon | None
    fields: tuple[tuple[Polygon, int, float], ...]
    roads: tuple[tuple[LineString, float, int], ...]
    trucks: tuple[tuple[tuple[float, float], float], ...]
    buildings: tuple[Building, ...]
    tree_xy: np.ndarray
    tree_r: np.ndarray
    tree_h: np.ndarray
    mast_base: np.ndarray
    mast_arm: np.ndarray
    poles: np.ndarray
    snow_on_cars: float
    rail_shine: float


def _track_group(rng: np.random.Generator, half: float) -> tuple[list[LineString], LineString | None]:
    """Parallel tracks (and maybe one switch curve), and the group's outer edge line."""
    n = int(rng.choice(np.arange(1, 11), p=np.array([8, 11, 12, 11, 10, 10, 9, 10, 9, 10]) / 100))
    offsets = [0.0]
    for _ in range(n - 1):
        gap = rng.uniform(4.5, 5.0) if rng.random() > 0.1 else rng.uniform(6.5, 12.0)
        offsets.append(offsets[-1] + gap)
    shift = rng.uniform(-0.8 * half, 0.8 * half) - offsets[-1] / 2 * rng.uniform(0.5, 1.5)
    reach = half * 3.2
    curved = rng.random() < 0.3
    if curved:
        radius = rng.uniform(180.0, 900.0) * rng.choice([-1, 1])
        t = np.linspace(-reach, reach, 121)
        phi = t / radius
        base = np.column_stack([radius * np.sin(phi), radius * (1 - np.cos(phi))])
        line = LineString(base)
    else:
        line = LineString([(-reach, 0.0), (reach, 0.0)])
    tracks = []
    for o in offsets:
        tr = line.offset_curve(o + shift)
        if isinstance(tr, LineString) and tr.length > 0:
            tracks.append(tr)
    switch = None
    if not curved and len(offsets) >= 1 and rng.random() < 0.4:
        i = int(rng.integers(0, len(offsets)))
        side = 1.0 if (i == len(offsets) - 1 or rng.random() < 0.5) else -1.0
        lateral = 4.75 * side
        s0 = rng.uniform(-half, half * 0.5)
        length = rng.uniform(30.0, 45.0)
        s = np.linspace(0, 1, 25)
        smooth = s * s * (3 - 2 * s)
        xs = s0 + length * s
        ys = offsets[i] + shift + lateral * smooth
        tail = np.array([[s0 + length + rng.uniform(20, 200), offsets[i] + shift + lateral]])
        pts = np.vstack([np.column_stack([xs, ys]), tail])
        if rng.random() < 0.5:
            pts[:, 0] *= -1
        switch = LineString(pts)
    angle = rng.uniform(0, 180)
    tracks = [rotate(t, angle, origin=(0, 0)) for t in tracks]
    if switch is not None:
        switch = rotate(switch, angle, origin=(0, 0))
        tracks.append(switch)
    # stubs: a few tracks end within view (buffer stop)
    out = []
    for t in tracks:
        if rng.random() < 0.12 and t is not switch:
            cut = rng.uniform(0.3, 0.7) * t.length
            keep = substring(t, 0, cut) if rng.random() < 0.5 else substring(t, cut, t.length)
            out.append(keep)
        else:
            out.append(t)
    return out, None


def _fill_tracks(
    rng: np.random.Generator, tracks: list[LineString], half: float, empty: bool
) -> list[PlacedCar]:
    """Strings of cars on the tracks: full trains, partial strings, or nothing."""
    view = box(-half - 15, -half - 15, half + 15, half + 15)
    cars: list[PlacedCar] = []
    for tr in tracks:
        if empty:
            break
        inside = tr.intersection(view)
        if inside.is_empty or inside.length < 10:
            continue
        mode = rng.choice(["empty", "full", "partial"], p=[0.22, 0.48, 0.30])
        if mode == "empty":
            continue
        s_in = tr.project(Point(inside.coords[0])) if isinstance(inside, LineString) else 0.0
        s_out = s_in + inside.length
        if mode == "full":
            s0, s1 = s_in - rng.uniform(0, 25), s_out + 25
        else:
            a, b = sorted(rng.uniform(s_in - 20, s_out + 20, 2))
            s0, s1 = a, max(b, a + 16)
        n = max(1, int((s1 - s0) / 16.0) + 1)
        consist = random_consist(rng, n + 2)
        gaps = rng.uniform(1.0, 2.0, len(consist))
        if rng.random() < 0.15:  # one uncoupled gap in the string
            gaps[rng.integers(len(gaps))] = rng.uniform(3.0, 25.0)
        flips = rng.random(len(consist)) < 0.5
        placed = place_string(tr, consist, s0, gaps.tolist(), flip=flips.tolist())
        for p in placed:
            if tr.project(Point(p.centre)) > s1:
                continue
            # Where tracks converge (a switch, a stub) a car would overlap one already placed
            # on the neighbouring track: physically impossible, and a noisy label. Skip it.
            body = p.polygon.buffer(-0.05)
            if any(body.intersects(q.polygon) for q in cars):
                continue
            cars.append(p)
    return cars


_CLUTTER = (
    # (length range, width range, height range, colours): sleeper stacks, rail bundles, sheds,
    # skips, automobiles, pallets/crates
    ((2.6, 2.8), (1.5, 4.0), (0.6, 1.2), ((0.28, 0.23, 0.19), (0.55, 0.54, 0.51))),
    ((8.0, 25.0), (0.6, 1.5), (0.2, 0.5), ((0.35, 0.27, 0.22), (0.25, 0.24, 0.23))),
    ((3.0, 6.0), (2.0, 3.0), (2.0, 3.0), ((0.50, 0.50, 0.48), (0.30, 0.40, 0.55), (0.55, 0.30, 0.20))),
    ((4.0, 5.0), (1.7, 1.9), (1.4, 1.6), ((0.85, 0.85, 0.85), (0.10, 0.10, 0.11), (0.60, 0.60, 0.62),
                                         (0.50, 0.12, 0.10), (0.20, 0.25, 0.40))),
    ((1.0, 2.5), (1.0, 2.0), (0.5, 1.5), ((0.55, 0.45, 0.32), (0.40, 0.40, 0.38))),
)


def _clutter(
    rng: np.random.Generator, half: float, blocked: Polygon, corridor: Polygon
) -> list[Building]:
    """Small things lying about a yard: sleeper stacks, rail bundles, huts, skips, automobiles."""
    out: list[Building] = []
    n = int(rng.poisson(5.0)) if rng.random() < 0.7 else 0
    for _ in range(n):
        (l0, l1), (w0, w1), (h0, h1), colors = _CLUTTER[int(rng.integers(len(_CLUTTER)))]
        length, width = float(rng.uniform(l0, l1)), float(rng.uniform(w0, w1))
        c = rng.uniform(-half - 5, half + 5, 2)
        heading = float(rng.uniform(0, math.pi))
        fp = Point(c).buffer(max(length, width) / 2)
        if fp.intersects(corridor) or fp.intersects(blocked):
            continue
        base = colors[int(rng.integers(len(colors)))]
        color = rgb(float(x) * float(rng.normal(1.0, 0.07)) for x in base)
        out.append(Building((float(c[0]), float(c[1])), heading, length, width, color,
                            float(rng.uniform(h0, h1)), 0.0, 0.0))
    return out


def _surroundings_ok(poly: Polygon, blocked: Polygon) -> bool:
    return not poly.intersects(blocked)


def random_yard(rng: np.random.Generator, half_extent: float, season: Season) -> YardLayout:
    """A random yard scene within ``±half_extent`` metres of the origin (plus a margin)."""
    half = half_extent
    no_cars = rng.random() < 0.15
    if no_cars and rng.random() < 0.4:
        tracks: list[LineString] = []
    else:
        tracks, _ = _track_group(rng, half)
    cars = _fill_tracks(rng, tracks, half, empty=no_cars)
    view = box(-half - 20, -half - 20, half + 20, half + 20)
    corridor = shapely.union_all([t.buffer(3.0, cap_style="flat") for t in tracks]) if tracks else Polygon()
    blocked = corridor
    gravel = None
    if len(tracks) >= 2 and rng.random() < 0.55:
        gravel = corridor.buffer(rng.uniform(1.0, 8.0)).intersection(view)
    # fields: parcels of the view, split along random lines
    fields: list[tuple[Polygon, int, float]] = []
    if rng.random() < 0.45:
        ang = rng.uniform(0, math.pi)
        for _ in range(int(rng.integers(1, 4))):
            w = rng.uniform(25, 90)
            c = rng.uniform(-half, half, 2)
            poly = rotate(box(c[0] - w, c[1] - rng.uniform(20, 60), c[0] + w, c[1] + rng.uniform(20, 60)),
                          math.degrees(ang), origin=(c[0], c[1]))
            poly = poly.difference(corridor.buffer(6.0))
            if not poly.is_empty:
                fields.append((poly, int(rng.integers(0, 4)), float(ang)))
    # roads, parallel to the tracks or crossing them
    roads: list[tuple[LineString, float, int]] = []
    trucks: list[tuple[tuple[float, float], float]] = []
    if rng.random() < 0.55:
        for _ in range(int(rng.integers(1, 3))):
            width = float(rng.uniform(4.0, 9.0))
            if tracks and rng.random() < 0.6:
                edge = tracks[int(rng.choice([0, len(tracks) - 1]))]
                off = rng.choice([-1, 1]) * rng.uniform(8.0, 25.0)
                road = edge.offset_curve(off)
                if not isinstance(road, LineString) or road.is_empty:
                    continue
            else:
                a = rng.uniform(0, math.pi)
                c = rng.uniform(-half, half, 2)
                d = np.array([math.cos(a), math.sin(a)]) * half * 3
                road = LineString([c - d, c + d])
            kind = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))  # asphalt, dirt, concrete
            roads.append((road, width, kind))
            if rng.random() < 0.6:
                for _ in range(int(rng.integers(1, 5))):
                    s = rng.uniform(0, road.length)
                    p = road.interpolate(s)
                    q = road.interpolate(min(s + 1.0, road.length))
                    if abs(p.x) > half + 10 or abs(p.y) > half + 10:
                        continue
                    h = math.atan2(q.y - p.y, q.x - p.x) + (math.pi if rng.random() < 0.5 else 0)
                    side = (width / 4) * (1 if rng.random() < 0.5 else -1)
                    trucks.append(((p.x - side * math.sin(h), p.y + side * math.cos(h)), h))
            blocked = blocked.union(road.buffer(width / 2 + 1.0))
    # buildings (and container stacks), kept off the tracks and roads
    buildings: list[Building] = []
    base_angle = rng.uniform(0, math.pi)
    if tracks:
        t0 = tracks[0]
        a0, a1 = t0.interpolate(0.45, normalized=True), t0.interpolate(0.55, normalized=True)
        base_angle = math.atan2(a1.y - a0.y, a1.x - a0.x)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 5]))):
        for _try in range(8):
            stack = rng.random() < 0.25
            if stack:
                length, width, height = 12.19, 2.44, 2.6 * int(rng.integers(1, 4))
            else:
                length, width = rng.uniform(8, 80), rng.uniform(6, 25)
                height = float(rng.uniform(3.0, 14.0))
            heading = base_angle + (0 if rng.random() < 0.7 else rng.uniform(0, math.pi))
            cx, cy = (float(v) for v in rng.uniform(-half - 10, half + 10, 2))
            centre = (cx, cy)
            fp = rotate(box(cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2),
                        heading, origin=centre, use_radians=True)
            if not _surroundings_ok(fp, blocked):
                continue
            blocked = blocked.union(fp.buffer(2.0))
            if stack:
                n_rows = int(rng.integers(2, 8))
                color = None
                for k in range(n_rows):
                    off = (k - n_rows / 2) * 2.6
                    cc = (cx - off * math.sin(heading), cy + off * math.cos(heading))
                    pick = _CONTAINER_PAINT[int(rng.integers(len(_CONTAINER_PAINT)))]
                    color = rgb(float(x) * float(rng.normal(1.0, 0.08)) for x in pick)
                    buildings.append(Building(cc, heading, length, width, color, height, 0.0, 0.3))
            else:
                roof = _roof_color(rng)
                gable = float(rng.choice([0.0, 0.0, 0.25, 0.5]))
                ribs = float(rng.choice([0.0, 0.0, 0.8, 1.0]))
                buildings.append(Building(centre, heading, length, width, roof, height, gable, ribs))
            break
    # trees: clusters and belts, off the tracks
    tree_xy = np.zeros((0, 2))
    if rng.random() < 0.6:
        pts = []
        for _ in range(int(rng.integers(1, 5))):
            c = rng.uniform(-half - 10, half + 10, 2)
            spread = rng.uniform(4, 25)
            pts.append(c + rng.normal(0, spread, (int(rng.integers(3, 40)), 2)))
        if tracks and rng.random() < 0.5:
            belt = tracks[int(rng.choice([0, len(tracks) - 1]))].offset_curve(
                float(rng.choice([-1, 1]) * rng.uniform(7, 18)))
            if isinstance(belt, LineString) and not belt.is_empty:
                s = rng.uniform(0, belt.length, int(rng.integers(10, 60)))
                pts.append(np.array([[belt.interpolate(v).x, belt.interpolate(v).y] for v in s]))
        xy = np.vstack(pts)
        keep = np.ones(len(xy), dtype=bool)
        if not blocked.is_empty:
            keep = ~shapely.intersects(blocked, shapely.buffer(shapely.points(xy), 1.5))
        tree_xy = xy[keep]
    tree_r = rng.uniform(1.5, 5.0, len(tree_xy))
    tree_h = tree_r * rng.uniform(1.5, 3.0, len(tree_xy))
    # catenary masts beside the outer tracks every ~60 m
    mast_base = np.zeros((0, 2))
    mast_arm = np.zeros((0, 2))
    straight_tracks = [t for t in tracks if len(t.coords) >= 2]
    if straight_tracks and rng.random() < 0.35:
        bases, arms = [], []
        spacing = rng.uniform(50, 66)
        outer = [straight_tracks[0], straight_tracks[-1]] if len(straight_tracks) > 1 else straight_tracks
        for k, t in enumerate(outer):
            side = -1.0 if k == 0 else 1.0
            post = t.offset_curve(side * rng.uniform(2.9, 3.4))
            reach = t.offset_curve(-side * (len(straight_tracks) - 1) * 2.4 if len(outer) > 1 else 0.0)
            if not isinstance(post, LineString) or post.is_empty or not isinstance(reach, LineString):
                continue
            for s in np.arange(rng.uniform(0, spacing), post.length, spacing):
                p = post.interpolate(s)
                q = reach.interpolate(reach.project(p))
                bases.append((p.x, p.y))
                arms.append((q.x, q.y))
        if bases:
            mast_base, mast_arm = np.array(bases), np.array(arms)
    buildings += _clutter(rng, half, blocked, corridor)
    poles = np.zeros((0, 2))
    if rng.random() < 0.25:  # yard lighting towers: tall, thin, long shadows
        cand = rng.uniform(-half - 10, half + 10, (int(rng.integers(1, 4)), 2))
        ok = np.ones(len(cand), dtype=bool)
        if not corridor.is_empty:
            ok = ~shapely.intersects(corridor, shapely.points(cand))
        poles = cand[ok]
    snow = float(rng.uniform(0.3, 0.9)) if season is Season.SNOW and rng.random() < 0.5 else 0.0
    return YardLayout(
        half_extent=half,
        tracks=tuple(tracks),
        cars=tuple(cars),
        gravel=gravel if gravel is not None and not gravel.is_empty else None,
        fields=tuple(fields),
        roads=tuple(roads),
        trucks=tuple(trucks),
        buildings=tuple(buildings),
        tree_xy=tree_xy,
        tree_r=tree_r,
        tree_h=tree_h,
        mast_base=mast_base,
        mast_arm=mast_arm,
        poles=poles,
        snow_on_cars=snow,
        rail_shine=float(rng.choice([0.0, 0.3, 0.6], p=[0.5, 0.3, 0.2])),
    )


_CONTAINER_PAINT = (
    (0.20, 0.33, 0.50), (0.50, 0.20, 0.17), (0.25, 0.40, 0.28), (0.62, 0.62, 0.60),
    (0.80, 0.80, 0.78), (0.65, 0.45, 0.20), (0.40, 0.27, 0.22), (0.18, 0.22, 0.33),
)


def _wall_color(b: Building, rng: np.random.Generator) -> tuple[float, float, float]:
    if b.ribs_m == 0.3:  # a container stack: walls in the container's paint
        return (b.color[0] * 0.85, b.color[1] * 0.85, b.color[2] * 0.85)
    grey = float(rng.uniform(0.45, 0.75))
    return (grey, grey * 0.98, grey * 0.94)


def _roof_color(rng: np.random.Generator) -> tuple[float, float, float]:
    table = [
        (0.55, 0.55, 0.53), (0.30, 0.30, 0.31), (0.70, 0.69, 0.66), (0.45, 0.28, 0.20),
        (0.25, 0.35, 0.50), (0.55, 0.20, 0.16), (0.25, 0.40, 0.30), (0.82, 0.82, 0.80),
    ]
    c = np.asarray(table[int(rng.integers(len(table)))]) * rng.normal(1.0, 0.08, 3)
    return (float(c[0]), float(c[1]), float(c[2]))


def paint_yard(
    canvas: Canvas,
    layout: YardLayout,
    palette: Palette,
    sun: Sun,
    seed: int,
    lean: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Paint a yard layout: ground, fields, gravel, roads, tracks, buildings, trees, masts, cars."""
    rng = np.random.default_rng(seed)
    paint_landcover(canvas, palette, seed, patchiness=float(rng.uniform(0.2, 0.8)))
    for k, (poly, color_idx, ang) in enumerate(layout.fields):
        stripes = (float(rng.uniform(0.8, 4.0)), ang) if rng.random() < 0.7 else None
        paint_surface(canvas, poly, palette.field[color_idx], seed + 11 + k, cell_m=15.0,
                      amount=0.08, stripes=stripes)
    if layout.gravel is not None:
        paint_surface(canvas, layout.gravel, palette.gravel, seed + 21, cell_m=2.5, amount=0.07, grain=0.08)
    road_colors = (palette.asphalt, palette.dirt_road, (0.62, 0.61, 0.58))
    for k, (road, width, kind) in enumerate(layout.roads):
        paint_surface(canvas, road.buffer(width / 2, cap_style="flat"), road_colors[kind], seed + 31 + k,
                      cell_m=5.0, amount=0.1, grain=0.05)
        if kind == 0 and rng.random() < 0.5:  # centre marking
            canvas.paint(canvas.line_coverage(road, 0.15) * 0.6, (0.85, 0.85, 0.8))
    paint_ballast(canvas, layout.tracks, palette, seed + 41)
    paint_rails(canvas, layout.tracks, shine=layout.rail_shine)
    east, north = sun.toward
    el = math.radians(sun.elevation_deg)
    toward = (east * math.cos(el), north * math.cos(el), math.sin(el))
    for b in layout.buildings:
        paint_box(canvas, b.centre, b.heading, b.length, b.width, b.color, b.height,
                  gable=b.gable, sun_toward=toward, ribs_m=b.ribs_m, rng=rng, lean=lean,
                  wall=_wall_color(b, rng))
    for centre, heading in layout.trucks:
        paint_truck(canvas, centre, heading, rng, toward, lean)
    paint_trees(canvas, layout.tree_xy, layout.tree_r, layout.tree_h, palette, seed + 51,
                leafless=palette.snow > 0 or (rng.random() < 0.2 and palette.tree[0] > 0.3))
    paint_masts(canvas, layout.mast_base, layout.mast_arm)
    paint_masts(canvas, layout.poles, layout.poles, height=float(rng.uniform(15.0, 25.0)))
    for car in layout.cars:
        paint_car(canvas, car, sun, snow=layout.snow_on_cars, lean=lean)
