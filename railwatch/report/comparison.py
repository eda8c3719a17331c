"""Each reported figure beside the comparable measured quantity, with a verdict.

Like is paired with like:

- a ``snapshot`` figure for one date with the counted scene nearest in time that observed the
  zone (``days_apart`` says how far; beyond ``max_days_apart`` it is ``not_observed``);
- a ``snapshot`` figure for a date range with the scene of the largest count inside the range
  (an "at most N" over years is a statement about the fullest moment);
- a ``weekly`` figure with the weekly ``estimate`` of unique cars of the ISO week of its date.

``class`` ``any`` sums the classes; ``zone`` ``any`` sums the zones. The measured side is an
interval of true cars: for a snapshot, the detector count corrected by the model's precision
and recall (:func:`~railwatch.count.frames.true_count_interval`); for a week, ``low``–``high`` of the
series. The reported side is the qualifier's interval (:meth:`ReportedFigure.bounds`). Verdicts:
``consistent`` when the two intervals overlap, ``measured_higher`` / ``measured_lower`` when
the measured interval lies wholly above / below, ``not_observed`` when nothing comparable was
counted.

One figure is one row: the same count of the same class at the same place and time, quoted by
several outlets with different words (CSIS's "approximately 73", Meduza's "at least 73", the
Kyiv Independent's "up to 73"), is compared once, with the first source's qualifier (the table
lists the original first), and every outlet's qualifier and its own verdict listed beside it.
A figure whose date lies more than ``distant_days`` from every counted scene is ``distant``: it
is left out of the table and summarised in one line of the report.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from railwatch.classes import CLASSES
from railwatch.count.errormatrix import ErrorMatrix
from railwatch.count.frames import Z_90, CountInterval, FrameRow, true_count_interval
from railwatch.count.weekly import WeeklyRow, iso_week
from railwatch.detect.manifest import ClassMetrics
from railwatch.report.reported import ANY, Quantity, ReportedFigure

__all__ = [
    "COMPARISON_COLUMNS",
    "Comparison",
    "ComparisonSettings",
    "Verdict",
    "compare",
    "comparison_table",
    "distant_summary",
    "one_per_figure",
    "verdict_for",
]

COMPARISON_COLUMNS: tuple[str, ...] = (
    "date", "site", "zone", "class", "quantity", "qualifier", "reported", "reported_low",
    "reported_high", "measured_quantity", "measured", "estimate", "low", "high", "scene",
    "acquired", "week", "days_apart", "verdict", "quoted_as", "source", "url", "note",
)


class Verdict(enum.StrEnum):
    """How a measured interval relates to a reported one."""

    CONSISTENT = "consistent"
    MEASURED_HIGHER = "measured_higher"
    MEASURED_LOWER = "measured_lower"
    NOT_OBSERVED = "not_observed"


@dataclass(frozen=True, slots=True)
class ComparisonSettings:
    """``max_days_apart``: farthest scene (days) a single-date snapshot is compared with."""

    max_days_apart: float = 3.0
    z: float = Z_90
    #: A figure this many days from every counted scene is summarised, not listed.
    distant_days: float = 30.0

    def __post_init__(self) -> None:
        if self.max_days_apart < 0 or self.z <= 0 or self.distant_days < self.max_days_apart:
            raise ValueError("max_days_apart must be non-negative, z positive, distant_days >= "
                             "max_days_apart")


@dataclass(frozen=True, slots=True)
class Comparison:
    """A reported figure and what was measured for it.

    ``measured`` is the directly comparable number (a scene's detector count, or the weekly
    estimate); ``estimate``/``low``/``high`` the true-car estimate and 90% interval behind the
    verdict; ``scene``/``acquired``/``days_apart`` or ``week`` say what it was compared with.
    """

    figure: ReportedFigure
    verdict: Verdict
    measured_quantity: str = ""
    measured: float = math.nan
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    scene: str = ""
    acquired: datetime | None = None
    week: str = ""
    days_apart: float = math.nan
    note: str = ""
    #: The same figure as other outlets quoted it (their own qualifier and source).
    repeats: tuple[ReportedFigure, ...] = ()
    #: No counted scene lies within ``ComparisonSettings.distant_days`` of the figure's date.
    distant: bool = False

    @property
    def quoted_as(self) -> str:
        """Every outlet's qualifier, its source and the verdict under that qualifier."""
        def one(f: ReportedFigure) -> str:
            verdict = verdict_for(f, self.low, self.high).value
            return f"{f.qualifier.value} ({f.source}): {verdict}"

        return "; ".join(one(f) for f in (self.figure, *self.repeats))

    def __post_init__(self) -> None:
        if self.verdict is not Verdict.NOT_OBSERVED and math.isnan(self.low):
            raise ValueError("an observed comparison needs a measured interval")

    def row(self) -> dict[str, object]:
        f = self.figure
        lo, hi = f.bounds()
        return {
            "date": f.date_label, "site": f.site, "zone": f.zone, "class": f.class_name,
            "quantity": f.quantity.value, "qualifier": f.qualifier.value, "reported": f.count,
            "reported_low": lo, "reported_high": hi, "measured_quantity": self.measured_quantity,
            "measured": self.measured, "estimate": self.estimate, "low": self.low,
            "high": self.high, "scene": self.scene,
            "acquired": self.acquired.isoformat() if self.acquired else "",
            "week": self.week, "days_apart": self.days_apart, "verdict": self.verdict.value,
            "quoted_as": self.quoted_as,
            "source": "; ".join(dict.fromkeys(x.source for x in (f, *self.repeats))),
            "url": f.url, "note": "; ".join(x for x in (f.note, self.note) if x),
        }


def verdict_for(figure: ReportedFigure, low: float, high: float) -> Verdict:
    """Compare the measured interval [low, high] (NaN high: unbounded) with the figure's."""
    if math.isnan(low):
        return Verdict.NOT_OBSERVED
    r_low, r_high = figure.bounds()
    high = math.inf if math.isnan(high) else high
    if low > r_high:
        return Verdict.MEASURED_HIGHER
    if high < r_low:
        return Verdict.MEASURED_LOWER
    return Verdict.CONSISTENT


def compare(
    figures: Sequence[ReportedFigure],
    frames: Sequence[FrameRow],
    weekly: Sequence[WeeklyRow],
    metrics: Mapping[str, ClassMetrics],
    site: str,
    zones: Sequence[str],
    settings: ComparisonSettings | None = None,
    matrix: ErrorMatrix | None = None,
    conditions: Mapping[str, tuple[float, float]] | None = None,
) -> list[Comparison]:
    """Compare every figure with the per-scene ``frames`` rows and ``weekly`` rows of ``site``.

    Snapshot counts become true-car intervals through the system's error ``matrix`` when the
    model has one (each scene's own condition's, from ``conditions``: scene → native gsd and sun
    elevation), else through the per-class precision and recall ``metrics``."""
    s = settings or ComparisonSettings()
    out = []
    for f, repeats in one_per_figure(figures):
        compared = _compare_one(f, frames, weekly, metrics, site, zones, s, matrix, conditions or {})
        out.append(replace(compared, repeats=repeats))
    return out


def one_per_figure(figures: Sequence[ReportedFigure]
                   ) -> list[tuple[ReportedFigure, tuple[ReportedFigure, ...]]]:
    """The figures with repeats folded in: one entry per (dates, site, zone, class, count,
    quantity), the first listed as the figure, the others as its repeats, in table order."""
    groups: dict[tuple[object, ...], list[ReportedFigure]] = {}
    for f in figures:
        key = (f.start, f.end, f.site, f.zone, f.class_name, f.count, f.quantity)
        groups.setdefault(key, []).append(f)
    return [(g[0], tuple(g[1:])) for g in groups.values()]


def _compare_one(
    f: ReportedFigure,
    frames: Sequence[FrameRow],
    weekly: Sequence[WeeklyRow],
    metrics: Mapping[str, ClassMetrics],
    site: str,
    zones: Sequence[str],
    s: ComparisonSettings,
    matrix: ErrorMatrix | None,
    conditions: Mapping[str, tuple[float, float]],
) -> Comparison:
    if f.site != site:
        return Comparison(f, Verdict.NOT_OBSERVED,
                          note=f"figure is for site {f.site!r}, these counts for {site!r}")
    if f.zone != ANY and f.zone not in zones:
        return Comparison(f, Verdict.NOT_OBSERVED, note=f"site {site!r} has no zone {f.zone!r}")
    if f.quantity is Quantity.SNAPSHOT:
        return _marked_distant(_snapshot(f, frames, metrics, zones, s, matrix, conditions), frames, s)
    return _marked_distant(_weekly(f, weekly, zones), frames, s)


def _marked_distant(c: Comparison, frames: Sequence[FrameRow], s: ComparisonSettings) -> Comparison:
    """``c`` marked ``distant`` when no counted scene lies within ``s.distant_days`` of its dates."""
    if c.verdict is not Verdict.NOT_OBSERVED or not frames:
        return c
    f = c.figure
    start = datetime(f.start.year, f.start.month, f.start.day, tzinfo=UTC)
    end = datetime(f.end.year, f.end.month, f.end.day, tzinfo=UTC) + timedelta(days=1)
    nearest = min(0.0 if start <= r.acquired < end else
                  min(abs((r.acquired - start).total_seconds()), abs((r.acquired - end).total_seconds()))
                  for r in frames) / 86_400
    if nearest <= s.distant_days:
        return c
    return replace(c, distant=True, days_apart=round(nearest, 2))


def distant_summary(comparisons: Sequence[Comparison]) -> str:
    """One line for the figures too far from every counted scene to compare ("" when none)."""
    far = [c for c in comparisons if c.distant]
    if not far:
        return ""
    days = [c.days_apart for c in far]
    return (f"{len(far)} reported figures lie {min(days):.0f}–{max(days):.0f} days from every scene "
            f"counted here and are not compared ({', '.join(sorted({c.figure.date_label for c in far}))}); "
            "count scenes of those dates to test them.")


def comparison_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row per figure compared (distant figures left out: see :func:`distant_summary`)."""
    return pd.DataFrame.from_records([c.row() for c in comparisons if not c.distant],
                                     columns=list(COMPARISON_COLUMNS))


def _selection(f: ReportedFigure, zones: Sequence[str]) -> tuple[list[str], list[str]]:
    return ([*zones] if f.zone == ANY else [f.zone],
            [*CLASSES] if f.class_name == ANY else [f.class_name])


def _snapshot(
    f: ReportedFigure,
    frames: Sequence[FrameRow],
    metrics: Mapping[str, ClassMetrics],
    zones: Sequence[str],
    s: ComparisonSettings,
    matrix: ErrorMatrix | None,
    conditions: Mapping[str, tuple[float, float]],
) -> Comparison:
    want_zones, want_classes = _selection(f, zones)
    by_scene: dict[tuple[str, datetime], list[FrameRow]] = {}  # every class of the zones
    for r in frames:
        if r.zone in want_zones:
            by_scene.setdefault((r.scene, r.acquired.astimezone(UTC)), []).append(r)
    per_scene = []
    for (scene, acquired), seen in by_scene.items():
        rows = [r for r in seen if r.class_name in want_classes]
        if not all(r.observed for r in rows) or {r.zone for r in rows} != set(want_zones):
            continue  # a zone of the figure was not observed in this scene
        interval = CountInterval(0.0, 0.0, 0.0, 0.0)
        if matrix is not None:  # each zone's counts of every class, corrected by the error matrix
            by_zone: dict[str, dict[str, float]] = {}
            for r in seen:
                by_zone.setdefault(r.zone, {})[r.class_name] = r.count
            own = matrix.for_scene(*conditions.get(scene, (math.nan, math.nan)))
            for counts in by_zone.values():
                interval = interval + own.correct_selected(counts, want_classes, s.z)
        else:
            for r in rows:
                interval = interval + true_count_interval(r.count, metrics[r.class_name], s.z)
        per_scene.append((scene, acquired, float(sum(r.count for r in rows)), interval))
    if not per_scene:
        return Comparison(f, Verdict.NOT_OBSERVED, note="no counted scene observed the zone")
    start = datetime(f.start.year, f.start.month, f.start.day, tzinfo=UTC)
    end = datetime(f.end.year, f.end.month, f.end.day, tzinfo=UTC) + timedelta(days=1)

    def days_apart(t: datetime) -> float:
        if start <= t < end:
            return 0.0
        return min(abs((t - start).total_seconds()), abs((t - end).total_seconds())) / 86_400

    if f.is_range:
        inside = [p for p in per_scene if days_apart(p[1]) == 0.0]
        if not inside:
            return Comparison(f, Verdict.NOT_OBSERVED, note="no counted scene in the date range")
        chosen = max(inside, key=lambda p: (p[2], p[1]))
        quantity = "largest scene count in the range"
    else:
        chosen = min(per_scene, key=lambda p: (days_apart(p[1]), p[1]))
        quantity = "scene count"
    scene, acquired, count, interval = chosen
    apart = round(days_apart(acquired), 2)
    if apart > s.max_days_apart:
        return Comparison(
            f, Verdict.NOT_OBSERVED, scene=scene, acquired=acquired, days_apart=apart,
            note=f"nearest counted scene is {apart:g} days away (more than {s.max_days_apart:g})",
        )
    return Comparison(
        f, verdict_for(f, interval.low, interval.high), measured_quantity=quantity,
        measured=count, estimate=interval.estimate, low=interval.low, high=interval.high,
        scene=scene, acquired=acquired, days_apart=apart,
    )


def _weekly(f: ReportedFigure, weekly: Sequence[WeeklyRow], zones: Sequence[str]) -> Comparison:
    want_zones, want_classes = _selection(f, zones)
    week = iso_week(f.start)
    note = "" if iso_week(f.end) == week else f"range spans several weeks; compared with {week}"
    sel = [r for r in weekly
           if r.week == week and r.zone in want_zones and r.class_name in want_classes]
    if (not sel or any(math.isnan(r.estimate) for r in sel)
            or len(sel) != len(want_zones) * len(want_classes)):
        return Comparison(f, Verdict.NOT_OBSERVED, week=week,
                          note="; ".join(x for x in (note, f"no weekly estimate for {week}") if x))
    # A NaN ``high`` (unknown) stays NaN in the sum: unknown, not zero.
    est, low, high = (sum(r.estimate for r in sel), sum(r.low for r in sel),
                      sum(r.high for r in sel))
    return Comparison(
        f, verdict_for(f, low, high), measured_quantity="weekly estimate of unique cars",
        measured=est, estimate=est, low=low, high=high, week=week, note=note,
    )
