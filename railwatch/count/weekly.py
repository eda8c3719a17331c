"""Weekly series per ISO week × zone × class, from the counted scenes of a site.

For each zone the scenes that observed it (coverage ≥ ``min_coverage``) are taken in time order;
each consecutive pair is co-registered (:mod:`railwatch.count.registration`) and its cars matched
(:mod:`railwatch.count.matching`): parked cars, arrivals, departures. ``weekly.csv`` columns:

- ``week`` (ISO week, e.g. ``2023-W40``) and ``week_start`` (its Monday, UTC).
- ``n_scenes``: scenes acquired in the week that observed the zone.
- ``peak``: the largest detector count of one of those scenes (a snapshot: cars present at once).
- ``mean``: the mean detector count of those scenes.
- ``arrivals``: detected cars not matched to a car of the previous observed scene, summed over
  the scenes of the week (the previous scene may lie in the week before). NaN with no such pair.
- ``estimate``: unique cars present in the zone at some time during the week (true cars, not
  detections), with a 90% interval ``low``–``high`` (see below).
- ``coverage``: mean coverage of the zone over all scenes acquired in the week (NaN: no scene).

The estimator (per zone × class; ``p``, ``r`` the model's measured precision and recall):

1. A detector count ``n`` stands for ``n·p/r`` true cars
   (:func:`~railwatch.count.frames.true_count_interval`).
   Between two observed scenes with ``m`` matched cars, ``a`` unmatched later cars and ``d``
   unmatched earlier cars, the true arrivals are ``(a − n_later·(1−p) − m·(1−r)/r) / r``:
   detections that are false, and parked cars missed in the earlier scene, also look like
   arrivals. Departures likewise; cars parked throughout ``m/r²``.
2. Seen in the week: the true count of its first observed scene plus the true arrivals at each
   later observed scene of the week.
3. Gaps across a week boundary: a car that left between the last scene before the week and the
   first in it was present in the week if it left after Monday 00:00; with the time of leaving
   uniform over the gap that happens with probability (part of the gap inside the week) / gap.
   Arrivals in a gap across the week's end likewise. The estimate adds these expectations;
   ``low`` adds none of them, ``high`` all. A week with no observed scene but observed scenes on
   both sides gets the cars parked across the gap plus these expectations.
4. Cars that came and went between two scenes, or before the first / after the last scene of
   the series, are never seen. The point estimate cannot know them and adds nothing; ``high``
   adds, for every stretch of unobserved time in the week, the cars the crossing's turnover
   rate would bring in that time, less the arrivals actually seen for it. The rate is the
   larger of the zone's own and the whole site's (true arrivals and departures of the class
   over all zones, per day): a car that passes through one zone unseen (a train crossing the
   bridge in minutes, a visit hidden by cloud) is part of the traffic of the crossing. Cars
   come in trains, not one by one, so the margin on that allowance is compound-Poisson:
   ``z·sqrt(allowance × mean train batch)``, the batch being the mean true arrivals of the class
   per scene pair that saw any. Clouded scenes lengthen the gaps and so widen the interval.
   With fewer than two observed scenes on the whole site the rate is unknown and ``high`` is
   NaN (unknown, not zero).
5. ``low`` and ``high`` also carry the detector's sampling error (±1.645 sd of steps 1–2).

Assumptions: ``p`` and ``r`` hold for this imagery (the gap between test and real imagery is
not in the interval); a car that leaves never returns within a gap; the same car keeps its
class; a zone's counts are of its observed part; partial cloud (coverage between
``min_coverage`` and 1) is not corrected for and inflates arrivals and departures a little.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd

from railwatch.classes import CLASSES
from railwatch.count.errormatrix import ErrorMatrix
from railwatch.count.frames import (
    DEFAULT_MIN_COVERAGE,
    MIN_RECALL,
    Z_90,
    CountedScene,
    missed_bound,
    true_count_interval,
)
from railwatch.count.matching import DEFAULT_MATCH_TOLERANCE, CarMatch, match_cars
from railwatch.count.registration import Registration, RegistrationSettings, register
from railwatch.detect.manifest import ClassMetrics

__all__ = [
    "WEEKLY_COLUMNS",
    "PairMatcher",
    "SeriesSettings",
    "Transition",
    "WeekEstimate",
    "WeeklyRow",
    "ZoneClassSeries",
    "estimate_week",
    "iso_week",
    "site_turnover",
    "turnover_rate",
    "week_starts",
    "weekly_frame",
    "weekly_rows",
    "weekly_table",
    "zone_class_series",
]

#: Columns of ``weekly.csv`` (docs/design.md), in order.
WEEKLY_COLUMNS: tuple[str, ...] = (
    "week", "week_start", "zone", "class", "n_scenes", "peak", "mean", "arrivals",
    "estimate", "low", "high", "coverage",
)

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SeriesSettings:
    """Options of the aggregation, in one place."""

    min_coverage: float = DEFAULT_MIN_COVERAGE
    z: float = Z_90
    match_tolerance: float = DEFAULT_MATCH_TOLERANCE
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if self.z <= 0 or self.match_tolerance <= 0:
            raise ValueError("z and match_tolerance must be positive")


@dataclass(frozen=True, slots=True)
class Transition:
    """What changed in one zone and class between two consecutive observed scenes."""

    start: datetime
    end: datetime
    n_start: int
    n_end: int
    parked: int
    arrivals: int
    departures: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a transition must go forward in time ({self.start} → {self.end})")
        if min(self.n_start, self.n_end, self.parked, self.arrivals, self.departures) < 0:
            raise ValueError("counts must be non-negative")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / _DAY_S


@dataclass(frozen=True, slots=True)
class ZoneClassSeries:
    """The observed scenes of one zone × class: times, detector counts, and the transitions."""

    zone: str
    class_name: str
    times: tuple[datetime, ...]
    counts: tuple[int, ...]
    transitions: tuple[Transition, ...]
    #: Per observed scene, the zone's detector counts of every class (for the error matrix).
    class_counts: tuple[dict[str, int], ...] = ()
    #: Per observed scene, its native gsd and sun elevation (which error matrix corrects it).
    conditions: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.times):
            raise ValueError("one count per time")
        if self.class_counts and len(self.class_counts) != len(self.times):
            raise ValueError("one set of class counts per time")
        if len(self.transitions) != max(0, len(self.times) - 1):
            raise ValueError("one transition between each pair of consecutive times")
        if any(b <= a for a, b in pairwise(self.times)):
            raise ValueError("times must increase strictly")


@dataclass(frozen=True, slots=True)
class WeeklyRow:
    """One ``weekly.csv`` row (module docstring); NaN where a quantity is unknown."""

    week: str
    week_start: str
    zone: str
    class_name: str
    n_scenes: int
    peak: float
    mean: float
    arrivals: float
    estimate: float
    low: float
    high: float
    coverage: float

    def __post_init__(self) -> None:
        if self.class_name not in CLASSES:
            raise ValueError(f"unknown class {self.class_name!r}")
        if self.n_scenes < 0:
            raise ValueError(f"n_scenes must be non-negative, got {self.n_scenes}")

    def record(self) -> dict[str, object]:
        """The row under ``weekly.csv``'s column names."""
        return {
            "week": self.week, "week_start": self.week_start, "zone": self.zone,
            "class": self.class_name, "n_scenes": self.n_scenes, "peak": self.peak,
            "mean": self.mean, "arrivals": self.arrivals, "estimate": self.estimate,
            "low": self.low, "high": self.high, "coverage": self.coverage,
        }


@dataclass(frozen=True, slots=True)
class WeekEstimate:
    """Unique true cars present during a week: estimate and 90% interval (NaN: unknown)."""

    estimate: float
    low: float
    high: float


class PairMatcher:
    """Registers and matches pairs of scenes on demand, each pair once.

    Registration uses all cars of both scenes (every zone and class): more tie points, and the
    scenes' geolocation error is one shift for the whole scene.
    """

    def __init__(self, scenes: Sequence[CountedScene], settings: SeriesSettings) -> None:
        self._scenes = scenes
        self._settings = settings
        self._cache: dict[tuple[int, int], tuple[Registration, CarMatch]] = {}

    def __call__(self, i: int, j: int) -> tuple[Registration, CarMatch]:
        if (i, j) not in self._cache:
            a, b = self._scenes[i].detections, self._scenes[j].detections
            reg = register(a.centres, a.class_id, b.centres, b.class_id, self._settings.registration)
            match = match_cars(
                a.centres, a.class_id, b.centres, b.class_id, reg, self._settings.match_tolerance
            )
            self._cache[(i, j)] = (reg, match)
        return self._cache[(i, j)]

    def registrations(self) -> dict[tuple[str, str], Registration]:
        """The registrations computed so far, by scene names."""
        return {
            (self._scenes[i].scene, self._scenes[j].scene): reg
            for (i, j), (reg, _) in sorted(self._cache.items())
        }


def iso_week(t: datetime | date) -> str:
    """``2023-W40`` for any moment of that ISO week."""
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def week_starts(first: datetime, last: datetime) -> list[datetime]:
    """Mondays 00:00 UTC of every ISO week from the one holding ``first`` to ``last``'s."""
    d0 = first.astimezone(UTC).date()
    monday = datetime(d0.year, d0.month, d0.day, tzinfo=UTC) - timedelta(days=d0.weekday())
    out = []
    while monday <= last:
        out.append(monday)
        monday += timedelta(days=7)
    return out


def zone_class_series(
    scenes: Sequence[CountedScene],
    zone: str,
    class_name: str,
    matcher: PairMatcher,
    settings: SeriesSettings,
) -> ZoneClassSeries:
    """The scenes (sorted by time) that observed ``zone``, and what changed between each pair."""
    cls_id = CLASSES.index(class_name)
    observed = [i for i, s in enumerate(scenes) if s.observed(zone, settings.min_coverage)]

    def selected(k: int) -> np.ndarray:
        d = scenes[k].detections
        if not len(d):
            return np.zeros(0, dtype=bool)
        return np.asarray(np.equal(d.zone, zone) & (d.class_id == cls_id))

    class_counts = [scenes[k].detections.class_counts(zone) for k in observed]
    counts = [c[class_name] for c in class_counts]

    transitions = []
    for (i, j), (n_i, n_j) in zip(pairwise(observed), pairwise(counts), strict=True):
        _, match = matcher(i, j)
        sel_i, sel_j = selected(i), selected(j)
        parked = int(sel_j[match.pairs[:, 1]].sum()) if len(match.pairs) else 0
        transitions.append(
            Transition(
                start=scenes[i].acquired,
                end=scenes[j].acquired,
                n_start=n_i,
                n_end=n_j,
                parked=parked,
                arrivals=int(sel_j[match.arrivals].sum()) if len(match.arrivals) else 0,
                departures=int(sel_i[match.departures].sum()) if len(match.departures) else 0,
            )
        )
    return ZoneClassSeries(
        zone, class_name, tuple(scenes[k].acquired for k in observed), tuple(counts),
        tuple(transitions), tuple(class_counts),
        tuple((scenes[k].gsd, scenes[k].sun_elevation) for k in observed),
    )


def _true_moves(tr: Transition, m: ClassMetrics) -> tuple[float, float, float, float]:
    """True arrivals, their variance, true departures, and cars parked throughout."""
    p, r = m.precision, max(m.recall, MIN_RECALL)
    missed_parked = tr.parked * (1 - r) / r
    arr = max(0.0, (tr.arrivals - tr.n_end * (1 - p) - missed_parked) / r)
    dep = max(0.0, (tr.departures - tr.n_start * (1 - p) - missed_parked) / r)
    return arr, tr.arrivals / r**2, dep, tr.parked / r**2


def turnover_rate(series: ZoneClassSeries, metrics: ClassMetrics) -> float:
    """Mean true arrivals and departures per day over the series (NaN under two scenes)."""
    if len(series.times) < 2:
        return math.nan
    span = (series.times[-1] - series.times[0]).total_seconds() / _DAY_S
    moves = [_true_moves(tr, metrics) for tr in series.transitions]
    return (sum(a for a, _, _, _ in moves) + sum(d for _, _, d, _ in moves)) / 2 / span


def site_turnover(
    series: Sequence[ZoneClassSeries], metrics: ClassMetrics, span_days: float
) -> tuple[float, float]:
    """Turnover of one class over all zones of the site (true cars per day; NaN if no span),
    and the mean true arrivals per scene pair that saw any (the typical train batch, ≥ 1)."""
    moves = [_true_moves(tr, metrics) for ser in series for tr in ser.transitions]
    if span_days <= 0:
        return math.nan, 1.0
    rate = (sum(a for a, _, _, _ in moves) + sum(d for _, _, d, _ in moves)) / 2 / span_days
    batches = [a for a, _, _, _ in moves if a >= 1.0]
    return rate, max(1.0, float(np.mean(batches))) if batches else 1.0


def estimate_week(
    series: ZoneClassSeries,
    week_start: datetime,
    metrics: ClassMetrics,
    rate: float,
    z: float = Z_90,
    batch: float = 1.0,
    matrix: ErrorMatrix | None = None,
) -> WeekEstimate:
    """Unique true cars of the series' zone × class present during the week (module docstring).

    ``rate``: turnover (true cars per day) allowed for in unobserved time; ``batch``: mean
    number of cars that arrive together (1 for a Poisson margin); ``matrix``: the system's error
    matrix, which then corrects the snapshot counts from the zone's counts of every class.
    """
    w0, w1 = week_start, week_start + timedelta(days=7)
    times, n, trs = series.times, series.counts, series.transitions
    inside = [k for k, t in enumerate(times) if w0 <= t < w1]
    seen = seen_var = expected = extra_high = 0.0
    unobserved: list[tuple[float, float, float]] = []  # (days in week, gap days, seen arrivals)
    edge_days = 0.0

    def frac(part: timedelta, tr: Transition) -> float:
        return part.total_seconds() / _DAY_S / tr.days

    if inside:
        f, last = inside[0], inside[-1]
        if matrix is not None and series.class_counts:
            if series.conditions:
                matrix = matrix.for_scene(*series.conditions[f])
            first = matrix.correct_selected(series.class_counts[f], [series.class_name], z)
        else:
            first = true_count_interval(n[f], metrics)
        seen, seen_var = first.estimate, first.sd**2
        for k in inside[1:]:
            arr, var, _, _ = _true_moves(trs[k - 1], metrics)
            seen += arr
            seen_var += var
            unobserved.append((trs[k - 1].days, trs[k - 1].days, arr))
        if f > 0:
            tr = trs[f - 1]
            arr, _, dep, _ = _true_moves(tr, metrics)
            expected += dep * frac(times[f] - w0, tr)
            extra_high += dep
            unobserved.append(((times[f] - w0).total_seconds() / _DAY_S, tr.days, arr))
        else:
            edge_days += (times[f] - w0).total_seconds() / _DAY_S
        if last < len(times) - 1:
            tr = trs[last]
            arr, _, _, _ = _true_moves(tr, metrics)
            expected += arr * frac(w1 - times[last], tr)
            extra_high += arr
            unobserved.append(((w1 - times[last]).total_seconds() / _DAY_S, tr.days, arr))
        else:
            edge_days += (w1 - times[last]).total_seconds() / _DAY_S
    else:
        before = [k for k, t in enumerate(times) if t < w0]
        if not before or before[-1] == len(times) - 1:
            return WeekEstimate(math.nan, math.nan, math.nan)
        a = before[-1]
        tr = trs[a]
        arr, _, dep, parked = _true_moves(tr, metrics)
        r = max(metrics.recall, MIN_RECALL)
        seen, seen_var = parked, tr.parked * (1 - r**2) / r**4
        expected += dep * frac(times[a + 1] - w0, tr) + arr * frac(w1 - times[a], tr)
        extra_high += dep + arr
        unobserved.append((7.0, tr.days, arr))

    sd = math.sqrt(seen_var)
    allowance = rate * edge_days if edge_days > 0 else 0.0
    for in_week, gap, arr in unobserved:
        allowance += math.nan if math.isnan(rate) else max(0.0, (rate - arr / gap) * in_week)
    estimate = seen + expected
    low = max(0.0, seen - z * sd)
    # NaN allowance (rate unknown, some time unobserved) makes ``high`` NaN: unknown, not zero.
    # As for one scene: never claim fewer than the cars the detector could have missed unseen.
    seen_high = seen + max(z * sd, missed_bound(metrics.recall, z))
    high = seen_high + extra_high + allowance + z * math.sqrt(allowance * max(batch, 1.0))
    return WeekEstimate(estimate, min(low, estimate), high)


def weekly_table(
    scenes: Sequence[CountedScene],
    zones: Sequence[str],
    metrics: Mapping[str, ClassMetrics],
    settings: SeriesSettings | None = None,
    classes: Sequence[str] = CLASSES,
    matrix: ErrorMatrix | None = None,
) -> pd.DataFrame:
    """``weekly.csv`` as a DataFrame: every ISO week from the first scene's to the last's.

    With the system's error ``matrix`` (two-stage models measure one), snapshot counts are
    corrected by it and the per-class precision and recall come from it too.
    """
    return weekly_frame(weekly_rows(scenes, zones, metrics, settings, classes, matrix))


def weekly_frame(rows: Sequence[WeeklyRow]) -> pd.DataFrame:
    """Weekly rows as ``weekly.csv``'s DataFrame, in their order."""
    return pd.DataFrame.from_records([r.record() for r in rows], columns=list(WEEKLY_COLUMNS))


def weekly_rows(
    scenes: Sequence[CountedScene],
    zones: Sequence[str],
    metrics: Mapping[str, ClassMetrics],
    settings: SeriesSettings | None = None,
    classes: Sequence[str] = CLASSES,
    matrix: ErrorMatrix | None = None,
) -> list[WeeklyRow]:
    """Every ISO week × zone × class from the first scene's week to the last's, by week and
    then in the order of ``zones`` and ``classes`` (``matrix``: as for :func:`weekly_table`)."""
    s = settings or SeriesSettings()
    if matrix is not None:
        metrics = matrix.class_metrics()
    ordered = sorted(scenes, key=lambda c: c.acquired)
    if not ordered:
        return []
    matcher = PairMatcher(ordered, s)
    weeks = week_starts(ordered[0].acquired, ordered[-1].acquired)
    span_days = (ordered[-1].acquired - ordered[0].acquired).total_seconds() / _DAY_S
    rows = []
    for cls in classes:
        series = [zone_class_series(ordered, zone, cls, matcher, s) for zone in zones]
        site_rate, batch = site_turnover(series, metrics[cls], span_days)
        for ser in series:
            rate = turnover_rate(ser, metrics[cls])
            rate = site_rate if math.isnan(rate) else max(rate, site_rate)
            for w0 in weeks:
                rows.append(_week_row(ser, ordered, w0, metrics[cls], rate, batch, s, matrix))
    order = {z: i for i, z in enumerate(zones)}
    return sorted(rows, key=lambda r: (r.week, order[r.zone]))  # stable: classes keep their order


def _week_row(
    ser: ZoneClassSeries,
    scenes: Sequence[CountedScene],
    w0: datetime,
    metrics: ClassMetrics,
    rate: float,
    batch: float,
    s: SeriesSettings,
    matrix: ErrorMatrix | None = None,
) -> WeeklyRow:
    w1 = w0 + timedelta(days=7)
    in_week = [k for k, t in enumerate(ser.times) if w0 <= t < w1]
    counts = [ser.counts[k] for k in in_week]
    arrivals = [ser.transitions[k - 1].arrivals for k in in_week if k > 0]
    cov = [c.coverage.get(ser.zone, 0.0) for c in scenes if w0 <= c.acquired < w1]
    est = estimate_week(ser, w0, metrics, rate, s.z, batch, matrix)
    return WeeklyRow(
        week=iso_week(w0),
        week_start=w0.date().isoformat(),
        zone=ser.zone,
        class_name=ser.class_name,
        n_scenes=len(in_week),
        peak=float(max(counts)) if counts else math.nan,
        mean=float(np.mean(counts)) if counts else math.nan,
        arrivals=float(sum(arrivals)) if arrivals else math.nan,
        estimate=est.estimate,
        low=est.low,
        high=est.high,
        coverage=float(np.mean(cov)) if cov else math.nan,
    )
