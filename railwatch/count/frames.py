"""Per-scene counts: one row per scene × zone × class, with the zone's coverage.

A zone that a scene did not see well enough (coverage below ``min_coverage``: under cloud,
outside the footprint, no-data) is *not observed*: its count is NaN, never zero. Counts are
detector counts (what the model found); :func:`true_count_interval` turns a detector count into
an estimate of the true number of cars with an interval, from the model's measured precision
and recall.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from railwatch.classes import CLASSES
from railwatch.detect.detections import Detections
from railwatch.detect.manifest import ClassMetrics

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "FRAME_COLUMNS",
    "MIN_RECALL",
    "Z_90",
    "CountInterval",
    "CountedScene",
    "FrameRow",
    "class_table",
    "frame_rows",
    "frames_table",
    "missed_bound",
    "true_count_interval",
]

@dataclass(frozen=True, slots=True)
class CountedScene:
    """What aggregation needs of one counted scene: when, what each zone showed, how much of it.

    ``detections`` are in the site CRS with zones assigned; ``coverage`` maps every zone of the
    site to the fraction of it the scene observed.
    """

    scene: str
    acquired: datetime
    coverage: Mapping[str, float]
    detections: Detections
    #: The scene's native ground sample distance (m) and the sun's elevation over the site at
    #: its acquisition time (°): which error matrix corrects it (NaN: unknown, the pooled one).
    gsd: float = math.nan
    sun_elevation: float = math.nan

    def __post_init__(self) -> None:
        if self.acquired.tzinfo is None:
            raise ValueError(f"{self.scene}: acquisition time must be timezone-aware")
        if any(not 0.0 <= c <= 1.0 for c in self.coverage.values()):
            raise ValueError(f"{self.scene}: coverage must be fractions, got {dict(self.coverage)}")

    def observed(self, zone: str, min_coverage: float) -> bool:
        """Whether the zone was seen well enough to be counted."""
        return self.coverage.get(zone, 0.0) >= min_coverage



#: Below this fraction of valid, cloud-free pixels a zone counts as not observed in a scene.
DEFAULT_MIN_COVERAGE = 0.5

#: Two-sided 90% normal quantile used for every interval railwatch reports.
Z_90 = 1.6448536269514722

#: Columns of ``frames.csv`` (docs/design.md), in order.
FRAME_COLUMNS: tuple[str, ...] = ("scene", "acquired", "zone", "class", "count", "coverage")

#: Recall below this is treated as this when correcting counts (avoids dividing by ~0).
MIN_RECALL = 0.05


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One ``frames.csv`` row. ``count`` is NaN when the zone was not observed."""

    scene: str
    acquired: datetime
    zone: str
    class_name: str
    count: float
    coverage: float

    def __post_init__(self) -> None:
        if self.class_name not in CLASSES:
            raise ValueError(f"unknown class {self.class_name!r}")
        if not 0.0 <= self.coverage <= 1.0:
            raise ValueError(f"coverage must be a fraction, got {self.coverage}")
        if not math.isnan(self.count) and (self.count < 0 or self.count != int(self.count)):
            raise ValueError(f"count must be a non-negative integer or NaN, got {self.count}")

    @property
    def observed(self) -> bool:
        return not math.isnan(self.count)


@dataclass(frozen=True, slots=True)
class CountInterval:
    """An estimate of a true number of cars, its standard deviation and a 90% interval."""

    estimate: float
    sd: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low <= self.estimate <= self.high) and not math.isnan(self.estimate):
            raise ValueError(f"interval must contain the estimate, got {self}")

    @classmethod
    def from_moments(cls, estimate: float, variance: float, z: float = Z_90) -> CountInterval:
        sd = math.sqrt(max(variance, 0.0))
        return cls(estimate, sd, max(0.0, estimate - z * sd), estimate + z * sd)

    def __add__(self, other: CountInterval) -> CountInterval:
        """Sum of two independent counts: estimates and variances add; bounds add."""
        return CountInterval(
            self.estimate + other.estimate,
            math.hypot(self.sd, other.sd),
            self.low + other.low,
            self.high + other.high,
        )


def frame_rows(
    scene: CountedScene,
    zones: Sequence[str],
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    classes: Sequence[str] = CLASSES,
) -> list[FrameRow]:
    """Rows for every zone × class of one scene; NaN counts where the zone was not observed.

    ``min_coverage=0`` gives the raw detector counts of every zone (what the store keeps).
    """
    rows = []
    for zone in zones:
        cov = float(scene.coverage.get(zone, 0.0))
        found = scene.detections.class_counts(zone)
        seen = cov >= min_coverage
        for cls in classes:
            count = float(found.get(cls, 0)) if seen else math.nan
            rows.append(FrameRow(scene.scene, scene.acquired, zone, cls, count, cov))
    return rows


def frames_table(rows: Iterable[FrameRow]) -> pd.DataFrame:
    """``frames.csv`` as a DataFrame, sorted by time, zone and class order."""
    records = [
        {
            "scene": r.scene,
            "acquired": pd.Timestamp(r.acquired).tz_convert("UTC"),
            "zone": r.zone,
            "class": r.class_name,
            "count": r.count,
            "coverage": r.coverage,
        }
        for r in rows
    ]
    df = pd.DataFrame.from_records(records, columns=list(FRAME_COLUMNS))
    if df.empty:
        return df
    order = {c: i for i, c in enumerate(CLASSES)}
    df = df.sort_values(
        ["acquired", "scene", "zone", "class"],
        key=lambda s: s.map(order) if s.name == "class" else s,
        kind="stable",
    )
    return df.reset_index(drop=True)


def class_table(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per scene × zone, one column per class: the counts of ``frames_table``, with a
    zone a scene did not observe left empty (NaN) in every class, never 0 — no sum over zones
    or classes turns "not seen" into "no cars"."""
    if frames.empty:
        return pd.DataFrame(columns=list(CLASSES))
    table = frames.set_index(["acquired", "scene", "zone", "class"])["count"].unstack("class")
    return table.reindex(columns=[c for c in CLASSES if c in table.columns])


def true_count_interval(
    detected: float, metrics: ClassMetrics, z: float = Z_90
) -> CountInterval:
    """The true number of cars behind ``detected`` detections, from precision ``p`` and recall ``r``.

    Model: each detection is a true car with probability ``p`` (true positives ~ Binomial(n, p));
    each true car is detected with probability ``r``. Then the true count is ``n·p/r``, with
    variance ``n·p(1−p)/r²`` (which detections are false) ``+ (n·p/r)(1−r)/r`` (how many cars
    were missed). ``p`` and ``r`` are taken as exact: the error of their own measurement, and any
    gap between the test imagery and real imagery, is not in the interval.
    """
    if math.isnan(detected):
        return CountInterval(math.nan, math.nan, math.nan, math.nan)
    if detected < 0:
        raise ValueError(f"a count cannot be negative, got {detected}")
    p = metrics.precision
    r = max(metrics.recall, MIN_RECALL)
    estimate = detected * p / r
    variance = detected * p * (1 - p) / r**2 + estimate * (1 - r) / r
    normal = CountInterval.from_moments(estimate, variance, z)
    # Few detections: the normal interval collapses (none seen: [0, 0]), yet a detector that
    # misses cars can miss all of them. Never claim fewer than the cars it could miss unseen.
    high = max(normal.high, estimate + missed_bound(r, z))
    return CountInterval(normal.estimate, normal.sd, normal.low, high)


def missed_bound(recall: float, z: float = Z_90) -> float:
    """The most cars a detector of this recall could have missed every one of: the largest
    ``N`` with ``(1 - recall)^N`` at least the upper tail of the ``z`` interval (5% for the
    90% interval). 0 for a perfect detector; 2.5 cars at recall 0.7; 58 at recall 0.05."""
    if recall >= 1.0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return math.log(tail) / math.log1p(-max(recall, MIN_RECALL))
