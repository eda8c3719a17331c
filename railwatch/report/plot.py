"""Plots of the weekly series and the per-scene snapshots (quicklooks: `report.quicklook`).

Every function takes data already in memory (tables, arrays) and returns a matplotlib
``Figure``; nothing here reads files, and ``pyplot`` (global state) is not used. Colours: one
per zone, the same in every plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from railwatch.classes import CLASSES
from railwatch.report.comparison import Comparison
from railwatch.report.quicklook import CLASS_COLOURS
from railwatch.report.reported import ANY, Quantity, ReportedFigure

__all__ = [
    "class_colours",
    "snapshot_figure",
    "snapshot_vs_week_figure",
    "weekly_figure",
    "zone_colours",
]

_ZONE_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


_QUALIFIER_SIGN = {"approximately": "≈", "at_least": "≥", "at_most": "≤", "up_to": "≤"}


def zone_colours(zones: Sequence[str]) -> dict[str, str]:
    """A fixed colour per zone, in the site's zone order."""
    return {z: _ZONE_PALETTE[i % len(_ZONE_PALETTE)] for i, z in enumerate(zones)}


def class_colours() -> dict[str, str]:
    """The detector's class colours (:data:`railwatch.report.quicklook.CLASS_COLOURS`) as hex strings."""
    return {c: "#{:02x}{:02x}{:02x}".format(*CLASS_COLOURS[c]) for c in CLASSES}


def _classes_with_data(*columns: pd.Series) -> list[str]:
    present = set().union(*(set(c.dropna().unique()) for c in columns))
    return [c for c in CLASSES if c in present] or [CLASSES[0]]


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    )


def weekly_figure(
    weekly: pd.DataFrame,
    zones: Sequence[str],
    reported: Sequence[ReportedFigure] = (),
    classes: Sequence[str] | None = None,
    comparisons: Sequence[Comparison] = (),
) -> Figure:
    """Per class: the weekly estimate with its 90% interval and the weekly peak, per zone.

    Reported figures within the period of the series are marked at their dates (★ snapshot,
    ◆ weekly) with their qualifier's range, and labelled with their verdict when
    ``comparisons`` holds one; figures for "any rail car" get a panel of their own with the
    estimates summed over classes. Figures outside the period are only counted.
    """
    colours = zone_colours(zones)
    verdicts = {c.figure: c.verdict.value.replace("_", " ") for c in comparisons}
    starts = pd.to_datetime(weekly["week_start"])
    t0 = starts.min() - pd.Timedelta(days=1)
    t1 = starts.max() + pd.Timedelta(days=8)
    in_period = [f for f in reported
                 if pd.Timestamp(f.end) >= t0 and pd.Timestamp(f.start) <= t1]
    nonzero = weekly[(weekly["estimate"].fillna(0) > 0) | (weekly["peak"].fillna(0) > 0)]
    panels = list(classes or _classes_with_data(
        nonzero["class"], pd.Series([f.class_name for f in in_period if f.class_name != ANY])
    ))
    if any(f.class_name == ANY for f in in_period):
        panels.append(ANY)
    fig = Figure(figsize=(12, 3.2 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, cls in zip(axes, panels, strict=True):
        rows = weekly if cls == ANY else weekly[weekly["class"] == cls]
        for i, zone in enumerate(zones):
            z = rows[rows["zone"] == zone]
            if z.empty:
                continue
            if cls == ANY:
                z = z.groupby("week_start", as_index=False)[["estimate", "low", "high", "peak"]].sum(
                    min_count=1)
            offset = pd.Timedelta(hours=14 * (i - (len(zones) - 1) / 2))
            mid = pd.to_datetime(z["week_start"]) + pd.Timedelta(days=3.5) + offset
            c = colours[zone]
            est = z["estimate"].astype(float)
            high = z["high"].astype(float).fillna(est)
            yerr = np.vstack([(est - z["low"].astype(float)).clip(lower=0), (high - est).clip(lower=0)])
            ax.errorbar(mid, est, yerr=yerr, fmt="o", color=c, capsize=4, lw=1.5,
                        label=f"{zone}: estimate, unique cars in the week (90% interval)")
            if cls != ANY:
                ax.plot(mid, z["peak"], "v", color=c, mfc="white", ms=8,
                        label=f"{zone}: peak snapshot of the week")
        stacked: dict[pd.Timestamp, int] = {}
        notes: dict[pd.Timestamp, list[tuple[float, str]]] = {}
        for f in in_period:
            if f.class_name != cls:
                continue
            lo, hi = f.bounds()
            # A range is drawn at its last day inside the period; figures of one date side by side.
            x = max(t0, min(t1, pd.Timestamp(f.end) + pd.Timedelta(hours=12)))
            stacked[x] = stacked.get(x, -1) + 1
            if f in verdicts:  # one label per date: "≈ 73: consistent", "≥ 73: …"
                notes.setdefault(x, []).append(
                    (f.count, f"{_QUALIFIER_SIGN[f.qualifier.value]} {f.count:g}: {verdicts[f]}"))
            x = x + pd.Timedelta(hours=10 * stacked[x])
            c = colours.get(f.zone, "black")
            marker = "*" if f.quantity is Quantity.SNAPSHOT else "D"
            hi_plot = hi if math.isfinite(hi) else f.count * 1.3
            ax.errorbar([x], [f.count], yerr=[[f.count - lo], [hi_plot - f.count]], fmt=marker,
                        color=c, mec="black", ms=11, capsize=4,
                        label=f"reported {f.quantity.value} ({f.qualifier.value}), {f.zone}")
        for x, lines in notes.items():
            ax.annotate("\n".join(text for _, text in lines), (x, max(n for n, _ in lines)),
                        xytext=(-12, 12), textcoords="offset points", ha="right", va="bottom",
                        fontsize=7, bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85})
        title = "any rail car (classes summed)" if cls == ANY else cls
        ax.set_title(f"{title}: weekly series")
        ax.set_ylabel("rail cars")
        ax.set_xlabel("week (UTC)")
        ax.set_xlim(t0, t1)
        ax.set_ylim(bottom=0)
        _date_axis(ax)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    outside = len(reported) - len(in_period)
    if outside:
        fig.text(0.01, 0.0, f"{outside} reported figure(s) fall outside this period "
                 "(see comparison.csv)", fontsize=8, va="bottom")
    return fig


def snapshot_figure(frames: pd.DataFrame, zones: Sequence[str]) -> Figure:
    """Per class: the detector count of each scene per zone; ✕ on the axis: zone not observed."""
    colours = zone_colours(zones)
    observed = frames[frames["count"].fillna(0) > 0]
    classes = _classes_with_data(observed["class"])
    fig = Figure(figsize=(10, 3.0 * len(classes)), layout="constrained")
    axes = fig.subplots(len(classes), 1, squeeze=False)[:, 0]
    for ax, cls in zip(axes, classes, strict=True):
        rows = frames[frames["class"] == cls]
        edge = blended_transform_factory(ax.transData, ax.transAxes)
        for zone in zones:
            z = rows[rows["zone"] == zone].sort_values("acquired")
            if z.empty:
                continue
            t = pd.to_datetime(z["acquired"])
            seen = z["count"].notna()
            ax.plot(t[seen], z["count"][seen], "o-", color=colours[zone], label=f"{zone}")
            if (~seen).any():
                ax.plot(t[~seen], np.full((~seen).sum(), 0.03), "x", color=colours[zone], ms=9,
                        mew=2, transform=edge, label=f"{zone}: not observed (cloud / outside)")
        ax.set_title(f"{cls}: cars per scene (snapshot counts)")
        ax.set_ylabel("rail cars in the zone")
        ax.set_xlabel("acquisition time (UTC)")
        ax.set_ylim(bottom=0)
        _date_axis(ax)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def snapshot_vs_week_figure(
    frames: pd.DataFrame,
    weekly: pd.DataFrame,
    zone: str,
    class_name: str,
    week: str,
    zones: Sequence[str] = (),
    reported: Sequence[ReportedFigure] = (),
) -> Figure:
    """One zone, class and ISO week (``"2023-W40"``): each scene's snapshot count against the
    week's estimate of unique cars with its 90% interval, and the week's peak.

    Shows why a snapshot figure is compared with the nearest scene and a weekly figure with the
    estimate: cars come and go within a week, so the unique cars exceed any one snapshot.
    Reported figures of the zone and class dated in the week are marked (★ snapshot, ◆ weekly).
    """
    row = weekly[(weekly["week"] == week) & (weekly["zone"] == zone) & (weekly["class"] == class_name)]
    if row.empty:
        raise KeyError(f"no weekly row for {week}, zone {zone!r}, class {class_name!r}")
    w = row.iloc[0]
    start = pd.Timestamp(w["week_start"])
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = start + pd.Timedelta(days=7)
    colour = zone_colours(list(zones) or [zone]).get(zone, _ZONE_PALETTE[0])
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.subplots()
    if pd.notna(w["estimate"]):
        high = float(w["high"]) if pd.notna(w["high"]) else float(w["estimate"])
        ax.fill_between([start, end], [float(w["low"])] * 2, [high] * 2, color=colour, alpha=0.18,
                        label=f"weekly estimate, 90% interval ({w['low']:.0f}–{high:.0f})")
        ax.hlines(float(w["estimate"]), start, end, colors=colour, lw=2,
                  label=f"weekly estimate of unique cars ({w['estimate']:.0f})")
    if pd.notna(w["peak"]):
        ax.hlines(float(w["peak"]), start, end, colors="black", linestyles="--", lw=1,
                  label=f"weekly peak snapshot ({w['peak']:.0f})")
    f = frames[(frames["zone"] == zone) & (frames["class"] == class_name)]
    t = pd.to_datetime(f["acquired"], utc=True)
    f = f[(t >= start - pd.Timedelta(days=3)) & (t < end + pd.Timedelta(days=3))]
    t = pd.to_datetime(f["acquired"], utc=True)
    seen = f["count"].notna()
    ax.plot(t[seen], f["count"][seen], "o", color=colour, mec="black", ms=8,
            label="snapshot: detector count in one scene")
    top = float(np.nanmax([w["high"], w["peak"], f["count"].max(), 1.0]))
    for fig_ in reported:
        if fig_.zone != zone or fig_.class_name != class_name:
            continue
        x = pd.Timestamp(fig_.end).tz_localize("UTC") + pd.Timedelta(hours=12)
        if not start - pd.Timedelta(days=3) <= x < end + pd.Timedelta(days=3):
            continue
        marker = "*" if fig_.quantity is Quantity.SNAPSHOT else "D"
        ax.plot([x], [fig_.count], marker, color="gold", mec="black", ms=16,
                label=f"reported {fig_.quantity.value}: {fig_.qualifier.value} {fig_.count:g}")
        top = max(top, fig_.count)
    ax.axvspan(start, end, color="grey", alpha=0.06, lw=0)
    ax.set_xlim(start - pd.Timedelta(days=3), end + pd.Timedelta(days=3))
    ax.set_ylim(0, top * 1.15)
    ax.set_title(f"{zone}, {class_name}: snapshots against the weekly estimate, {week} (shaded)")
    ax.set_xlabel("acquisition time (UTC)")
    ax.set_ylabel("rail cars")
    _date_axis(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
