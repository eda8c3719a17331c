"""The plots: what each figure shows (series, intervals, verdicts, labels), from small tables."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from railwatch.report.comparison import Comparison, Verdict
from railwatch.report.plot import (
    Caption,
    snapshot_figure,
    snapshot_vs_week_figure,
    weekly_figure,
    zone_colours,
)
from railwatch.report.reported import Qualifier, Quantity, ReportedFigure

ZONES = ["tumangang_yard", "bridge", "khasan_yard"]


def weekly_rows():
    rows = []
    for week, start in [("2023-W40", "2023-10-02"), ("2023-W41", "2023-10-09")]:
        for zone in ZONES:
            rows.append({"week": week, "week_start": start, "zone": zone, "class": "covered_car",
                         "n_scenes": 3, "peak": 70.0, "mean": 50.0, "arrivals": 20.0,
                         "estimate": 90.0, "low": 75.0, "high": 120.0, "coverage": 1.0})
    return pd.DataFrame(rows)


def frames_rows():
    rows = []
    for t, n in [("2023-10-03T02:20Z", 51.0), ("2023-10-05T02:15Z", 70.0), ("2023-10-06T01:55Z", np.nan)]:
        rows.append({"scene": f"s_{t[:10]}.tif", "acquired": pd.Timestamp(t), "zone": "tumangang_yard",
                     "class": "covered_car", "count": n, "coverage": 0.0 if np.isnan(n) else 1.0})
    return pd.DataFrame(rows)


def figure73(qualifier=Qualifier.APPROXIMATELY):
    d = date(2023, 10, 5)
    return ReportedFigure(d, d, "tumangang_khasan", "tumangang_yard", "covered_car", 73,
                          qualifier, Quantity.SNAPSHOT, "test")


def texts(fig):
    ax_texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    legends += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    return ax_texts, legends


def test_zone_colours_are_fixed_and_distinct():
    colours = zone_colours(ZONES)
    assert list(colours) == ZONES and len(set(colours.values())) == 3
    assert zone_colours(ZONES) == colours


def test_weekly_figure_draws_each_figure_once_on_an_axis_of_weeks_with_one_legend():
    figs = [figure73(Qualifier.APPROXIMATELY), figure73(Qualifier.AT_LEAST)]  # one figure, two outlets
    comps = [Comparison(figs[0], Verdict.CONSISTENT, "scene count", 70, 70, 60, 80, repeats=(figs[1],))]
    fig = weekly_figure(weekly_rows(), ZONES, figs, comparisons=comps,
                        caption=Caption("railcar-obb test", 11, simulated=True))
    [ax] = fig.axes
    notes, legend = texts(fig)
    assert notes == ["2023-10-05: 73 (test): consistent\nalso quoted as at least"]  # drawn once
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2023-W40", "2023-W41"]  # weeks, not days
    assert ax.get_legend() is None and len(fig.legends) == 1  # one legend for the figure
    assert "tumangang_yard: estimate of unique cars in the week" in legend
    assert "reported figure: approximately" in legend
    assert ax.get_ylabel() == "rail cars" and "week" in ax.get_xlabel()
    assert ax.get_ylim()[1] >= 120  # the interval is drawn: the axis reaches the highest 'high'
    words = [t.get_text() for t in fig.texts]
    assert "SIMULATED IMAGERY" in words and any("model railcar-obb test" in w for w in words)
    assert any("11 scenes counted" in w for w in words)


def test_weekly_figure_counts_figures_outside_the_period():
    d = date(2022, 11, 18)
    old = ReportedFigure(d, d, "tumangang_khasan", "tumangang_yard", "covered_car", 5,
                         Qualifier.APPROXIMATELY, Quantity.SNAPSHOT, "test")
    fig = weekly_figure(weekly_rows(), ZONES, [old])
    assert any("1 reported figure(s) outside this period" in t.get_text() for t in fig.texts)
    assert not any("SIMULATED" in t.get_text() for t in fig.texts)  # real imagery: no stamp


def test_snapshot_figure_marks_unobserved_scenes_and_breaks_the_line_there():
    fig = snapshot_figure(frames_rows(), ZONES)
    _, legend = texts(fig)
    assert "tumangang_yard: not observed (cloud / outside)" in legend
    assert fig.axes[0].get_ylabel() == "rail cars in the zone"
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "tumangang_yard")
    y = np.asarray(line.get_ydata(), dtype=float)
    assert list(y[:2]) == [51.0, 70.0] and np.isnan(y[2])  # a gap, never joined across, never 0


def test_snapshot_vs_week_figure_shows_the_band_the_peak_and_the_figure():
    fig = snapshot_vs_week_figure(frames_rows(), weekly_rows(), "tumangang_yard", "covered_car",
                                  "2023-W40", ZONES, [figure73()])
    _, legend = texts(fig)
    assert "weekly estimate, 90% interval (75–120)" in legend
    assert "weekly peak snapshot (70)" in legend
    assert "reported snapshot: approximately 73" in legend
    ax = fig.axes[0]
    assert ax.get_xlabel() == "acquisition time (UTC)" and ax.get_ylabel() == "rail cars"
    # Two observed scenes are plotted; the unobserved one is not a zero.
    points = next(line for line in ax.get_lines() if line.get_label().startswith("snapshot"))
    assert list(points.get_ydata()) == [51.0, 70.0]


def test_snapshot_vs_week_figure_refuses_a_week_without_data():
    with pytest.raises(KeyError, match="2023-W50"):
        snapshot_vs_week_figure(frames_rows(), weekly_rows(), "tumangang_yard", "covered_car",
                                "2023-W50")
