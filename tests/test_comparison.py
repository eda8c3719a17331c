"""Reported figures: the bundled table, malformed tables, and the verdict for each qualifier."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from railwatch.classes import CLASSES
from railwatch.count.frames import FrameRow
from railwatch.count.weekly import WeeklyRow
from railwatch.detect.manifest import ClassMetrics
from railwatch.report.comparison import Verdict, compare, comparison_table, distant_summary, verdict_for
from railwatch.report.reported import (
    Qualifier,
    Quantity,
    ReportedFigure,
    ReportedFiguresError,
    load_reported,
)

PERFECT = {c: ClassMetrics(1.0, 1.0) for c in CLASSES}
ZONES = ["tumangang_yard", "khasan_yard"]


def figure(count=73, qualifier=Qualifier.APPROXIMATELY, quantity=Quantity.SNAPSHOT,
           day="2023-10-05", end=None, zone="tumangang_yard", cls="covered_car",
           site="tumangang_khasan") -> ReportedFigure:
    start = date.fromisoformat(day)
    return ReportedFigure(start, date.fromisoformat(end) if end else start, site, zone, cls,
                          count, qualifier, quantity, "test source")


def frames(counts: dict[str, dict[tuple[str, str], float]]) -> list[FrameRow]:
    """{scene time: {(zone, class): count}} → frames rows (unlisted cells 0)."""
    rows = []
    for t, cells in counts.items():
        for zone in ZONES:
            for cls in CLASSES:
                n = cells.get((zone, cls), 0.0)
                rows.append(FrameRow(f"s_{t[:10]}.tif", datetime.fromisoformat(t).replace(tzinfo=UTC),
                                     zone, cls, n, 0.0 if math.isnan(n) else 1.0))
    return rows


def week(zone, cls, estimate, low, high, name="2023-W40") -> WeeklyRow:
    return WeeklyRow(name, "2023-10-02", zone, cls, 1, estimate, estimate, math.nan, estimate, low,
                     high, 1.0)


def run(figs, fr, weekly=(), metrics=PERFECT):
    return compare(figs, fr, weekly, metrics, "tumangang_khasan", ZONES)


def test_the_bundled_table_holds_the_sourced_rows():
    figs = load_reported()
    snap = [f for f in figs if f.start == date(2023, 10, 5)]
    assert {f.qualifier for f in snap} == {Qualifier.APPROXIMATELY, Qualifier.AT_LEAST,
                                           Qualifier.UP_TO}
    assert all(f.count == 73 and f.quantity is Quantity.SNAPSHOT for f in snap)
    assert all(f.source and f.site == "tumangang_khasan" for f in figs)
    ranged = [f for f in figs if f.is_range]
    assert ranged and ranged[0].qualifier is Qualifier.AT_MOST and ranged[0].count == 20
    assert {f.zone for f in figs} == set(ZONES)


@pytest.mark.parametrize(("qualifier", "measured", "expected"), [
    (Qualifier.APPROXIMATELY, 73, Verdict.CONSISTENT),
    (Qualifier.APPROXIMATELY, 66, Verdict.CONSISTENT),  # within 10%
    (Qualifier.APPROXIMATELY, 60, Verdict.MEASURED_LOWER),
    (Qualifier.APPROXIMATELY, 90, Verdict.MEASURED_HIGHER),
    (Qualifier.AT_LEAST, 120, Verdict.CONSISTENT),
    (Qualifier.AT_LEAST, 70, Verdict.MEASURED_LOWER),
    (Qualifier.AT_MOST, 10, Verdict.CONSISTENT),
    (Qualifier.AT_MOST, 74, Verdict.MEASURED_HIGHER),
    (Qualifier.UP_TO, 73, Verdict.CONSISTENT),
    (Qualifier.UP_TO, 74, Verdict.CONSISTENT),  # an approximate upper value, not a ceiling
    (Qualifier.UP_TO, 80, Verdict.CONSISTENT),
    (Qualifier.UP_TO, 90, Verdict.MEASURED_HIGHER),
    (Qualifier.AS_MANY_AS, 80, Verdict.CONSISTENT),
])
def test_snapshot_verdict_for_each_qualifier(qualifier, measured, expected):
    fr = frames({"2023-10-05T02:00": {("tumangang_yard", "covered_car"): measured}})
    [c] = run([figure(qualifier=qualifier)], fr)
    assert c.verdict is expected
    assert c.measured == measured and c.days_apart == 0 and c.scene == "s_2023-10-05.tif"
    row = c.row()
    assert row["reported"] == 73 and row["verdict"] == expected.value


def test_the_detector_interval_can_make_a_near_miss_consistent():
    fr = frames({"2023-10-05T02:00": {("tumangang_yard", "covered_car"): 63}})
    strict = run([figure()], fr)[0]
    loose = run([figure()], fr, metrics={c: ClassMetrics(0.95, 0.85) for c in CLASSES})[0]
    assert strict.verdict is Verdict.MEASURED_LOWER
    assert loose.verdict is Verdict.CONSISTENT and loose.estimate > 63
    assert loose.low < 65.7 < loose.high


def test_the_nearest_scene_is_used_and_far_scenes_are_not_observed():
    fr = frames({
        "2023-10-03T02:00": {("tumangang_yard", "covered_car"): 10},
        "2023-10-06T02:00": {("tumangang_yard", "covered_car"): 73},
    })
    [c] = run([figure()], fr)
    assert c.scene == "s_2023-10-06.tif" and c.days_apart == pytest.approx(2 / 24, abs=0.01)
    [far] = run([figure(day="2023-11-20")], fr)
    assert far.verdict is Verdict.NOT_OBSERVED and "days away" in far.note


def test_a_clouded_zone_is_not_observed_and_the_next_scene_is_taken():
    fr = frames({
        "2023-10-05T02:00": {("tumangang_yard", "covered_car"): math.nan},
        "2023-10-07T02:00": {("tumangang_yard", "covered_car"): 71},
    })
    [c] = run([figure()], fr)
    assert c.scene == "s_2023-10-07.tif" and c.verdict is Verdict.CONSISTENT
    [none] = run([figure()], frames({"2023-10-05T02:00": {
        ("tumangang_yard", "covered_car"): math.nan}}))
    assert none.verdict is Verdict.NOT_OBSERVED


def test_any_rail_car_sums_the_classes_and_a_range_takes_the_fullest_scene():
    fr = frames({
        "2023-09-20T02:00": {("tumangang_yard", "covered_car"): 8,
                             ("tumangang_yard", "open_car"): 9},
        "2023-09-28T02:00": {("tumangang_yard", "covered_car"): 15,
                             ("tumangang_yard", "tank_car"): 10},
        "2023-10-05T02:00": {("tumangang_yard", "covered_car"): 73},
    })
    [c] = run([figure(20, Qualifier.AT_MOST, day="2018-01-01", end="2023-09-30", cls="any")], fr)
    assert c.measured == 25 and c.scene == "s_2023-09-28.tif"
    assert c.verdict is Verdict.MEASURED_HIGHER


def test_a_weekly_figure_is_compared_with_the_weekly_estimate():
    weekly = [week("khasan_yard", "covered_car", 120.0, 110.0, 150.0),
              week("khasan_yard", "open_car", 5.0, 4.0, 9.0)]
    fr = frames({"2023-10-05T02:00": {("khasan_yard", "covered_car"): 73}})
    at_least = figure(140, Qualifier.AT_LEAST, Quantity.WEEKLY, zone="khasan_yard")
    approx_any = figure(100, Qualifier.APPROXIMATELY, Quantity.WEEKLY, zone="khasan_yard",
                        cls="any")
    missing = figure(10, Qualifier.APPROXIMATELY, Quantity.WEEKLY, day="2023-10-20",
                     zone="khasan_yard")
    c1, c2, c3 = run([at_least, approx_any, missing], fr, weekly)
    assert (c1.verdict, c1.measured, c1.week) == (Verdict.CONSISTENT, 120.0, "2023-W40")
    # Unlisted classes have no weekly rows: "any" cannot be summed → not observed.
    assert c2.verdict is Verdict.NOT_OBSERVED
    assert c3.verdict is Verdict.NOT_OBSERVED
    assert verdict_for(at_least, 100.0, 130.0) is Verdict.MEASURED_LOWER


def test_figures_for_another_site_or_zone_are_not_observed():
    fr = frames({"2023-10-05T02:00": {("tumangang_yard", "covered_car"): 73}})
    c1, c2 = run([figure(site="elsewhere"), figure(zone="bridge_2")], fr)
    assert c1.verdict is c2.verdict is Verdict.NOT_OBSERVED
    table = comparison_table([c1, c2])
    assert table["verdict"].tolist() == ["not_observed", "not_observed"]
    assert "site" in table.loc[0, "note"] and "zone" in table.loc[1, "note"]


@pytest.mark.parametrize(("text", "message"), [
    ("date,site\n", "missing column(s) zone, class"),
    ("date,site,zone,class,count,qualifier,quantity,source,url\n"
     "2023-10-05,s,z,covered_car,73,roughly,snapshot,x,\n", "line 2: qualifier 'roughly'"),
    ("date,site,zone,class,count,qualifier,quantity,source,url\n"
     "5 Oct 2023,s,z,covered_car,73,at_least,snapshot,x,\n", "line 2: date '5 Oct 2023'"),
    ("date,site,zone,class,count,qualifier,quantity,source,url\n"
     "2023-10-05,s,z,boxcar,73,at_least,snapshot,x,\n", "class 'boxcar'"),
    ("date,site,zone,class,count,qualifier,quantity,source,url\n"
     "2023-10-05,s,z,any,many,at_least,snapshot,x,\n", "count 'many'"),
    ("date,site,zone,class,count,qualifier,quantity,source,url\n"
     "2023-10-05,s,z,any,3,at_least,monthly,x,\n", "quantity 'monthly'"),
])
def test_a_malformed_table_names_the_file_and_what_to_fix(tmp_path, text, message):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    with pytest.raises(ReportedFiguresError) as exc:
        load_reported(path)
    assert str(exc.value).startswith(str(path)) and message in str(exc.value)


def test_one_figure_quoted_by_several_outlets_is_one_row_with_every_qualifier():
    figs = load_reported()
    fr = frames({"2023-10-05T02:00": {("tumangang_yard", "covered_car"): 73}})
    comparisons = run(figs, fr)
    table = comparison_table(comparisons)
    oct5 = table[table["date"] == "2023-10-05"]
    assert len(oct5) == 1
    (row,) = oct5.to_dict("records")
    assert row["qualifier"] == "approximately" and row["verdict"] == "consistent"
    assert "at_least (Meduza" in row["quoted_as"] and "up_to (Kyiv Independent" in row["quoted_as"]
    assert "measured_higher" not in row["quoted_as"]
    # the 2024 figures lie months from this one scene: summarised, not listed as not_observed
    assert not (table["date"] == "2024-06-17").any()
    summary = distant_summary(comparisons)
    assert summary.startswith("10 reported figures lie 256–320 days") and "2024-06-17" in summary
