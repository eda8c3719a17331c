"""Scenarios: trains that come and go at a site, and when scenes of it are taken.

A scenario is a TOML file (see ``scenarios/`` and docs/simulator.md)::

    site = "tumangang_khasan"
    seed = 7
    start = 2023-09-25T00:00:00Z
    end = 2023-10-16T00:00:00Z

    [[trains]]
    id = "T01"
    cars = [["locomotive", 1], ["covered_car", 30]]

    [[events]]                      # arrive | cross | leave
    train = "T01"
    at = 2023-09-26T06:00:00Z
    action = "arrive"
    track = "tumangang_3"
    offset_m = 120.0                # arc length from the track's start to the train's rear
    dwell_h = 48                    # optional: leave after this long

    [[scenes]]
    at = 2023-10-05T02:15:00Z
    gsd = 0.5
    cloud_fraction = 0.1
    shift_m = [3.0, -2.0]           # geolocation error (east, north), metres
    haze = 0.05
    season = "early_autumn"
    off_nadir_deg = 12.0            # optional view geometry (relief displacement)
    view_azimuth_deg = 250.0

Times are UTC (TOML datetimes with ``Z``). Parsing checks everything it can and raises
:class:`ScenarioError` naming the file and what to fix. :func:`train_states` says where
every train is at a given time: parked on a track, moving along the mainline, or absent.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from railwatch.classes import CLASS_NAMES, CarClass
from railwatch.errors import RailwatchError
from railwatch.simulate.ground import Season

__all__ = [
    "Action",
    "Direction",
    "Event",
    "Scenario",
    "ScenarioError",
    "SceneSpec",
    "TrainSpec",
    "TrainState",
    "load_scenario",
    "parse_scenario",
    "train_states",
]


class ScenarioError(RailwatchError, ValueError):
    """A scenario file is unreadable or inconsistent."""


class Action(enum.StrEnum):
    """What a train does at an event."""

    ARRIVE = "arrive"
    CROSS = "cross"
    LEAVE = "leave"


class Direction(enum.StrEnum):
    """Direction over the bridge; ``to_khasan`` runs along the mainline's digitised direction."""

    TO_KHASAN = "to_khasan"
    TO_TUMANGANG = "to_tumangang"


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """A train: id and composition (car classes, front to rear)."""

    train_id: str
    classes: tuple[CarClass, ...]

    def __post_init__(self) -> None:
        if not self.train_id:
            raise ValueError("a train needs an id")
        if not self.classes:
            raise ValueError(f"train {self.train_id!r} has no cars")

    def car_ids(self) -> tuple[str, ...]:
        """Stable car ids, ``<train>-<nn>`` front to rear."""
        return tuple(f"{self.train_id}-{i + 1:02d}" for i in range(len(self.classes)))


@dataclass(frozen=True, slots=True)
class Event:
    """A train arrives on a track, crosses the bridge to a track, or leaves the site."""

    train_id: str
    at: datetime
    action: Action
    track: str | None = None
    offset_m: float = 0.0
    direction: Direction | None = None
    duration: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class SceneSpec:
    """An acquisition: time, ground sample distance, clouds, geolocation error, haze, season."""

    at: datetime
    gsd: float = 0.5
    cloud_fraction: float = 0.0
    shift_m: tuple[float, float] = (0.0, 0.0)
    haze: float = 0.05
    season: Season = Season.EARLY_AUTUMN
    noise: float = 4.0
    off_nadir_deg: float = 0.0
    view_azimuth_deg: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.off_nadir_deg <= 40.0:
            raise ValueError(f"off_nadir_deg must be within 0–40°, got {self.off_nadir_deg}")
        if not 0.0 <= self.view_azimuth_deg < 360.0:
            raise ValueError(f"view_azimuth_deg must be within [0, 360), got {self.view_azimuth_deg}")
        if self.at.tzinfo is None:
            raise ValueError("scene time must be UTC")
        if not 0.1 <= self.gsd <= 2.0:
            raise ValueError(f"gsd must be within 0.1–2 m, got {self.gsd}")
        if not 0.0 <= self.cloud_fraction <= 0.9:
            raise ValueError(f"cloud_fraction must be within 0–0.9, got {self.cloud_fraction}")
        if not 0.0 <= self.haze < 0.8:
            raise ValueError(f"haze must be within 0–0.8, got {self.haze}")
        if max(abs(self.shift_m[0]), abs(self.shift_m[1])) > 100:
            raise ValueError(f"shift_m must be within ±100 m, got {self.shift_m}")

    @property
    def stamp(self) -> str:
        """Compact UTC time for file names, e.g. ``20231005T0215Z``."""
        return self.at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario: site, span, trains, their events (sorted) and scenes (sorted)."""

    site: str
    start: datetime
    end: datetime
    trains: tuple[TrainSpec, ...]
    events: tuple[Event, ...]
    scenes: tuple[SceneSpec, ...]
    seed: int = 0
    name: str = ""
    source: str = "<scenario>"

    def train(self, train_id: str) -> TrainSpec:
        for t in self.trains:
            if t.train_id == train_id:
                return t
        raise KeyError(train_id)


@dataclass(frozen=True, slots=True)
class TrainState:
    """Where a train is at one moment.

    Parked: ``track`` and ``offset_m`` (rear end's arc length). Moving: ``track`` is
    ``None`` and ``route_from_m``/``route_to_m`` with ``progress`` (0–1) give its front's
    arc length along the mainline and ``direction`` its heading.
    """

    train: TrainSpec
    track: str | None
    offset_m: float = 0.0
    direction: Direction | None = None
    route_from: tuple[str, float] | None = None
    route_to: tuple[str, float] | None = None
    progress: float = 0.0


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario TOML file."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: cannot read the scenario ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML ({exc}); fix the syntax at that line") from exc
    return parse_scenario(doc, source=str(p))


def _time(value: object, where: str, source: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(f"{source}: {where} = {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ScenarioError(f"{source}: {where} must be a UTC time such as 2023-10-05T02:15:00Z")
    if value.tzinfo is None:
        raise ScenarioError(
            f"{source}: {where} = {value.isoformat()} has no time zone; write it in UTC with a "
            "trailing Z, e.g. 2023-10-05T02:15:00Z"
        )
    return value.astimezone(UTC)


def _table(doc: Mapping[str, object], key: str, source: str) -> list[Mapping[str, object]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ScenarioError(f"{source}: `{key}` must be an array of tables ([[{key}]])")
    return items


def _num(d: Mapping[str, object], key: str, default: float, where: str, source: str) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(f"{source}: {where}: `{key}` must be a number, got {v!r}")
    return float(v)


def parse_scenario(
    doc: Mapping[str, object], source: str = "<scenario>", tracks: Sequence[str] | None = None
) -> Scenario:
    """Build a :class:`Scenario` from a parsed TOML document, checking it.

    ``tracks``, when given, are the site's track names that events may refer to.
    """
    site = doc.get("site")
    if not isinstance(site, str) or not site:
        raise ScenarioError(f"{source}: missing `site` (a bundled site name or a site file path)")
    start = _time(doc.get("start"), "start", source)
    end = _time(doc.get("end"), "end", source)
    if end <= start:
        raise ScenarioError(f"{source}: `end` ({end:%Y-%m-%d %H:%M}) must be after `start`")
    seed = doc.get("seed", 0)
    if not isinstance(seed, int):
        raise ScenarioError(f"{source}: `seed` must be an integer")
    trains: list[TrainSpec] = []
    for i, t in enumerate(_table(doc, "trains", source)):
        tid = t.get("id")
        where = f"trains[{i}]"
        if not isinstance(tid, str) or not tid:
            raise ScenarioError(f"{source}: {where} needs an `id` string")
        classes: list[CarClass] = []
        cars = t.get("cars")
        if not isinstance(cars, list) or not cars:
            raise ScenarioError(
                f"{source}: train {tid!r} needs `cars`, e.g. cars = [[\"locomotive\", 1], "
                f"[\"covered_car\", 30]]"
            )
        for part in cars:
            if (
                not isinstance(part, list) or len(part) != 2 or not isinstance(part[0], str)
                or not isinstance(part[1], int) or part[1] < 1
            ):
                raise ScenarioError(
                    f"{source}: train {tid!r}: each entry of `cars` is [class, count], got {part!r}"
                )
            if part[0] not in CLASS_NAMES:
                raise ScenarioError(
                    f"{source}: train {tid!r}: unknown car class {part[0]!r}; use one of "
                    f"{', '.join(CLASS_NAMES)}"
                )
            classes += [CarClass.from_label(part[0])] * part[1]
        if any(tr.train_id == tid for tr in trains):
            raise ScenarioError(f"{source}: train id {tid!r} is used twice")
        trains.append(TrainSpec(tid, tuple(classes)))
    known = {t.train_id for t in trains}
    events: list[Event] = []
    for i, e in enumerate(_table(doc, "events", source)):
        where = f"events[{i}]"
        tid = e.get("train")
        if tid not in known:
            raise ScenarioError(
                f"{source}: {where} refers to train {tid!r}, which is not defined in [[trains]]"
            )
        at = _time(e.get("at"), f"{where}.at", source)
        try:
            action = Action(str(e.get("action")))
        except ValueError:
            raise ScenarioError(
                f"{source}: {where}: action {e.get('action')!r} is not one of "
                f"{', '.join(a.value for a in Action)}"
            ) from None
        track = e.get("track")
        if action in (Action.ARRIVE, Action.CROSS):
            if not isinstance(track, str):
                raise ScenarioError(f"{source}: {where} ({action}) needs `track`, the track it stops on")
            if tracks is not None and track not in tracks:
                raise ScenarioError(
                    f"{source}: {where}: unknown track {track!r}; the site has {', '.join(tracks)}"
                )
        direction = None
        if action is Action.CROSS:
            try:
                direction = Direction(str(e.get("direction")))
            except ValueError:
                raise ScenarioError(
                    f"{source}: {where}: `direction` must be to_khasan or to_tumangang, "
                    f"got {e.get('direction')!r}"
                ) from None
        offset = _num(e, "offset_m", 0.0, where, source)
        if offset < 0:
            raise ScenarioError(f"{source}: {where}: offset_m must not be negative")
        duration = timedelta(minutes=_num(e, "duration_min", 30.0, where, source))
        events.append(Event(str(tid), at, action, track if isinstance(track, str) else None,
                            offset, direction, duration))
        if "dwell_h" in e:
            dwell = _num(e, "dwell_h", 0.0, where, source)
            if dwell <= 0:
                raise ScenarioError(f"{source}: {where}: dwell_h must be positive")
            begin = at + (duration if action is Action.CROSS else timedelta(0))
            events.append(Event(str(tid), begin + timedelta(hours=dwell), Action.LEAVE))
    events.sort(key=lambda ev: (ev.at, ev.train_id))
    _check_sequences(events, source)
    scenes: list[SceneSpec] = []
    for i, s in enumerate(_table(doc, "scenes", source)):
        where = f"scenes[{i}]"
        at = _time(s.get("at"), f"{where}.at", source)
        shift = s.get("shift_m", [0.0, 0.0])
        if (
            not isinstance(shift, list) or len(shift) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in shift)
        ):
            raise ScenarioError(f"{source}: {where}: shift_m must be [east, north] in metres")
        try:
            season = Season(str(s.get("season", "early_autumn")))
        except ValueError:
            raise ScenarioError(
                f"{source}: {where}: season {s.get('season')!r} is not one of "
                f"{', '.join(x.value for x in Season)}"
            ) from None
        try:
            scenes.append(SceneSpec(
                at=at,
                gsd=_num(s, "gsd", 0.5, where, source),
                cloud_fraction=_num(s, "cloud_fraction", 0.0, where, source),
                shift_m=(float(shift[0]), float(shift[1])),
                haze=_num(s, "haze", 0.05, where, source),
                season=season,
                noise=_num(s, "noise", 4.0, where, source),
                off_nadir_deg=_num(s, "off_nadir_deg", 0.0, where, source),
                view_azimuth_deg=_num(s, "view_azimuth_deg", 0.0, where, source),
                seed=seed * 1000 + i,
            ))
        except ValueError as exc:
            raise ScenarioError(f"{source}: {where}: {exc}") from None
        if not start <= at <= end:
            raise ScenarioError(f"{source}: {where}: time {at:%Y-%m-%d %H:%M} is outside start–end")
    scenes.sort(key=lambda sc: sc.at)
    stamps = [sc.stamp for sc in scenes]
    if len(set(stamps)) != len(stamps):
        raise ScenarioError(f"{source}: two scenes share the same minute; file names would clash")
    name = doc.get("name", site)
    return Scenario(site, start, end, tuple(trains), tuple(events), tuple(scenes), seed,
                    str(name), source)


def _check_sequences(events: Sequence[Event], source: str) -> None:
    present: dict[str, bool] = {}
    for ev in events:
        here = present.get(ev.train_id, False)
        if ev.action is Action.ARRIVE and here:
            raise ScenarioError(
                f"{source}: train {ev.train_id!r} arrives at {ev.at:%Y-%m-%d %H:%M} while already "
                "at the site; add a `leave` event first or use `cross`"
            )
        if ev.action is Action.LEAVE and not here:
            raise ScenarioError(
                f"{source}: train {ev.train_id!r} leaves at {ev.at:%Y-%m-%d %H:%M} but is not at "
                "the site then"
            )
        present[ev.train_id] = ev.action is not Action.LEAVE


def train_states(scenario: Scenario, when: datetime) -> list[TrainState]:
    """Where each train present at the site is at ``when``."""
    states: list[TrainState] = []
    for train in scenario.trains:
        state: TrainState | None = None
        for ev in scenario.events:
            if ev.train_id != train.train_id or ev.at > when:
                continue
            if ev.action is Action.ARRIVE:
                state = TrainState(train, ev.track, ev.offset_m)
            elif ev.action is Action.LEAVE:
                state = None
            elif ev.track is not None:  # cross (its track was checked when parsed)
                done = ev.at + ev.duration
                if when >= done:
                    state = TrainState(train, ev.track, ev.offset_m)
                else:
                    frm = (state.track, state.offset_m) if state and state.track else None
                    progress = (when - ev.at) / ev.duration if ev.duration.total_seconds() else 1.0
                    state = TrainState(
                        train, None, direction=ev.direction, route_from=frm,
                        route_to=(ev.track, ev.offset_m), progress=float(progress),
                    )
        if state is not None:
            states.append(state)
    return states
