"""Random freight-yard scenes for chips and generic yard scenes: a layout, then its painting.

:func:`random_yard` draws what is where in a square of world metres around the origin, in a
:class:`YardStyle` (drawn at random for training chips by :func:`random_style`, or pinned for
a test scene): a group of parallel tracks at a random angle — a few tracks, or a yard of
10–30 where most tracks are empty ballast with a sleeper ladder — straight or curved, maybe
with a switch or stubs; strings of 1520 mm or European cars on some of them; catenary masts
every ~60 m; hard negatives (:mod:`railwatch.simulate.negatives`); and the surroundings
(gravel, scrub strips, fields, roads with trucks, buildings, trees, lighting towers).
:func:`paint_yard` paints a layout. Ground truth is the layout's own list of placed cars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.affinity import rotate
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from railwatch.simulate.catenary import Catenary, catenary_rows
from railwatch.simulate.fleet import Stock
from railwatch.simulate.ground import (
    Building,
    Season,
    palette_for,
)
from railwatch.simulate.negatives import Negatives, hard_negatives
from railwatch.simulate.stock import PlacedCar
from railwatch.simulate.surroundings import clutter, surroundings
from railwatch.simulate.track import TrackLook, random_track_look
from railwatch.simulate.trains import place_string, random_consist

__all__ = ["Building", "YardLayout", "YardStyle", "random_style", "random_yard"]


@dataclass(frozen=True, slots=True)
class YardStyle:
    """What kind of yard a random layout is.

    ``stock``: the rolling stock and track gauge; ``tracks``: how many parallel tracks (an
    inclusive range); ``occupied``: the chance that a track holds cars in view;
    ``car_length_m``: pins the cars' lengths (locomotives excepted); ``electrified``: the
    chance of catenary; ``weeds``: range of weed cover on gravel and ballast; ``negatives``:
    how often hard negatives appear (0: never, 1: the training rate); ``curved``: the chance
    the group is curved; ``no_cars``: the chance of a scene without any car.
    """

    stock: Stock = Stock.RUSSIAN_1520
    tracks: tuple[int, int] = (1, 10)
    occupied: float = 0.78
    car_length_m: tuple[float, float] | None = None
    electrified: float = 0.35
    weeds: tuple[float, float] = (0.0, 0.0)
    negatives: float = 1.0
    curved: float = 0.3
    no_cars: float = 0.15

    def __post_init__(self) -> None:
        if not 1 <= self.tracks[0] <= self.tracks[1] <= 40:
            raise ValueError(f"tracks must be a range within 1–40, got {self.tracks}")
        for name in ("occupied", "electrified", "curved", "no_cars"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 0.0 <= self.weeds[0] <= self.weeds[1] <= 1.0:
            raise ValueError(f"weeds must be a range within 0–1, got {self.weeds}")
        if self.car_length_m is not None and not 5.0 <= self.car_length_m[0] <= self.car_length_m[1] <= 30.0:
            raise ValueError(f"car_length_m must be a range within 5–30 m, got {self.car_length_m}")


def random_style(rng: np.random.Generator) -> YardStyle:
    """A training chip's style: European or 1520 mm stock; a big, mostly empty yard or a few tracks."""
    stock = Stock.EUROPEAN if rng.random() < 0.55 else Stock.RUSSIAN_1520
    weeds = (0.0, float(rng.uniform(0.0, 0.3))) if rng.random() < 0.35 else (0.0, 0.0)
    european = stock is Stock.EUROPEAN
    if rng.random() < 0.45:  # a marshalling or freight yard: 10–30 tracks, most of them empty
        return YardStyle(stock, (10, 30), float(rng.uniform(0.15, 0.55)), None, 0.65 if european else 0.3,
                         weeds, 1.0, 0.1, 0.06)
    return YardStyle(stock, (1, 10), 0.78, None, 0.5 if european else 0.3, weeds, 1.0, 0.3, 0.15)


@dataclass(frozen=True, slots=True)
class TrackGroup:
    """Parallel tracks and what is laid out from them.

    ``lanes``: lines where catenary masts stand (beside the outer tracks, in wide gaps);
    ``edges``: the outer tracks with the sign of their outer side (+1 left, -1 right);
    ``strips``: scrub between sub-groups of a big yard.
    """

    tracks: tuple[LineString, ...]
    lanes: tuple[LineString, ...]
    edges: tuple[tuple[LineString, float], ...]
    strips: tuple[Polygon, ...]


def _offsets(rng: np.random.Generator, n: int, big: bool) -> tuple[list[float], list[float], list[float]]:
    """Track offsets across the group, mast lanes and scrub strips (their centre offsets)."""
    offsets, lanes, strips = [0.0], [], []
    run = int(rng.integers(2, 7))
    for i in range(n - 1):
        if big and i + 1 == run:
            run += int(rng.integers(2, 7))
            if rng.random() < 0.15:
                gap = float(rng.uniform(10.0, 25.0))
                strips.append(offsets[-1] + gap / 2)
            else:
                gap = float(rng.uniform(5.8, 7.5))
                lanes.append(offsets[-1] + gap / 2)
        elif not big and rng.random() < 0.1:
            gap = float(rng.uniform(6.5, 12.0))
        else:
            gap = float(rng.uniform(4.5, 5.0))
        offsets.append(offsets[-1] + gap)
    side = float(rng.uniform(2.9, 3.4))
    return offsets, [-side, *lanes, offsets[-1] + side], strips


def _track_group(rng: np.random.Generator, half: float, style: YardStyle) -> TrackGroup:
    """Parallel tracks (and maybe one switch curve and some stubs), at a random angle."""
    lo, hi = style.tracks
    if (lo, hi) == (1, 10):
        n = int(rng.choice(np.arange(1, 11), p=np.array([8, 11, 12, 11, 10, 10, 9, 10, 9, 10]) / 100))
    else:
        n = int(rng.integers(lo, hi + 1))
    big = n >= 10
    offsets, lane_offsets, strip_offsets = _offsets(rng, n, big)
    if big:  # the view sees some part of a wide yard
        shift = -offsets[-1] * float(rng.uniform(0.1, 0.9)) + float(rng.uniform(-0.3, 0.3)) * half
    else:
        shift = rng.uniform(-0.8 * half, 0.8 * half) - offsets[-1] / 2 * rng.uniform(0.5, 1.5)
    reach = half * 3.2
    curved = rng.random() < style.curved
    if curved:
        radius = rng.uniform(600.0, 2000.0) if big else rng.uniform(180.0, 900.0)
        radius *= rng.choice([-1, 1])
        t = np.linspace(-reach, reach, 61)
        phi = t / radius
        line = LineString(np.column_stack([radius * np.sin(phi), radius * (1 - np.cos(phi))]))
    else:
        line = LineString([(-reach, 0.0), (reach, 0.0)])

    def along(o: float) -> LineString | None:
        tr = line.offset_curve(o + shift)
        return tr if isinstance(tr, LineString) and tr.length > 0 else None

    tracks = [tr for o in offsets if (tr := along(o)) is not None]
    lanes = [ln for o in lane_offsets if (ln := along(o)) is not None]
    strips = []
    for o in strip_offsets:
        mid = along(o)
        if mid is not None:
            strips.append(mid.buffer(2.0, cap_style="flat"))
    edge_a, edge_b = along(offsets[0]), along(offsets[-1])
    switch = None
    if not curved and rng.random() < 0.4:
        i = int(rng.integers(0, len(offsets)))
        side = 1.0 if (i == len(offsets) - 1 or rng.random() < 0.5) else -1.0
        s0 = rng.uniform(-half, half * 0.5)
        length = rng.uniform(30.0, 45.0)
        s = np.linspace(0, 1, 25)
        xs = s0 + length * s
        ys = offsets[i] + shift + 4.75 * side * (s * s * (3 - 2 * s))
        tail = np.array([[s0 + length + rng.uniform(20, 200), offsets[i] + shift + 4.75 * side]])
        pts = np.vstack([np.column_stack([xs, ys]), tail])
        if rng.random() < 0.5:
            pts[:, 0] *= -1
        switch = LineString(pts)
    angle = float(rng.uniform(0, 180))

    def turn(g: LineString) -> LineString:
        out = rotate(g, angle, origin=(0, 0))
        return out if isinstance(out, LineString) else g

    out: list[LineString] = []
    for t_ in tracks:
        if rng.random() < 0.12:  # a stub: the track ends in view (buffer stop)
            cut = rng.uniform(0.3, 0.7) * t_.length
            t_ = substring(t_, 0, cut) if rng.random() < 0.5 else substring(t_, cut, t_.length)
        out.append(turn(t_))
    if switch is not None:
        out.append(turn(switch))
    edges = tuple((turn(e), sign) for e, sign in ((edge_a, -1.0), (edge_b, 1.0)) if e is not None)
    strips_r = [rotate(p, angle, origin=(0, 0)) for p in strips]
    return TrackGroup(tuple(out), tuple(turn(ln) for ln in lanes), edges,
                      tuple(p for p in strips_r if isinstance(p, Polygon)))


def _fill_tracks(
    rng: np.random.Generator, tracks: tuple[LineString, ...], half: float, empty: bool, style: YardStyle
) -> tuple[list[PlacedCar], list[int]]:
    """Strings of cars on the tracks (full trains, partial strings or nothing); the tracks used."""
    view = box(-half - 15, -half - 15, half + 15, half + 15)
    cars: list[PlacedCar] = []
    used: list[int] = []
    occ = style.occupied
    for k, tr in enumerate(tracks):
        if empty:
            break
        inside = tr.intersection(view)
        if inside.is_empty or inside.length < 10:
            continue
        mode = rng.choice(["empty", "full", "partial"], p=[1 - occ, 0.6 * occ, 0.4 * occ])
        if mode == "empty":
            continue
        s_in = tr.project(Point(inside.coords[0])) if isinstance(inside, LineString) else 0.0
        s_out = s_in + inside.length
        if mode == "full":
            s0, s1 = s_in - rng.uniform(0, 25), s_out + 25
        else:
            a, b = sorted(rng.uniform(s_in - 20, s_out + 20, 2))
            s0, s1 = a, max(b, a + 16)
        n = max(1, int((s1 - s0) / 10.0) + 1)
        consist = random_consist(rng, n + 2, stock=style.stock, length_m=style.car_length_m)
        gaps = rng.uniform(1.0, 2.0, len(consist))
        if rng.random() < 0.15:  # one uncoupled gap in the string
            gaps[rng.integers(len(gaps))] = rng.uniform(3.0, 25.0)
        flips = rng.random(len(consist)) < 0.5
        placed = place_string(tr, consist, s0, gaps.tolist(), flip=flips.tolist())
        before = len(cars)
        others = shapely.STRtree([q.polygon for q in cars])
        for p in placed:
            if tr.project(Point(p.centre)) > s1:
                continue
            # Where tracks converge (a switch, a stub) a car would overlap one already placed
            # on the neighbouring track: physically impossible, and a noisy label. Skip it.
            if len(others.query(p.polygon.buffer(-0.05), predicate="intersects")):
                continue
            cars.append(p)
        if len(cars) > before:
            used.append(k)
    return cars, used


@dataclass(frozen=True, slots=True)
class YardLayout:
    """Everything in a random yard scene, in world metres around the origin."""

    half_extent: float
    style: YardStyle
    tracks: tuple[LineString, ...]
    track_looks: tuple[TrackLook, ...]
    cars: tuple[PlacedCar, ...]
    gravel: BaseGeometry | None
    strips: tuple[Polygon, ...]
    fields: tuple[tuple[Polygon, int, float], ...]
    roads: tuple[tuple[LineString, float, int], ...]
    trucks: tuple[tuple[tuple[float, float], float], ...]
    buildings: tuple[Building, ...]
    tree_xy: np.ndarray
    tree_r: np.ndarray
    tree_h: np.ndarray
    catenary: Catenary
    poles: np.ndarray
    negatives: Negatives
    weeds: float
    snow_on_cars: float


def random_yard(
    rng: np.random.Generator, half_extent: float, season: Season, style: YardStyle | None = None
) -> YardLayout:
    """A random yard scene within ``±half_extent`` metres of the origin (plus a margin).

    ``style`` pins the kind of yard; by default one is drawn (:func:`random_style`).
    """
    half = half_extent
    style = style if style is not None else random_style(rng)
    no_cars = rng.random() < style.no_cars
    if no_cars and style.tracks[1] < 10 and rng.random() < 0.4:
        group = TrackGroup((), (), (), ())
    else:
        group = _track_group(rng, half, style)
    tracks = group.tracks
    cars, used = _fill_tracks(rng, tracks, half, no_cars, style)
    base_palette = palette_for(season)
    look = random_track_look(rng, style.stock, base_palette)
    renewed = random_track_look(rng, style.stock, base_palette)
    looks = tuple(renewed if len(tracks) >= 6 and rng.random() < 0.25 else look for _ in tracks)
    view = box(-half - 20, -half - 20, half + 20, half + 20)
    corridor = shapely.union_all([t.buffer(3.0, cap_style="flat") for t in tracks]) if tracks else Polygon()
    blocked: BaseGeometry = corridor
    gravel = None
    if len(tracks) >= 2 and (len(tracks) >= 10 or rng.random() < 0.55):
        gravel = corridor.buffer(rng.uniform(1.0, 8.0)).intersection(view)
        for strip in group.strips:
            gravel = gravel.difference(strip)
    catenary = Catenary.empty()
    if tracks and rng.random() < style.electrified:
        catenary = catenary_rows(rng, group.lanes, tracks, portal=0.4 if len(tracks) >= 4 else 0.0)
    centres = shapely.points([c.centre for c in cars]) if cars else None
    empty_tracks = [t for k, t in enumerate(tracks)  # no car on it, nor on a switch joining it
                    if k not in used and (centres is None or shapely.distance(t, centres).min() > 1.0)]
    bodies = shapely.union_all([c.polygon for c in cars]) if cars else Polygon()
    negatives, blocked = hard_negatives(rng, group.edges, empty_tracks, half, blocked, style.negatives,
                                        bodies)
    fields, roads, trucks, buildings, tree_xy, blocked = surroundings(rng, half, tracks, corridor, blocked)
    buildings += clutter(rng, half, blocked, corridor)
    poles = np.zeros((0, 2))
    if rng.random() < 0.25:  # yard lighting towers: tall, thin, long shadows
        cand = rng.uniform(-half - 10, half + 10, (int(rng.integers(1, 4)), 2))
        ok = np.ones(len(cand), dtype=bool)
        if not corridor.is_empty:
            ok = ~shapely.intersects(corridor, shapely.points(cand))
        poles = cand[ok]
    snow = float(rng.uniform(0.3, 0.9)) if season is Season.SNOW and rng.random() < 0.5 else 0.0
    tree_r = rng.uniform(1.5, 5.0, len(tree_xy))
    return YardLayout(
        half_extent=half,
        style=style,
        tracks=tuple(tracks),
        track_looks=looks,
        cars=tuple(cars),
        gravel=gravel if gravel is not None and not gravel.is_empty else None,
        strips=group.strips,
        fields=tuple(fields),
        roads=tuple(roads),
        trucks=tuple(trucks),
        buildings=tuple(buildings),
        tree_xy=tree_xy,
        tree_r=tree_r,
        tree_h=tree_r * rng.uniform(1.5, 3.0, len(tree_xy)),
        catenary=catenary,
        poles=poles,
        negatives=negatives,
        weeds=float(rng.uniform(*style.weeds)),
        snow_on_cars=snow,
    )
