"""What lies around a yard: fields, roads, parked trucks, buildings, trees and clutter (SIMULATED)."""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.affinity import rotate
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from railwatch.simulate.ground import (
    Building,
)

__all__ = ["clutter", "jittered", "roof_color", "surroundings", "wall_color", "wall_of"]


def surroundings(
    rng: np.random.Generator,
    half: float,
    tracks: tuple[LineString, ...],
    corridor: BaseGeometry,
    blocked: BaseGeometry,
) -> tuple[list[tuple[Polygon, int, float]], list[tuple[LineString, float, int]],
           list[tuple[tuple[float, float], float]], list[Building], np.ndarray, BaseGeometry]:
    """Fields, roads with trucks, buildings and container stacks, and trees around the tracks."""
    fields: list[tuple[Polygon, int, float]] = []
    if rng.random() < 0.45:  # fields: parcels of the view, split along random lines
        ang = rng.uniform(0, math.pi)
        for _ in range(int(rng.integers(1, 4))):
            w = rng.uniform(25, 90)
            c = rng.uniform(-half, half, 2)
            poly = rotate(box(c[0] - w, c[1] - rng.uniform(20, 60), c[0] + w, c[1] + rng.uniform(20, 60)),
                          math.degrees(ang), origin=(c[0], c[1]))
            poly = poly.difference(blocked.buffer(6.0))
            if isinstance(poly, Polygon) and not poly.is_empty:
                fields.append((poly, int(rng.integers(0, 4)), float(ang)))
    roads: list[tuple[LineString, float, int]] = []
    trucks: list[tuple[tuple[float, float], float]] = []
    if rng.random() < 0.55:  # roads, parallel to the tracks or crossing them
        for _ in range(int(rng.integers(1, 3))):
            width = float(rng.uniform(4.0, 9.0))
            if tracks and rng.random() < 0.6:
                edge = tracks[int(rng.choice([0, len(tracks) - 1]))]
                road = edge.offset_curve(rng.choice([-1, 1]) * rng.uniform(8.0, 25.0))
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
    buildings: list[Building] = []
    base_angle = rng.uniform(0, math.pi)
    if tracks:
        a0, a1 = tracks[0].interpolate(0.45, normalized=True), tracks[0].interpolate(0.55, normalized=True)
        base_angle = math.atan2(a1.y - a0.y, a1.x - a0.x)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 5]))):  # buildings and container stacks
        for _try in range(8):
            stack = rng.random() < 0.25
            if stack:
                length, width, height = 12.19, 2.44, 2.6 * int(rng.integers(1, 4))
            else:
                length, width = rng.uniform(8, 80), rng.uniform(6, 25)
                height = float(rng.uniform(3.0, 14.0))
            heading = base_angle + (0 if rng.random() < 0.7 else rng.uniform(0, math.pi))
            cx, cy = (float(v) for v in rng.uniform(-half - 10, half + 10, 2))
            fp = rotate(box(cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2),
                        heading, origin=(cx, cy), use_radians=True)
            if fp.intersects(blocked):
                continue
            blocked = blocked.union(fp.buffer(2.0))
            if stack:
                n_rows = int(rng.integers(2, 8))
                for k in range(n_rows):
                    off = (k - n_rows / 2) * 2.6
                    cc = (cx - off * math.sin(heading), cy + off * math.cos(heading))
                    color = jittered(_CONTAINER_PAINT[int(rng.integers(len(_CONTAINER_PAINT)))], rng, 0.08)
                    buildings.append(Building(cc, heading, length, width, color, height, 0.0, 0.3))
            else:
                buildings.append(Building((cx, cy), heading, length, width, roof_color(rng), height,
                                          float(rng.choice([0.0, 0.0, 0.25, 0.5])),
                                          float(rng.choice([0.0, 0.0, 0.8, 1.0]))))
            break
    tree_xy = np.zeros((0, 2))
    if rng.random() < 0.6:  # trees: clusters and belts, off the tracks
        pts = []
        for _ in range(int(rng.integers(1, 5))):
            c = rng.uniform(-half - 10, half + 10, 2)
            pts.append(c + rng.normal(0, rng.uniform(4, 25), (int(rng.integers(3, 40)), 2)))
        if tracks and rng.random() < 0.5:
            belt = tracks[int(rng.choice([0, len(tracks) - 1]))].offset_curve(
                float(rng.choice([-1, 1]) * rng.uniform(7, 18)))
            if isinstance(belt, LineString) and not belt.is_empty:
                s = rng.uniform(0, belt.length, int(rng.integers(10, 60)))
                pts.append(shapely.get_coordinates(shapely.line_interpolate_point(belt, s)))
        xy = np.vstack(pts)
        keep = np.ones(len(xy), dtype=bool)
        if not blocked.is_empty:
            keep = ~shapely.intersects(blocked, shapely.buffer(shapely.points(xy), 1.5))
        tree_xy = xy[keep]
    return fields, roads, trucks, buildings, tree_xy, blocked


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


def clutter(
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
        color = jittered(colors[int(rng.integers(len(colors)))], rng, 0.07)
        out.append(Building((float(c[0]), float(c[1])), heading, length, width, color,
                            float(rng.uniform(h0, h1)), 0.0, 0.0))
    return out


_CONTAINER_PAINT = (
    (0.20, 0.33, 0.50), (0.50, 0.20, 0.17), (0.25, 0.40, 0.28), (0.62, 0.62, 0.60),
    (0.80, 0.80, 0.78), (0.65, 0.45, 0.20), (0.40, 0.27, 0.22), (0.18, 0.22, 0.33),
)


def jittered(c: tuple[float, float, float], rng: np.random.Generator, s: float
              ) -> tuple[float, float, float]:
    f = rng.normal(1.0, s, 3)
    return (c[0] * float(f[0]), c[1] * float(f[1]), c[2] * float(f[2]))


def wall_color(b: Building, rng: np.random.Generator) -> tuple[float, float, float]:
    if b.ribs_m == 0.3:  # a container stack: walls in the container's paint
        return (b.color[0] * 0.85, b.color[1] * 0.85, b.color[2] * 0.85)
    grey = float(rng.uniform(0.45, 0.75))
    return (grey, grey * 0.98, grey * 0.94)


def roof_color(rng: np.random.Generator) -> tuple[float, float, float]:
    table = [
        (0.55, 0.55, 0.53), (0.30, 0.30, 0.31), (0.70, 0.69, 0.66), (0.45, 0.28, 0.20),
        (0.25, 0.35, 0.50), (0.55, 0.20, 0.16), (0.25, 0.40, 0.30), (0.82, 0.82, 0.80),
    ]
    c = np.asarray(table[int(rng.integers(len(table)))]) * rng.normal(1.0, 0.08, 3)
    return (float(c[0]), float(c[1]), float(c[2]))


def wall_of(b: Building, rng: np.random.Generator) -> tuple[float, float, float]:
    if b.length < 14 and b.height < 3.5:  # a vehicle: walls in its own paint
        return (b.color[0] * 0.85, b.color[1] * 0.85, b.color[2] * 0.85)
    return wall_color(b, rng)
