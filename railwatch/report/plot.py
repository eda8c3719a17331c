"""Plots of the weekly series and the per-scene snapshots (quicklooks: `report.quicklook`).

Every function takes data already in memory (tables, arrays) and returns a matplotlib
``Figure``; nothing here reads files, and ``pyplot`` (global state) is not used. Colours: one
per zone, the same in every plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from railwatch.classes import CLASSES
from railwatch.report.comparison import Comparison, one_per_figure
from railwatch.report.quicklook import CLASS_COLOURS
from railwatch.report.reported import ANY, Quantity, ReportedFigure

__all__ = [
    "Caption",
    "class_colours",
    "snapshot_figure",
    "snapshot_vs_week_figure",
    "weekly_figure",
    "zone_colours",
]

_ZONE_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


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


@dataclass(frozen=True, slots=True)
class Caption:
    """What a copied picture must carry with it: the model, the scenes, and whether they are
    simulated (stamped on the picture itself)."""

    model: str = ""
    scenes: int = 0
    simulated: bool = False

    def text(self) -> str:
        parts = [f"model {self.model}" if self.model else "",
                 f"{self.scenes} scenes counted" if self.scenes else ""]
        return " · ".join(p for p in parts if p)


#: How each qualifier is drawn: marker and words (the README's reading of each).
_QUALIFIER_MARK = {"approximately": ("o", "approximately"), "at_least": ("^", "at least (lower bound)"),
                   "at_most": ("v", "at most (ceiling)"), "up_to": ("v", "up to (approximate upper value)"),
                   "as_many_as": ("v", "as many as (approximate upper value)")}


def weekly_figure(
    weekly: pd.DataFrame,
    zones: Sequence[str],
    reported: Sequence[ReportedFigure] = (),
    classes: Sequence[str] | None = None,
    comparisons: Sequence[Comparison] = (),
    caption: Caption | None = None,
) -> Figure:
    """Per class: the weekly estimate of unique cars per zone, on an axis of ISO weeks, its 90%
    interval drawn as a light band behind it so the estimate stays readable, and each reported
    figure once, at its date, marked by its qualifier (● approximately, ▲ at least, ▼ at most /
    up to) and labelled with its verdict. One legend; a caption with the model and scenes, and
    SIMULATED stamped on the picture when the imagery is simulated.
    """
    verdicts = {c.figure: c.verdict.value.replace("_", " ") for c in comparisons}
    repeats = {c.figure: c.repeats for c in comparisons}
    weeks = sorted(weekly["week"].dropna().unique())
    index = {w: i for i, w in enumerate(weeks)}
    starts = {w: pd.Timestamp(s) for w, s in zip(weekly["week"], weekly["week_start"], strict=True)}
    t0 = min(starts.values()) if starts else pd.Timestamp("1970-01-01")
    t1 = max(starts.values()) + pd.Timedelta(days=7) if starts else t0

    def at(day: pd.Timestamp) -> float:  # a date on the week axis (week i spans i - 0.5 .. i + 0.5)
        return float((day - t0) / pd.Timedelta(days=7)) - 0.5

    figures = [f for f, _ in one_per_figure(reported)]
    in_period = [f for f in figures if pd.Timestamp(f.end) >= t0 and pd.Timestamp(f.start) < t1]
    nonzero = weekly[(weekly["estimate"].fillna(0) > 0) | (weekly["peak"].fillna(0) > 0)]
    panels = list(classes or _classes_with_data(
        nonzero["class"], pd.Series([f.class_name for f in in_period if f.class_name != ANY])))
    if any(f.class_name == ANY for f in in_period):
        panels.append(ANY)
    fig = Figure(figsize=(10, 2.9 * len(panels) + 1.0), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for ax, cls in zip(axes, panels, strict=True):
        _weekly_panel(ax, weekly if cls == ANY else weekly[weekly["class"] == cls], cls, zones, index)
        for f in in_period:
            if f.class_name == cls:
                _reported_mark(ax, f, at(pd.Timestamp(f.end) + pd.Timedelta(hours=12)), verdicts.get(f),
                               repeats.get(f, ()))
    axes[-1].set_xticks(range(len(weeks)), weeks, rotation=0, fontsize=8)
    axes[-1].set_xlim(-0.6, len(weeks) - 0.4)
    axes[-1].set_xlabel("ISO week (UTC)")
    _one_legend(fig, list(axes))
    outside = len(figures) - len(in_period)
    footer = [caption.text() if caption is not None else ""]
    if outside:
        footer.append(f"{outside} reported figure(s) outside this period: see comparison.csv")
    fig.suptitle("Weekly series: unique cars per ISO week, with 90% intervals", fontsize=11)
    if any(footer):
        fig.text(0.01, 0.0, " · ".join(x for x in footer if x), fontsize=7, va="bottom", color="#444444")
    if caption is not None and caption.simulated:
        _stamp_simulated(fig)
    return fig


def _weekly_panel(ax: Axes, rows: pd.DataFrame, cls: str, zones: Sequence[str], index: dict[str, int]
                  ) -> None:
    """One class's panel: per zone, the weekly estimates (dots) before their 90% intervals (bands)."""
    colours = zone_colours(zones)
    dodge = 0.6 / max(len(zones), 1)
    for i, zone in enumerate(zones):
        z = rows[rows["zone"] == zone]
        if z.empty:
            continue
        if cls == ANY:
            z = z.groupby("week", as_index=False)[["estimate", "low", "high", "peak"]].sum(min_count=1)
        x = z["week"].map(index).astype(float) + dodge * (i - (len(zones) - 1) / 2)
        est = z["estimate"].astype(float)
        ax.vlines(x, z["low"].astype(float), z["high"].astype(float).fillna(est), color=colours[zone],
                  alpha=0.25, lw=7, label=f"{zone}: 90% interval")
        ax.plot(x, est, "o", color=colours[zone], ms=5, label=f"{zone}: estimate of unique cars in the week")
    title = "any rail car (classes summed)" if cls == ANY else cls.replace("_", " ")
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel("rail cars")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def _reported_mark(ax: Axes, f: ReportedFigure, x: float, verdict: str | None,
                   repeats: Sequence[ReportedFigure]) -> None:
    """A reported figure at its date: its qualifier's marker and range, its source and verdict."""
    lo, hi = f.bounds()
    marker, words = _QUALIFIER_MARK[f.qualifier.value]
    hi_plot = hi if math.isfinite(hi) else f.count * 1.25
    ax.errorbar([x], [f.count], yerr=[[f.count - lo], [hi_plot - f.count]], fmt=marker, color="black",
                mfc="gold", ms=10, capsize=3, lw=1, label=f"reported figure: {words}")
    note = f"{f.date_label}: {f.count:g} ({f.source.split(',')[0]})" + (f": {verdict}" if verdict else "")
    if repeats:
        note += "\nalso quoted as " + ", ".join(r.qualifier.value.replace("_", " ") for r in repeats)
    ax.annotate(note, (x, f.count), xytext=(8, 8), textcoords="offset points", fontsize=7,
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85, "lw": 0.5})


def _reported_in(ax: Axes, figures: Sequence[ReportedFigure], window: tuple[pd.Timestamp, pd.Timestamp]
                 ) -> list[float]:
    """Mark the figures dated in ``window`` (★ snapshot, ◆ weekly); their counts."""
    counts = []
    for f in figures:
        x = pd.Timestamp(f.end).tz_localize("UTC") + pd.Timedelta(hours=12)
        if not window[0] <= x < window[1]:
            continue
        marker = "*" if f.quantity is Quantity.SNAPSHOT else "D"
        ax.plot([x], [f.count], marker, color="gold", mec="black", ms=16,
                label=f"reported {f.quantity.value}: {f.qualifier.value} {f.count:g}")
        counts.append(f.count)
    return counts


def _one_legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend for the whole figure, below it: each entry once, whatever panel drew it."""
    handles: dict[str, Artist] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles=list(handles.values()), labels=list(handles.keys()), loc="outside lower center",
               ncols=3, fontsize=7, frameon=False)


def _stamp_simulated(fig: Figure) -> None:
    """SIMULATED across the picture, so that a copied PNG keeps the caveat."""
    fig.text(0.5, 0.5, "SIMULATED IMAGERY", fontsize=42, color="#c00000", alpha=0.13, rotation=20,
             ha="center", va="center", weight="bold")
    fig.text(0.99, 0.995, "SIMULATED", fontsize=9, color="#c00000", ha="right", va="top", weight="bold")


def snapshot_figure(frames: pd.DataFrame, zones: Sequence[str], caption: Caption | None = None) -> Figure:
    """Per class: the detector count of each scene per zone, the line broken where a scene did
    not observe the zone (✕ on the axis there: unknown, not zero); one legend below."""
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
            # NaN where unobserved: matplotlib breaks the line there instead of joining across it
            ax.plot(t, z["count"].astype(float), "o-", color=colours[zone], label=f"{zone}")
            if (~seen).any():
                k = list(zones).index(zone)
                ax.plot(t[~seen], np.full((~seen).sum(), 0.03 + 0.05 * k), "x", color=colours[zone], ms=8,
                        mew=2, transform=edge, label=f"{zone}: not observed (cloud / outside)")
        ax.set_title(f"{cls.replace('_', ' ')}: cars per scene (snapshot counts)", loc="left", fontsize=10)
        ax.set_ylabel("rail cars in the zone")
        ax.set_xlabel("acquisition time (UTC)")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
        _date_axis(ax)
    _one_legend(fig, list(axes))
    if caption is not None:
        fig.text(0.01, 0.0, caption.text(), fontsize=7, va="bottom", color="#444444")
        if caption.simulated:
            _stamp_simulated(fig)
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
    window = (start - pd.Timedelta(days=3), end + pd.Timedelta(days=3))
    shown = [r for r in reported if r.zone == zone and r.class_name == class_name]
    top = max([top, *_reported_in(ax, shown, window)])
    ax.axvspan(start, end, color="grey", alpha=0.06, lw=0)
    ax.set_xlim(start - pd.Timedelta(days=3), end + pd.Timedelta(days=3))
    ax.set_ylim(0, top * 1.15)
    ax.set_title(f"{zone}, {class_name}: snapshots against the weekly estimate, {week} (shaded)")
    ax.set_xlabel("acquisition time (UTC)")
    ax.set_ylabel("rail cars")
    _date_axis(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
