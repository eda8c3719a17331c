"""Per-scene frames and the weekly series on synthetic histories with a known truth."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest
from fake_detector import boxes
from rasterio.crs import CRS

from railwatch.classes import CLASSES
from railwatch.count.frames import CountedScene, frame_rows, missed_bound, true_count_interval
from railwatch.count.weekly import (
    SeriesSettings,
    Transition,
    ZoneClassSeries,
    estimate_week,
    iso_week,
    weekly_table,
)
from railwatch.detect.detections import Detections
from railwatch.detect.manifest import ClassMetrics

CRS_ = CRS.from_epsg(32652)
PERFECT = {c: ClassMetrics(1.0, 1.0) for c in CLASSES}
MONDAY = datetime(2023, 10, 2, 3, 0, tzinfo=UTC)  # 2023-W40


def string(n: int, track: int, x0: float = 0.0, cls: str = "covered_car"):
    return [(x0 + 20.2 * k, 4.75 * track, cls) for k in range(n)]


def scene(name: str, t: datetime, cars, shift=(0.0, 0.0), coverage: float = 1.0,
          keep: np.ndarray | None = None) -> CountedScene:
    shifted = [(x + shift[0], y + shift[1], c) for x, y, c in cars]
    d = boxes(shifted, CRS_, name)
    if keep is not None:
        d = d[keep]
    d = Detections(d.corners, d.class_id, d.confidence, np.full(len(d), "yard", dtype=object),
                   d.scene, CRS_)
    return CountedScene(name, t, {"yard": coverage}, d)


def history(rng: np.random.Generator):
    """10 cars parked throughout; a 20-car train Tue–Thu of week 40; a clouded look in week 41."""
    parked = string(10, 0)
    train = string(20, 2, x0=15.0)
    looks = [
        (MONDAY, parked, 1.0),
        (MONDAY + timedelta(days=2), parked + train, 1.0),
        (MONDAY + timedelta(days=4), parked, 1.0),
        (MONDAY + timedelta(days=7), parked, 1.0),
        (MONDAY + timedelta(days=9), parked, 0.2),  # under cloud
        (MONDAY + timedelta(days=11), parked, 1.0),
    ]
    return [
        scene(f"s{i}", t, cars, shift=tuple(rng.uniform(-12, 12, 2)), coverage=cov)
        for i, (t, cars, cov) in enumerate(looks)
    ]


def test_an_unobserved_zone_is_nan_never_zero():
    s = scene("a", MONDAY, string(3, 0), coverage=0.3)
    rows = frame_rows(s, ["yard"])
    assert all(math.isnan(r.count) for r in rows) and rows[0].coverage == 0.3
    rows = frame_rows(s, ["yard"], min_coverage=0.25)
    assert [r.count for r in rows if r.class_name == "covered_car"] == [3]
    assert len(rows) == len(CLASSES)


def test_weekly_series_counts_parked_cars_once_and_adds_arrivals():
    weekly = weekly_table(history(np.random.default_rng(1)), ["yard"], PERFECT)
    covered = weekly[weekly["class"] == "covered_car"].set_index("week")
    w40, w41 = covered.loc["2023-W40"], covered.loc["2023-W41"]
    assert (w40["n_scenes"], w40["peak"], w40["arrivals"]) == (3, 30, 20)
    assert w40["mean"] == pytest.approx(50 / 3)
    assert w40["estimate"] == pytest.approx(30)  # 10 parked + the 20-car train
    assert w40["low"] <= 30 <= w40["high"]
    assert (w41["n_scenes"], w41["peak"], w41["estimate"]) == (2, 10, pytest.approx(10))
    assert w41["low"] <= 10 <= w41["high"]
    assert w41["coverage"] == pytest.approx((1 + 0.2 + 1) / 3)
    assert list(weekly.columns) == ["week", "week_start", "zone", "class", "n_scenes", "peak",
                                    "mean", "arrivals", "estimate", "low", "high", "coverage"]
    assert set(weekly["week_start"]) == {"2023-10-02", "2023-10-09"}


def test_without_registration_the_shifted_scenes_would_inflate_the_estimate():
    scenes = history(np.random.default_rng(1))
    tight = SeriesSettings(registration=SeriesSettings().registration.__class__(max_shift=0.5))
    naive = weekly_table(scenes, ["yard"], PERFECT, tight)
    est = naive[(naive["class"] == "covered_car") & (naive["week"] == "2023-W40")]["estimate"]
    assert float(est.iloc[0]) > 35


def test_cars_that_came_and_went_unseen_stay_inside_the_interval():
    # A second train (15 cars) comes on Thursday evening and leaves before Friday's look of week
    # 40: never seen, but present that week. Other trains give the zone a turnover rate.
    base = MONDAY
    parked = string(10, 0)
    looks = [
        (base - timedelta(days=7), parked + string(12, 3)),
        (base - timedelta(days=5), parked),
        (base, parked),
        (base + timedelta(days=2), parked + string(20, 2)),
        (base + timedelta(days=4), parked),
        (base + timedelta(days=6), parked + string(8, 4)),
        (base + timedelta(days=8), parked),
    ]
    scenes = [scene(f"s{i}", t, cars) for i, (t, cars) in enumerate(looks)]
    truth_w40 = 10 + 20 + 15 + 8
    weekly = weekly_table(scenes, ["yard"], PERFECT)
    w40 = weekly[(weekly["class"] == "covered_car") & (weekly["week"] == "2023-W40")].iloc[0]
    assert w40["estimate"] == pytest.approx(10 + 20 + 8)  # what was seen
    assert w40["low"] <= truth_w40 <= w40["high"]


def _imperfect_week(seed: int, p: float = 0.95, r: float = 0.9):
    """70 parked cars and a 25-car train (Wed–Fri) seen four times in week 40 by a detector that
    misses cars (recall r) and adds false ones (precision p), with random geolocation shifts."""
    metrics = {c: ClassMetrics(p, r) for c in CLASSES}
    rng = np.random.default_rng(seed)
    parked = string(40, 0) + string(30, 1)
    train = string(25, 3, x0=7.0)
    looks = [(MONDAY + timedelta(days=d), parked + (train if 2 <= d <= 4 else []))
             for d in (0, 2, 4, 6)]
    scenes = []
    for i, (t, cars) in enumerate(looks):
        seen = rng.random(len(cars)) < r  # misses
        n_false = rng.binomial(int(seen.sum()), (1 - p) / p)  # false positives
        false = [(rng.uniform(0, 800), 4.75 * int(rng.integers(6, 12)), "covered_car")
                 for _ in range(n_false)]
        kept = [c for c, s in zip(cars, seen, strict=True) if s] + false
        scenes.append(scene(f"s{i}", t, kept, shift=tuple(rng.uniform(-10, 10, 2))))
    weekly = weekly_table(scenes, ["yard"], metrics)
    return weekly[(weekly["class"] == "covered_car") & (weekly["week"] == "2023-W40")].iloc[0]


TRUTH_IMPERFECT = 70 + 25


@pytest.mark.parametrize("seed", range(6))
def test_the_interval_covers_the_truth_with_an_imperfect_detector(seed):
    w40 = _imperfect_week(seed)
    assert w40["low"] <= TRUTH_IMPERFECT <= w40["high"]


def test_the_estimate_corrects_misses_and_false_detections_on_average():
    estimates = [_imperfect_week(seed)["estimate"] for seed in range(10, 18)]
    peaks = [_imperfect_week(seed)["peak"] for seed in range(10, 12)]
    assert np.mean(estimates) == pytest.approx(TRUTH_IMPERFECT, rel=0.08)
    assert max(peaks) < TRUTH_IMPERFECT  # the peak alone would undercount


def test_true_count_interval_corrects_for_precision_and_recall():
    ci = true_count_interval(73, ClassMetrics(0.97, 0.95))
    assert ci.estimate == pytest.approx(73 * 0.97 / 0.95)
    assert ci.low < ci.estimate < ci.high
    exact = true_count_interval(73, ClassMetrics(1.0, 1.0))
    assert (exact.low, exact.estimate, exact.high) == (73, 73, 73)
    assert math.isnan(true_count_interval(math.nan, ClassMetrics(1.0, 1.0)).estimate)


def test_no_detection_is_not_proof_of_no_car():
    # A detector of recall r misses all of N cars with probability (1 - r)^N; seeing none, the
    # 90% interval must still reach the N where that is 5%.
    for recall, most in [(0.7, 2.49), (0.3, 8.40), (0.05, 58.4)]:
        assert missed_bound(recall) == pytest.approx(most, abs=0.01)
        assert (1 - recall) ** missed_bound(recall) == pytest.approx(0.05)
        none = true_count_interval(0, ClassMetrics(0.9, recall))
        assert (none.low, none.estimate) == (0, 0) and none.high == pytest.approx(most, abs=0.01)
    assert missed_bound(1.0) == 0.0
    assert true_count_interval(0, ClassMetrics(1.0, 1.0)).high == 0
    # Many detections: the normal interval is wider than the bound and is kept.
    many = true_count_interval(200, ClassMetrics(0.9, 0.7))
    assert many.high - many.estimate > missed_bound(0.7)


def _series(times, counts, moves):
    trs = tuple(
        Transition(a, b, na, nb, parked, arr, dep)
        for (a, b), (na, nb), (parked, arr, dep) in zip(
            pairwise(times), pairwise(counts), moves, strict=True)
    )
    return ZoneClassSeries("yard", "covered_car", tuple(times), tuple(counts), trs)


def test_a_week_without_an_observed_scene_uses_the_cars_parked_across_it():
    times = [MONDAY - timedelta(days=3), MONDAY + timedelta(days=10)]
    ser = _series(times, [12, 10], [(10, 0, 2)])
    est = estimate_week(ser, MONDAY - timedelta(hours=3), PERFECT["covered_car"], rate=0.5)
    # 10 cars were there before and after: there all week. Of the 2 that left during the 13-day
    # gap, each was still there on Monday with probability 10/13.
    assert est.estimate == pytest.approx(10 + 2 * (10 + 3 / 24) / 13, rel=1e-3)
    assert est.low <= 10 and est.high >= 12


def test_with_a_single_scene_the_upper_bound_is_unknown_not_zero():
    ser = _series([MONDAY + timedelta(days=1)], [5], [])
    est = estimate_week(ser, MONDAY - timedelta(hours=3), PERFECT["covered_car"], rate=math.nan)
    assert est.estimate == 5 and math.isnan(est.high)


def test_iso_weeks():
    assert iso_week(datetime(2023, 10, 5, tzinfo=UTC)) == "2023-W40"
    assert iso_week(datetime(2021, 1, 1, tzinfo=UTC)) == "2020-W53"


def test_the_per_class_table_leaves_an_unobserved_zone_empty_not_zero():
    """Notebook 01's table: 2023-10-08's yard under cloud is unknown, not 0 covered cars."""
    from datetime import UTC, datetime

    import pandas as pd

    from railwatch.count.frames import FrameRow, class_table, frames_table

    seen, cloud = datetime(2023, 10, 5, 2, tzinfo=UTC), datetime(2023, 10, 8, 2, tzinfo=UTC)
    rows = [FrameRow("a.tif", seen, "yard", c, 7.0 if c == "covered_car" else 0.0, 0.9) for c in CLASSES]
    rows += [FrameRow("b.tif", cloud, "yard", c, float("nan"), 0.2) for c in CLASSES]
    table = class_table(frames_table(rows))
    assert table.loc[(pd.Timestamp(seen), "a.tif", "yard"), "covered_car"] == 7
    assert table.loc[(pd.Timestamp(seen), "a.tif", "yard"), "tank_car"] == 0
    unobserved = table.loc[(pd.Timestamp(cloud), "b.tif", "yard")]
    assert unobserved.isna().all()  # empty, never 0
    assert list(table.columns) == list(CLASSES)
