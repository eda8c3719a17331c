"""Simulated scenes of (part of) the bundled site, with exact truth, for the benchmarks.

A benchmark site is the bundled Tumangang–Khasan site cut to a box (its tracks and zones
clipped to it, the AOI the whole box, so every pixel of the image is valid, as in a
delivered scene). Trains are parked on its yard tracks at a chosen density; the simulator
(:mod:`railwatch.simulate`) renders the scene, and it is written as the same JPEG COG the
simulator delivers. Truth is the cars where they appear in the image, and whether cloud
hides them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from railwatch.simulate.crops import hard_case
from railwatch.simulate.export import write_cog
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import Scenario, ScenarioError, SceneSpec, parse_scenario
from railwatch.simulate.scene import (
    build_train_book,
    cars_at,
    check_fits,
    check_no_overlap,
    render_scene,
    under_cloud,
)
from railwatch.simulate.world import SiteWorld, build_world
from railwatch.site import Site, Track, Zone, load_site

__all__ = [
    "Density",
    "SimScene",
    "benchmark_site",
    "render_to_file",
    "scene_time",
    "yard_scenario",
]

#: Room one car takes on a track on average, metres (cars are 14–21 m, gaps 1–2 m); a train
#: that does not fit after all is shortened (see :func:`yard_scenario`).
CAR_SLOT_M = 18.5
#: Track pieces shorter than this after clipping carry no train and are dropped, metres.
MIN_TRACK_M = 30.0


class Density(enum.StrEnum):
    """How full the yard is."""

    SPARSE = "sparse"
    MEDIUM = "medium"
    DENSE = "dense"


#: (every k-th yard track holds a train, fraction of the track's length filled).
_DENSITY = {Density.SPARSE: (3, 0.4), Density.MEDIUM: (1, 0.6), Density.DENSE: (1, 0.97)}

#: A date in each season (scenes are taken at 02:15 UTC, late morning at the site).
_SEASON_DATE = {
    Season.SUMMER: datetime(2023, 7, 12, 2, 15, tzinfo=UTC),
    Season.EARLY_AUTUMN: datetime(2023, 10, 5, 2, 15, tzinfo=UTC),
    Season.LATE_AUTUMN: datetime(2023, 11, 8, 2, 15, tzinfo=UTC),
    Season.WINTER: datetime(2024, 1, 17, 2, 15, tzinfo=UTC),
    Season.SNOW: datetime(2024, 1, 24, 2, 15, tzinfo=UTC),
}


def scene_time(season: Season) -> datetime:
    """When a scene of ``season`` is taken."""
    return _SEASON_DATE[season]


def _pieces(geom: BaseGeometry) -> list[BaseGeometry]:
    return list(getattr(geom, "geoms", [geom]))


def benchmark_site(bounds: tuple[float, float, float, float] | None = None,
                   name: str = "benchmark") -> Site:
    """The bundled site cut to ``bounds`` (local UTM metres; ``None``: the AOI's bounding box).

    The AOI is the whole box; tracks and zones are clipped to it (a track cut in two becomes
    ``<name>_0``, ``<name>_1``).
    """
    full = load_site("tumangang_khasan")
    local = box(*(bounds if bounds is not None else full.aoi_local.bounds))
    aoi = full.to_lonlat(local)
    if not isinstance(aoi, Polygon):
        raise ValueError(f"bounds {bounds} do not make a polygon")
    tracks: list[Track] = []
    for track, line in zip(full.tracks, full.tracks_local, strict=True):
        parts = [p for p in _pieces(line.intersection(local))
                 if isinstance(p, LineString) and p.length >= MIN_TRACK_M]
        for k, part in enumerate(parts):
            piece = full.to_lonlat(part)
            if isinstance(piece, LineString):
                tracks.append(Track(track.name if len(parts) == 1 else f"{track.name}_{k}", piece))
    zones: list[Zone] = []
    for zone in full.zones:
        polys = [p for p in _pieces(zone.polygon.intersection(aoi))
                 if isinstance(p, Polygon) and full.to_local(p).area > 1.0]
        if polys:
            zones.append(Zone(zone.name, polys[0] if len(polys) == 1 else MultiPolygon(polys)))
    if not tracks and not zones:
        raise ValueError(f"bounds {bounds} hold no track and no zone of the bundled site")
    return Site(name, aoi, tuple(tracks), tuple(zones), description=f"bundled site cut to {bounds}")


def _yard_tracks(world: SiteWorld) -> list[str]:
    """Tracks other than the mainline (all of them if the mainline is the only one)."""
    yard = [n for n, line in world.tracks.items() if not line.equals(world.mainline)]
    return yard or list(world.tracks)


def _composition(n: int, k: int) -> list[list[object]]:
    """A locomotive and ``n - 1`` cars, most of them covered; train ``k`` carries more of one
    other class (open, tank or flat, in turn)."""
    rest = n - 1
    others = ["open_car", "tank_car", "flat_car"]
    counts = {c: int(rest * (0.2 if i == k % 3 else 0.08)) for i, c in enumerate(others)}
    parts: list[list[object]] = [["locomotive", 1], ["covered_car", rest - sum(counts.values())]]
    parts += [[c, m] for c, m in counts.items() if m > 0]
    return [p for p in parts if p[1] != 0]


def _scenario_doc(world: SiteWorld, density: Density, at: datetime, seed: int, fill_scale: float
                  ) -> dict[str, object]:
    every, fill = _DENSITY[density]
    fill *= fill_scale
    trains, events = [], []
    for k, name in enumerate(_yard_tracks(world)):
        if k % every:
            continue
        length = world.tracks[name].length
        n = math.floor(fill * length / CAR_SLOT_M)
        if n < 2:
            continue
        tid = f"T{k:02d}"
        trains.append({"id": tid, "cars": _composition(n, k)})
        events.append({"train": tid, "at": at - timedelta(hours=12), "action": "arrive", "track": name,
                       "offset_m": round((length - n * CAR_SLOT_M) / 2, 2)})
    return {"site": world.site.name, "seed": seed, "start": at - timedelta(days=1),
            "end": at + timedelta(hours=1), "trains": trains, "events": events}


def yard_scenario(world: SiteWorld, density: Density, at: datetime, seed: int) -> Scenario:
    """Trains parked on the yard tracks at ``at``, centred on each track.

    Yard tracks converge at their ends: when cars of neighbouring trains would overlap, the
    trains are shortened until they do not.
    """
    for fill_scale in (1.0, 0.95, 0.9, 0.8, 0.7, 0.55, 0.4):
        doc = _scenario_doc(world, density, at, seed, fill_scale)
        scenario = parse_scenario(doc, source=f"benchmark {density} yard", tracks=list(world.tracks))
        book = build_train_book(scenario)
        probe = SceneSpec(at=at)
        try:
            check_fits(scenario, world, book)
            check_no_overlap(_with_scene(scenario, probe), world, book)
        except ScenarioError:
            continue
        return scenario
    raise ScenarioError(f"no {density} yard fits on the tracks of {world.site.name}")


def _with_scene(scenario: Scenario, spec: SceneSpec) -> Scenario:
    return Scenario(scenario.site, scenario.start, scenario.end, scenario.trains, scenario.events,
                    (spec,), scenario.seed, scenario.name, scenario.source)


@dataclass(frozen=True, slots=True)
class SimScene:
    """A rendered scene on disk and its truth (site CRS).

    ``true_corners`` ``(n, 4, 2)`` are the cars where they appear in the image; ``hidden`` marks
    those under cloud (a cloud-covered car cannot be counted and is not expected).
    """

    path: Path
    site: Site
    spec: SceneSpec
    true_corners: np.ndarray
    true_class: np.ndarray
    hidden: np.ndarray
    hard: np.ndarray | None = None
    sun_elevation: float = float("nan")

    def truth_in(self, region: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
        """Corners and classes of the visible cars whose centre lies in ``region``."""
        inside = self.visible_in(region)
        return self.true_corners.reshape(-1, 4, 2)[inside], self.true_class[inside]

    def visible_in(self, region: BaseGeometry) -> np.ndarray:
        """Which cars are visible with their centre in ``region`` (a boolean mask)."""
        if len(self.true_corners) == 0:
            return np.zeros(0, dtype=bool)
        centre = self.true_corners.mean(axis=1)
        return np.asarray(shapely.contains_xy(region, centre[:, 0], centre[:, 1]) & ~self.hidden)


def render_to_file(site: Site, spec: SceneSpec, density: Density, path: Path, world_seed: int = 0,
                   quality: int = 90) -> SimScene:
    """Render ``site`` with a ``density`` yard as ``spec`` sees it; write it to ``path`` (JPEG COG)."""
    world = build_world(site, world_seed)
    scenario = yard_scenario(world, density, spec.at, spec.seed)
    book = build_train_book(scenario)
    rendered = render_scene(world, spec, cars_at(scenario, world, book, spec.at))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cog(path, rendered, quality)
    cars = rendered.apparent
    corners = np.array([c.corners() for c in cars], dtype=float).reshape(-1, 4, 2)
    classes = np.array([c.car.cls.class_id for c in cars], dtype=np.int64)
    hidden = np.array([under_cloud(rendered, c.centre) for c in cars], dtype=bool)
    hard = np.array([hard_case(c, rendered.sun.elevation_deg) for c in cars], dtype=np.int64)
    return SimScene(path, site, spec, corners, classes, hidden, hard, rendered.sun.elevation_deg)
