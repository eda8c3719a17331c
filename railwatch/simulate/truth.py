"""Ground truth of a simulated scenario: per-scene car polygons, per-scene counts, weekly counts.

All truth comes from the simulator's own placement of cars:

- per scene, every car where it *appears* in the image (geolocation shift included), with
  its zone (by the apparent centre) and whether cloud hides it;
- ``frames.csv``: per scene × zone × class, the cars whose apparent centre is in the zone and
  not under cloud, and the zone's valid cloud-free fraction — the columns of the
  ``frames.csv`` that ``railwatch count`` writes;
- ``weekly.csv``: per ISO week × zone × class, the unique cars truly present in the zone at
  any time of the week, the cars that arrived in it, and (bridge rows) the cars that crossed
  the bridge in each direction.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shapely.geometry import mapping

from railwatch.classes import CLASS_NAMES
from railwatch.simulate.scenario import Action, Direction, Scenario
from railwatch.simulate.scene import (
    RenderedScene,
    TrainBook,
    cars_at,
    under_cloud,
    zone_coverage,
    zone_of,
)
from railwatch.simulate.world import SiteWorld

__all__ = [
    "FRAMES_COLUMNS",
    "WEEKLY_COLUMNS",
    "FrameRow",
    "WeeklyRow",
    "frame_rows",
    "iso_week",
    "scene_features",
    "weekly_rows",
    "write_csv",
]

FRAMES_COLUMNS = ("scene", "acquired", "zone", "class", "count", "coverage")
WEEKLY_COLUMNS = (
    "week", "week_start", "zone", "class", "unique_cars", "arrivals",
    "crossed_to_khasan", "crossed_to_tumangang",
)


def iso_week(t: datetime) -> str:
    """``2023-W40``-style ISO week of a time (UTC)."""
    y, w, _ = t.astimezone(UTC).isocalendar()
    return f"{y}-W{w:02d}"


def _week_start(t: datetime) -> datetime:
    d = t.astimezone(UTC).date()
    monday = d - timedelta(days=d.isoweekday() - 1)
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def iso_utc(t: datetime) -> str:
    """ISO 8601 UTC with a trailing Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scene_features(world: SiteWorld, scene: RenderedScene) -> list[dict[str, object]]:
    """GeoJSON features (EPSG:4326) of every car where it appears in the scene."""
    features = []
    for true, seen in zip(scene.cars, scene.apparent, strict=True):
        poly = world.site.to_lonlat(seen.polygon)
        features.append({
            "type": "Feature",
            "geometry": mapping(poly),
            "properties": {
                "id": seen.car_id,
                "class": seen.car.cls.label,
                "zone": zone_of(world, seen.centre),
                "true_zone": zone_of(world, true.centre),
                "under_cloud": under_cloud(scene, seen.centre),
                "length_m": round(seen.car.length, 2),
                "width_m": round(seen.car.width, 2),
            },
        })
    return features


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One row of truth/frames.csv."""

    scene: str
    acquired: str
    zone: str
    cls: str
    count: int
    coverage: float

    def values(self) -> tuple[object, ...]:
        return (self.scene, self.acquired, self.zone, self.cls, self.count, f"{self.coverage:.4f}")


def frame_rows(world: SiteWorld, scene: RenderedScene, scene_name: str) -> list[FrameRow]:
    """Per zone × class counts of visible cars (apparent centre in zone, not under cloud)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for seen in scene.apparent:
        zone = zone_of(world, seen.centre)
        if zone is not None and not under_cloud(scene, seen.centre):
            counts[(zone, seen.car.cls.label)] += 1
    rows = []
    for zone_name, zone in zip(world.site.zone_names, world.site.zones_local, strict=True):
        cov = zone_coverage(scene, zone)
        for cls in CLASS_NAMES:
            rows.append(FrameRow(scene_name, iso_utc(scene.spec.at), zone_name, cls,
                                 counts[(zone_name, cls)], cov))
    return rows


@dataclass(frozen=True, slots=True)
class WeeklyRow:
    """One row of truth/weekly.csv (crossing counts only on the bridge zone's rows)."""

    week: str
    week_start: str
    zone: str
    cls: str
    unique_cars: int
    arrivals: int
    crossed_to_khasan: int | None
    crossed_to_tumangang: int | None

    def values(self) -> tuple[object, ...]:
        def opt(v: int | None) -> object:
            return "" if v is None else v

        return (self.week, self.week_start, self.zone, self.cls, self.unique_cars, self.arrivals,
                opt(self.crossed_to_khasan), opt(self.crossed_to_tumangang))


def _sample_times(scenario: Scenario) -> list[datetime]:
    times = {scenario.start, scenario.end}
    for ev in scenario.events:
        if scenario.start <= ev.at <= scenario.end:
            times.add(ev.at + timedelta(seconds=1))
        if ev.action is Action.CROSS:
            steps = 90
            for k in range(steps + 1):
                t = ev.at + ev.duration * (k / steps)
                if scenario.start <= t <= scenario.end:
                    times.add(t)
    t = _week_start(scenario.start)
    while t <= scenario.end:
        if t >= scenario.start:
            times.add(t)
        t += timedelta(days=7)
    return sorted(times)


def weekly_rows(scenario: Scenario, world: SiteWorld, book: TrainBook) -> list[WeeklyRow]:
    """True weekly presence, arrivals and bridge crossings per ISO week × zone × class.

    Presence is sampled at every event (and densely through every crossing), so a car that
    is in a zone at any moment of a week counts once for that week. A crossing counts in the
    week of its midpoint.
    """
    present: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    arrived: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    previous: dict[str, str | None] = {}
    first = True
    for t in _sample_times(scenario):
        week = iso_week(t)
        now: dict[str, str | None] = {}
        for car in cars_at(scenario, world, book, t):
            zone = zone_of(world, car.centre)
            now[car.car_id] = zone
            if zone is None:
                continue
            present[(week, zone, car.car.cls.label)].add(car.car_id)
            if not first and previous.get(car.car_id) != zone:
                arrived[(week, zone, car.car.cls.label)].add(car.car_id)
        previous = now
        first = False
    crossed: dict[tuple[str, str, Direction], int] = defaultdict(int)
    for ev in scenario.events:
        if ev.action is Action.CROSS and ev.direction is not None:
            week = iso_week(ev.at + ev.duration / 2)
            for cls in scenario.train(ev.train_id).classes:
                crossed[(week, cls.label, ev.direction)] += 1
    weeks: list[str] = []
    t = _week_start(scenario.start)
    starts: dict[str, str] = {}
    while t <= scenario.end:
        weeks.append(iso_week(t))
        starts[iso_week(t)] = t.date().isoformat()
        t += timedelta(days=7)
    rows = []
    for week in weeks:
        for zone in world.site.zone_names:
            for name in CLASS_NAMES:
                bridge = zone == "bridge"
                rows.append(WeeklyRow(
                    week, starts[week], zone, name,
                    len(present[(week, zone, name)]), len(arrived[(week, zone, name)]),
                    crossed[(week, name, Direction.TO_KHASAN)] if bridge else None,
                    crossed[(week, name, Direction.TO_TUMANGANG)] if bridge else None,
                ))
    return rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[FrameRow | WeeklyRow]) -> None:
    """Write rows with a header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(row.values())

