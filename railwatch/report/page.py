"""``report.html``: one self-contained page an analyst opens from disk, with no network.

Built with Bokeh and its inline resources (its JavaScript is inside the page; nothing is
fetched): per scene and zone, the imagery (downsampled, with the busiest parts at the scene's
native resolution placed where they lie, so zooming into them shows every pixel) and every car's
oriented box coloured by class — hover for class, the finder's and the namer's confidence,
scene and time; click a class in the legend to hide it. A change view shows, for a zone,
consecutive scenes with each car marked stayed, arrived or departed (the matching the weekly
``arrivals`` use). Then the weekly series with intervals and the reported figures, and links to
the CSVs. The page is data only: the views are read by the caller (:mod:`railwatch.report.outputs`).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from railwatch.classes import CLASSES
from railwatch.count.matching import match_cars
from railwatch.count.registration import register
from railwatch.detect.detections import Detections
from railwatch.report.comparison import Comparison
from railwatch.report.plot import Caption, class_colours
from railwatch.report.quicklook import Bounds
from railwatch.report.reported import ReportedFigure

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource, TabPanel
    from bokeh.models.ui import UIElement
    from bokeh.plotting import figure as Figure  # noqa: N812 (bokeh names its class in lower case)

__all__ = ["Picture", "ZoneView", "report_page"]

#: Colours of the change view.
_CHANGE_COLOURS = {"stayed": "#4f8fd6", "arrived": "#2ca02c", "departed": "#d62728"}


@dataclass(frozen=True, slots=True)
class Picture:
    """Pixels ``(rows, cols, 3)`` uint8 covering ``bounds`` (site CRS, metres)."""

    rgb: np.ndarray
    bounds: Bounds

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError("a picture is (rows, cols, 3) uint8")

    def data_uri(self, quality: int = 82) -> str:
        buffer = io.BytesIO()
        Image.fromarray(self.rgb).save(buffer, format="JPEG", quality=quality)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True, slots=True)
class ZoneView:
    """One scene over one zone: its picture (``None`` when the imagery was not read), crops at
    native resolution, the scene's detections in the zone, and when it was taken."""

    scene: str
    acquired: datetime
    zone: str
    bounds: Bounds
    detections: Detections
    picture: Picture | None = None
    crops: tuple[Picture, ...] = ()


def report_page(
    title: str,
    views: Sequence[ZoneView],
    weekly: pd.DataFrame,
    comparisons: Sequence[Comparison],
    caption: Caption,
    files: Sequence[str],
    next_steps: Sequence[str] = (),
) -> str:
    """The page's HTML (Bokeh, inline resources: it opens with no network); ``next_steps``: what
    to look at next, one line each."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import TabPanel, Tabs
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    banner = ('<p style="color:#c00000;font-weight:bold">SIMULATED imagery: the scenes counted here '
              "were rendered by railwatch's simulator.</p>" if caption.simulated else "")
    links = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    head = f"<h1>{html.escape(title)}</h1>{banner}<p>{html.escape(caption.text())}</p><p>Tables: {links}</p>"
    parts: list[UIElement] = [Div(text=head, sizing_mode="stretch_width")]
    if views:
        parts += [Div(text="<h2>Scenes and zones</h2><p>Hover a box for the car; click a class in "
                           "the legend to hide it; zoom into a marked square for native resolution.</p>"),
                  Tabs(tabs=[TabPanel(child=_view_figure(v, k), title=f"{v.zone} · {v.scene}")
                             for k, v in enumerate(views)])]
    changes = _change_panels(views)
    if changes:
        parts += [Div(text="<h2>What changed</h2><p>Consecutive scenes of a zone, co-registered: each "
                           "car of the later scene stayed or arrived; cars of the earlier scene no "
                           "longer there departed.</p>"), Tabs(tabs=changes)]
    if next_steps:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in next_steps)
        parts.append(Div(text=f"<h2>What to look at next</h2><ul>{items}</ul>", sizing_mode="stretch_width"))
    parts += [Div(text="<h2>Weekly series</h2><p>Estimate of unique cars per ISO week (dots) with its 90% "
                       "interval (bars); reported figures as gold marks (hover for the source).</p>"),
              *_weekly_figures(weekly, comparisons)]
    return str(file_html(column(*parts, sizing_mode="stretch_width"), INLINE, title))


def _view_figure(view: ZoneView, index: int, marks: dict[str, np.ndarray] | None = None) -> Figure:
    from bokeh.models import HoverTool, Range1d
    from bokeh.models.renderers import DataRenderer
    from bokeh.plotting import figure

    minx, miny, maxx, maxy = view.bounds
    width = 760
    height = max(240, min(900, round(width * (maxy - miny) / max(maxx - minx, 1e-9))))
    fig = figure(name=f"view-{index}", width=width, height=height, match_aspect=True,
                 x_range=Range1d(start=minx, end=maxx), y_range=Range1d(start=miny, end=maxy),
                 tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
                 x_axis_label="easting (m)", y_axis_label="northing (m)")
    for picture in ([view.picture] if view.picture is not None else []) + list(view.crops):
        x0, y0, x1, y1 = picture.bounds
        fig.image_url(url=[picture.data_uri()], x=x0, y=y1, w=x1 - x0, h=y1 - y0, anchor="top_left")
    renderers: list[DataRenderer] = []
    d = view.detections
    groups = marks if marks is not None else {c: np.asarray(d.class_id) == k for k, c in enumerate(CLASSES)}
    colours = {**class_colours(), **_CHANGE_COLOURS}
    for name, chosen in groups.items():
        shown = d[chosen] if len(d) else d
        if marks is None and not len(shown):
            continue
        renderers.append(fig.patches("xs", "ys", source=_box_source(shown, view), fill_alpha=0.05,
                                     fill_color=colours[name], line_color=colours[name], line_width=2,
                                     legend_label=name, name=f"boxes-{index}-{name}"))
    if renderers:
        fig.add_tools(HoverTool(renderers=renderers, tooltips=[
            ("class", "@cls"), ("finder", "@conf{0.00}"), ("namer", "@namer{0.00}"), ("scene", "@scene"),
            ("time", "@acquired")]))
        fig.legend.click_policy = "hide"
        fig.legend.location = "top_left"
    if not fig.renderers:  # no picture and no car: say so (an empty plot would read as broken)
        fig.text(x=[(minx + maxx) / 2], y=[(miny + maxy) / 2], text=["no car found and no picture kept here"],
                 text_align="center", text_baseline="middle", text_color="#555555")
    return fig


def _box_source(d: Detections, view: ZoneView) -> ColumnDataSource:
    from bokeh.models import ColumnDataSource

    corners = np.asarray(d.corners, dtype=float).reshape(-1, 4, 2)
    naming = d.naming if len(d) else np.zeros(0)
    return ColumnDataSource({
        "xs": [list(c[:, 0]) for c in corners], "ys": [list(c[:, 1]) for c in corners],
        "cls": [CLASSES[int(k)] for k in d.class_id], "conf": [float(v) for v in d.confidence],
        "namer": [None if v != v else float(v) for v in naming],
        "scene": [view.scene] * len(d), "acquired": [view.acquired.isoformat()] * len(d),
    })


def _change_panels(views: Sequence[ZoneView]) -> list[TabPanel]:
    """For each zone, one panel per pair of consecutive scenes that both saw it."""
    from bokeh.models import TabPanel

    panels: list[TabPanel] = []
    by_zone: dict[str, list[ZoneView]] = {}
    for v in sorted(views, key=lambda v: v.acquired):
        by_zone.setdefault(v.zone, []).append(v)
    for zone, seq in by_zone.items():
        for a, b in itertools.pairwise(seq):
            da, db = a.detections, b.detections
            reg = register(da.centres, da.class_id, db.centres, db.class_id) if len(da) and len(db) else None
            match = match_cars(da.centres, da.class_id, db.centres, db.class_id, reg)
            stayed = np.zeros(len(db), dtype=bool)
            stayed[match.pairs[:, 1]] = True
            departed = da[match.departures] if len(da) else da
            both = Detections.concat([db, departed], db.crs) if len(departed) else db
            n_b = len(db)
            marks = {"stayed": np.r_[stayed, np.zeros(len(both) - n_b, bool)],
                     "arrived": np.r_[~stayed, np.zeros(len(both) - n_b, bool)],
                     "departed": np.r_[np.zeros(n_b, bool), np.ones(len(both) - n_b, bool)]}
            view = ZoneView(b.scene, b.acquired, zone, b.bounds, both, b.picture, b.crops)
            title = (f"{zone}: {a.acquired:%Y-%m-%d} → {b.acquired:%Y-%m-%d} "
                     f"({int((~stayed).sum())} arrived, {len(match.departures)} departed)")
            panels.append(TabPanel(child=_view_figure(view, 1000 + len(panels), marks), title=title))
    return panels


def _weekly_figures(weekly: pd.DataFrame, comparisons: Sequence[Comparison]) -> list[Figure]:
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    if weekly.empty:
        return []
    weeks = sorted(weekly["week"].dropna().unique())
    index = {w: i for i, w in enumerate(weeks)}
    starts = {w: pd.Timestamp(s) for w, s in zip(weekly["week"], weekly["week_start"], strict=True)}
    figures: list[Figure] = []
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    classes = [c for c in CLASSES if (weekly[weekly["class"] == c]["estimate"].fillna(0) > 0).any()]
    for cls in classes:
        fig = figure(width=760, height=260, title=cls.replace("_", " "), x_axis_label="ISO week",
                     y_axis_label="rail cars", tools="pan,wheel_zoom,reset,save")
        rows = weekly[weekly["class"] == cls]
        zones = list(dict.fromkeys(rows["zone"]))
        for k, zone in enumerate(zones):
            z = rows[(rows["zone"] == zone) & rows["estimate"].notna()]
            x = [index[w] + 0.12 * (k - (len(zones) - 1) / 2) for w in z["week"]]
            fig.segment(x, z["low"].astype(float), x, z["high"].astype(float).fillna(z["estimate"]),
                        line_width=6, alpha=0.3, color=palette[k % len(palette)])
            fig.scatter(x, z["estimate"].astype(float), size=7, color=palette[k % len(palette)],
                        legend_label=zone)
        reported = [c for c in comparisons if c.figure.class_name == cls and not c.distant]
        if reported and starts:
            t0 = min(starts.values())
            src = ColumnDataSource({
                "x": [(pd.Timestamp(c.figure.end) - t0) / pd.Timedelta(days=7) for c in reported],
                "y": [c.figure.count for c in reported],
                "text": [_figure_text(c.figure, c) for c in reported]})
            marks = fig.scatter("x", "y", source=src, marker="star", size=16, color="gold",
                                line_color="black", legend_label="reported figure")
            fig.add_tools(HoverTool(renderers=[marks], tooltips=[("reported", "@text")]))
        fig.xaxis.ticker = list(range(len(weeks)))
        fig.xaxis.major_label_overrides = {i: w for i, w in enumerate(weeks)}
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        figures.append(fig)
    return figures


def _figure_text(f: ReportedFigure, c: Comparison) -> str:
    return (f"{f.date_label}: {f.qualifier.value.replace('_', ' ')} {f.count:g} ({f.source}); "
            f"{c.verdict.value.replace('_', ' ')}")
