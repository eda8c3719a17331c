"""Hard negatives: things in and around yards that look like rail cars and are not.

Long narrow shapes of a car's width beside tracks fool a detector trained without them: on
a real 0.25 m yard most false boxes of model v2 lay on shadow bands (DOMAIN.md). This module
lays out and paints

- **shadow bands with no cars**: dark strips of a car's width along empty tracks, on the side
  away from the sun, broken at ~15 m (the shadow of a string standing out of view);
- **platforms**: raised concrete or asphalt strips beside a track, with an edge line, and
  sometimes a **canopy** (a long narrow roof on posts);
- **sheds**: long buildings beside the tracks with ribbed roofs;
- **containers stacked on the ground**: rows of 20 ft and 40 ft boxes, one to four high;
- **parked road vehicles**: cars, vans and buses in rows.

All of them are background: none is ever in the labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from railwatch.simulate.canvas import Canvas
from railwatch.simulate.ground import Building, paint_surface
from railwatch.simulate.sun import Sun

__all__ = ["Negatives", "Platform", "ShadowBand", "hard_negatives", "paint_negatives"]

RGB = tuple[float, float, float]

_CONTAINER_PAINT = (
    (0.20, 0.33, 0.50), (0.50, 0.20, 0.17), (0.25, 0.40, 0.28), (0.62, 0.62, 0.60),
    (0.80, 0.80, 0.78), (0.65, 0.45, 0.20), (0.40, 0.27, 0.22), (0.18, 0.22, 0.33),
    (0.12, 0.12, 0.13), (0.70, 0.66, 0.55),
)
_VEHICLE_PAINT = (
    (0.85, 0.85, 0.86), (0.10, 0.10, 0.11), (0.55, 0.56, 0.58), (0.50, 0.12, 0.10),
    (0.18, 0.25, 0.42), (0.35, 0.36, 0.38), (0.80, 0.75, 0.60),
)
_ROOF_PAINT = (
    (0.55, 0.55, 0.53), (0.30, 0.30, 0.31), (0.70, 0.69, 0.66), (0.45, 0.28, 0.20),
    (0.25, 0.35, 0.50), (0.55, 0.20, 0.16), (0.25, 0.40, 0.30), (0.82, 0.82, 0.80), (0.15, 0.15, 0.16),
)


@dataclass(frozen=True, slots=True)
class ShadowBand:
    """A shadow of a car's width along ``track`` from arc length ``s0`` to ``s1``, no car casting it.

    It lies ``offset_m`` from the track's centre (near edge) on the side away from the sun,
    ``width_m`` wide, broken by ``gap_m`` every ``pitch_m`` (the gaps between cars).
    """

    track: LineString
    s0: float
    s1: float
    offset_m: float
    width_m: float
    pitch_m: float
    gap_m: float
    darkness: float

    def polygon(self, sun: Sun) -> BaseGeometry:
        """The band's outline for the sun ``sun`` (on the side of the track away from it)."""
        mid = self.track.interpolate((self.s0 + self.s1) / 2)
        ahead = self.track.interpolate(min((self.s0 + self.s1) / 2 + 1.0, self.track.length))
        tx, ty = ahead.x - mid.x, ahead.y - mid.y
        east, north = sun.toward
        side = -1.0 if (-ty * east + tx * north) > 0 else 1.0  # left of the track faces the sun?
        parts = []
        for a in np.arange(self.s0, self.s1, self.pitch_m):
            piece = substring(self.track, float(a), float(min(a + self.pitch_m - self.gap_m, self.s1)))
            if piece.length < 0.5:
                continue
            centre = piece.offset_curve(side * (self.offset_m + self.width_m / 2))
            if isinstance(centre, LineString) and not centre.is_empty:
                parts.append(centre.buffer(self.width_m / 2, cap_style="flat"))
        return shapely.union_all(parts) if parts else Polygon()


@dataclass(frozen=True, slots=True)
class Platform:
    """A raised platform beside a track: outline, height (m), surface colour, edge line."""

    outline: Polygon
    height: float
    color: RGB
    edge: LineString


@dataclass(frozen=True, slots=True)
class Negatives:
    """The hard negatives of a yard scene; ``boxes`` are painted with the other buildings."""

    platforms: tuple[Platform, ...] = ()
    bands: tuple[ShadowBand, ...] = ()
    boxes: tuple[Building, ...] = ()


def _heading(line: LineString, s: float) -> tuple[Point, float]:
    p = line.interpolate(s)
    q = line.interpolate(min(s + 1.0, line.length))
    if q.distance(p) < 1e-6:
        q, p = p, line.interpolate(max(s - 1.0, 0.0))
    return line.interpolate(s), math.atan2(q.y - p.y, q.x - p.x)


def _pick(rng: np.random.Generator, table: Sequence[RGB], jitter: float = 0.07) -> RGB:
    c = np.asarray(table[int(rng.integers(len(table)))]) * rng.normal(1.0, jitter, 3)
    return (float(c[0]), float(c[1]), float(c[2]))


def _free(fp: BaseGeometry, blocked: BaseGeometry) -> bool:
    return blocked.is_empty or not fp.intersects(blocked)


def _box(b: Building) -> Polygon:
    c, s = math.cos(b.heading), math.sin(b.heading)
    hl, hw = b.length / 2, b.width / 2
    pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    return Polygon([(b.centre[0] + u * c - v * s, b.centre[1] + u * s + v * c) for u, v in pts])


def _along(rng: np.random.Generator, edge: LineString, side: float, offset: float, length: float,
           half: float) -> tuple[tuple[float, float], float] | None:
    """A centre ``offset`` m to ``side`` of ``edge``, somewhere near the view, and the heading there."""
    line = edge.offset_curve(side * offset)
    if not isinstance(line, LineString) or line.length < length:
        return None
    near = line.project(Point(0.0, 0.0))
    s = float(np.clip(near + rng.uniform(-half, half), length / 2, line.length - length / 2))
    p, h = _heading(line, s)
    return (p.x, p.y), h


def hard_negatives(
    rng: np.random.Generator,
    edges: Sequence[tuple[LineString, float]],
    empty_tracks: Sequence[LineString],
    half: float,
    blocked: BaseGeometry,
    rate: float = 1.0,
    cars: BaseGeometry | None = None,
) -> tuple[Negatives, BaseGeometry]:
    """Lay out hard negatives near a group of tracks; returns them and the grown ``blocked`` area.

    ``edges`` are the group's outer tracks with the sign (+1 left, -1 right) of their outer
    side; ``empty_tracks`` tracks with no car in view; ``rate`` scales how often each appears;
    ``cars`` the footprints of the cars, which nothing may overlap.
    """
    cars = (cars if cars is not None else Polygon()).buffer(0.3)
    platforms: list[Platform] = []
    bands: list[ShadowBand] = []
    boxes: list[Building] = []
    picks = rng.permutation(len(empty_tracks))[: int(rng.integers(0, 3))]
    for track in (empty_tracks[int(i)] for i in picks):  # up to two bands a scene
        if rng.random() < 0.6 * rate:
            s_mid = track.project(Point(0.0, 0.0))
            length = float(rng.uniform(25.0, 3 * half))
            s0 = float(max(0.0, s_mid + rng.uniform(-half, half) - length / 2))
            bands.append(ShadowBand(track, s0, min(track.length, s0 + length), float(rng.uniform(1.4, 2.3)),
                                    float(rng.uniform(2.0, 3.8)), float(rng.uniform(10.0, 22.0)),
                                    float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.8, 1.0))))
    for edge, side in edges:
        if rng.random() < 0.22 * rate:  # a platform, maybe with a canopy
            width = float(rng.uniform(3.0, 9.0))
            spot = _along(rng, edge, side, 1.7 + width / 2, 60.0, half)
            if spot is not None:
                line = edge.offset_curve(side * (1.7 + width / 2))
                s = line.project(Point(spot[0]))
                length = float(rng.uniform(40.0, 300.0))
                strip = substring(line, max(0.0, s - length / 2), min(line.length, s + length / 2))
                outline = strip.buffer(width / 2, cap_style="flat")
                room = edge.buffer(3.2, cap_style="flat")  # its own track's room is the platform's
                beside = blocked.difference(room).union(cars)
                if isinstance(outline, Polygon) and _free(outline, beside):
                    grey = float(rng.uniform(0.28, 0.72))
                    rim = strip.offset_curve(-side * (width / 2 - 0.8))
                    platforms.append(Platform(outline, float(rng.uniform(0.55, 0.95)),
                                              (grey, grey * 0.99, grey * 0.96),
                                              rim if isinstance(rim, LineString) else strip))
                    blocked = blocked.union(outline)
                    if rng.random() < 0.45:
                        mid, h = _heading(strip, strip.length / 2)
                        cx, cy = mid.x, mid.y
                        roof = float(rng.uniform(3.5, min(8.0, width + 1.0)))
                        height = float(rng.uniform(3.6, 5.2))
                        long = float(min(strip.length, rng.uniform(20, 150)))
                        boxes.append(Building((cx, cy), h, long, roof, _pick(rng, _ROOF_PAINT), height,
                                              float(rng.choice([0.0, 0.15])), float(rng.choice([0.0, 0.8])),
                                              floor=height - 0.5))
        if rng.random() < 0.3 * rate:  # a long shed beside the tracks
            width = float(rng.uniform(8.0, 22.0))
            length = float(rng.uniform(30.0, 150.0))
            spot = _along(rng, edge, side, 3.5 + rng.uniform(1.0, 8.0) + width / 2, length, half)
            if spot is not None:
                b = Building(spot[0], spot[1], length, width, _pick(rng, _ROOF_PAINT),
                             float(rng.uniform(5.0, 10.0)), float(rng.choice([0.0, 0.0, 0.2, 0.4])),
                             float(rng.choice([0.0, 0.6, 1.0])))
                if _free(_box(b), blocked):
                    boxes.append(b)
                    blocked = blocked.union(_box(b).buffer(2.0))
        if rng.random() < 0.2 * rate:  # containers stacked on the ground, in rows along the tracks
            rows, bays = int(rng.integers(1, 6)), int(rng.integers(2, 9))
            forty = rng.random() < 0.6
            length = 12.19 if forty else 6.06
            spot = _along(rng, edge, side, float(rng.uniform(6.0, 25.0)), bays * (length + 0.4), half)
            if spot is not None:
                (cx, cy), h = spot
                c, s = math.cos(h), math.sin(h)
                stack = []
                for r in range(rows):
                    for k in range(bays):
                        if rng.random() < 0.15:
                            continue
                        u = (k - (bays - 1) / 2) * (length + float(rng.uniform(0.1, 0.6)))
                        v = side * r * float(rng.uniform(2.5, 2.9))
                        tiers = int(rng.integers(1, 5))
                        stack.append(Building((cx + u * c - v * s, cy + u * s + v * c), h, length, 2.44,
                                              _pick(rng, _CONTAINER_PAINT), 2.59 * tiers, 0.0, 0.3))
                area = shapely.union_all([_box(b) for b in stack]) if stack else Polygon()
                if stack and _free(area, blocked):
                    boxes += stack
                    blocked = blocked.union(area.buffer(1.5))
        if rng.random() < 0.15 * rate:  # parked road vehicles in rows
            spot = _along(rng, edge, side, float(rng.uniform(10.0, 35.0)), 30.0, half)
            if spot is not None:
                (cx, cy), h = spot
                c, s = math.cos(h), math.sin(h)
                lot = []
                for r in range(int(rng.integers(1, 4))):
                    u = -12.0
                    while u < 12.0:
                        kind = rng.choice(3, p=[0.7, 0.2, 0.1])
                        length, width, height = ((4.5, 1.8, 1.5), (6.0, 2.1, 2.6), (12.0, 2.55, 3.2))[kind]
                        length *= float(rng.uniform(0.92, 1.08))
                        v = side * r * 5.5
                        centre = (cx + (u + length / 2) * c - v * s, cy + (u + length / 2) * s + v * c)
                        if rng.random() < 0.8:
                            lot.append(Building(centre, h + (math.pi if rng.random() < 0.5 else 0.0), length,
                                                width, _pick(rng, _VEHICLE_PAINT, 0.05), height, 0.0, 0.0))
                        u += length + float(rng.uniform(0.6, 3.0))
                area = shapely.union_all([_box(b) for b in lot]) if lot else Polygon()
                if lot and _free(area, blocked):
                    boxes += lot
                    blocked = blocked.union(area.buffer(1.0))
    return Negatives(tuple(platforms), tuple(bands), tuple(boxes)), blocked


def paint_negatives(canvas: Canvas, neg: Negatives, sun: Sun, seed: int) -> None:
    """Paint platforms (with their height, for their shadows) and the car-less shadow bands.

    The ``boxes`` are buildings: the caller paints them with the others.
    """
    for k, p in enumerate(neg.platforms):
        paint_surface(canvas, p.outline, p.color, seed + k, cell_m=4.0, amount=0.08, grain=0.05,
                      height=p.height)
        canvas.paint(canvas.line_coverage(p.edge, 0.25) * np.float32(0.7), (0.85, 0.82, 0.6))
    for band in neg.bands:
        cover = canvas.coverage(band.polygon(sun)) * np.float32(band.darkness)
        np.maximum(canvas.shade, cover, out=canvas.shade)
