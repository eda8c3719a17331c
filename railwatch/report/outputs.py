"""The outputs of a store, rebuilt in full each time: CSV, GeoJSON, PNG plots and ``report.md``.

Everything is derived from the store (scenes, detections, counts, the model's measured
accuracy) and the reported-figures table, so ``railwatch series`` can rebuild it without the
imagery. Only the quicklooks read pixels, and only when asked to and the scene files are still
where the store last saw them.

The folder is written as a set. Each file goes to a temporary name in the same folder and is
renamed over the old one, so no file is ever seen half written; ``run.json`` is removed first
and written last, naming the run and every file of the set with its sha256. A folder without
``run.json``, or whose files differ from it, holds an interrupted write (:func:`check_outputs`).
File names made from zone or scene names go through :func:`file_slug`: nothing is written
outside the folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from railwatch.count.frames import CountedScene
from railwatch.errors import SceneError
from railwatch.report.comparison import ComparisonSettings, Verdict, comparison_table, distant_summary
from railwatch.report.inputs import ReportInputs, ReportSettings, ReportTables, build_tables, iso_utc
from railwatch.report.outputset import OutputSet, file_slug
from railwatch.report.page import report_page
from railwatch.report.plot import Caption, snapshot_figure, weekly_figure
from railwatch.report.qgis import detections_style, review_style
from railwatch.report.quicklook import (
    CROP_SIDE_M,
    save_png,
)
from railwatch.report.review import review_features
from railwatch.report.views import page_views, scene_quicklooks
from railwatch.store.records import SceneRecord

__all__ = ["write_report"]


def write_report(
    out: Path, inputs: ReportInputs, settings: ReportSettings | None = None
) -> ReportTables:
    """Write every output into ``out`` as one set and return the tables.

    ``run.json`` is removed first and written last; each file is written to a temporary name
    and renamed. Files the previous ``run.json`` listed that this run does not write (a
    quicklook of a scene no longer compared) are removed; nothing else in ``out`` is touched.
    """
    s = settings or ReportSettings()
    outputs = OutputSet(out)
    tables = build_tables(inputs, s)
    put = outputs.put

    put("detections.geojson", lambda p: _write_geojson(p, inputs.scenes))
    put("detections.qml", lambda p: p.write_text(detections_style(), encoding="utf-8"))
    put("review.geojson", lambda p: p.write_text(json.dumps(
        {"type": "FeatureCollection", "features": review_features(inputs.scenes)}), encoding="utf-8"))
    put("review.qml", lambda p: p.write_text(review_style(), encoding="utf-8"))
    put("frames.csv", lambda p: _frames_csv(tables.frames).to_csv(p, index=False))
    put("weekly.csv", lambda p: _weekly_csv(tables.weekly).to_csv(p, index=False))
    put("comparison.csv",
        lambda p: comparison_table(tables.comparisons).round(2).to_csv(p, index=False))
    put("rejected.csv", lambda p: pd.DataFrame.from_records(
        [{"scene": r.name, "path": r.path, "reason": r.reason, "message": r.message,
          "recorded": r.recorded.isoformat()} for r in inputs.rejections],
        columns=["scene", "path", "reason", "message", "recorded"],
    ).to_csv(p, index=False))
    plots: list[tuple[str, str]] = []
    if not tables.frames.empty:
        counted = [r for r in inputs.records if r.status == "counted"]
        caption = Caption(model=f"{inputs.model.name} (sha256 {inputs.model.sha256[:12]})",
                          scenes=len(counted), simulated=any(r.simulated for r in counted))
        weekly_fig = weekly_figure(tables.weekly, inputs.zones, inputs.figures,
                                   comparisons=tables.comparisons, caption=caption)
        put("weekly.png", lambda p: _save(weekly_fig, p))
        snapshot_fig = snapshot_figure(tables.frames, inputs.zones, caption=caption)
        put("snapshots.png", lambda p: _save(snapshot_fig, p))
        plots = [("Weekly series", "weekly.png"), ("Per-scene snapshot counts", "snapshots.png")]
    quicklooks, skipped = (_quicklooks(outputs, inputs, tables, s) if s.quicklooks else ([], []))
    markdown = _markdown(inputs, tables, plots, quicklooks, skipped, s)
    put("report.md", lambda p: p.write_text(markdown, encoding="utf-8"))
    counted = [r for r in inputs.records if r.status == "counted"]
    page = report_page(
        f"railwatch report: {inputs.site.name}", page_views(inputs, s), tables.weekly, tables.comparisons,
        Caption(model=f"{inputs.model.name} (sha256 {inputs.model.sha256[:12]})", scenes=len(counted),
                simulated=any(r.simulated for r in counted)),
        [n for n in outputs.written if n.endswith((".csv", ".geojson", ".md"))],
        what_next(tables, inputs.site.name))
    put("report.html", lambda p: p.write_text(page, encoding="utf-8"))
    outputs.finish({
        "run_id": inputs.run.id, "run_started": iso_utc(inputs.run.started), "site": inputs.site.name,
        "model_sha256": inputs.model.sha256, "model_name": inputs.model.name,
        "scenes_counted": len(inputs.scenes), "scenes_rejected": len(inputs.rejections),
    })
    return tables


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, format="png")


def _frames_csv(frames: pd.DataFrame) -> pd.DataFrame:
    df = frames.copy()
    if not df.empty:
        df["acquired"] = [iso_utc(pd.Timestamp(t).to_pydatetime()) for t in df["acquired"]]
        df["count"] = df["count"].astype("Int64")
        df["coverage"] = df["coverage"].round(4)
    return df


def _weekly_csv(weekly: pd.DataFrame) -> pd.DataFrame:
    df = weekly.copy()
    for col in ("peak", "mean", "arrivals", "estimate", "low", "high"):
        df[col] = df[col].astype(float).round(1)
    df["coverage"] = df["coverage"].astype(float).round(3)
    return df


def _write_geojson(path: Path, scenes: Sequence[CountedScene]) -> None:
    features = []
    for c in scenes:
        d = c.detections
        if not len(d):
            continue
        features.extend(d.features(iso_utc(c.acquired)))
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")


def _quicklooks(
    outputs: OutputSet, inputs: ReportInputs, tables: ReportTables, s: ReportSettings
) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
    """PNGs of the scene compared with each figure (those observed), around the figure's zone:
    the whole zone and crops of its busiest parts. Returns (heading, [(caption, file)]) per
    scene and zone, and why some could not be drawn."""
    counted = {r.name for r in inputs.records if r.status == "counted"}
    done: set[tuple[str, str]] = set()
    made: list[tuple[str, list[tuple[str, str]]]] = []
    skipped = []
    for comp in tables.comparisons:
        key = (comp.scene, comp.figure.zone)
        if comp.verdict is Verdict.NOT_OBSERVED or comp.scene not in counted or key in done:
            continue
        done.add(key)
        try:
            looks = scene_quicklooks(inputs, comp.scene, comp.figure.zone, s.quicklook_max_side,
                                     s.quicklook_crops)
        except (SceneError, OSError) as exc:
            skipped.append(f"{comp.scene}: {exc}")
            continue
        files = []
        stem = f"quicklook_{file_slug(Path(comp.scene).stem, 'scene')}_{file_slug(comp.figure.zone, 'zone')}"
        for look in looks:
            name = stem + (f"_{file_slug(look.suffix, 'part')}.png" if look.suffix else ".png")
            outputs.put(name, partial(save_png, look.image))
            files.append((look.caption, name))
        made.append((f"{comp.scene}, zone {comp.figure.zone} (nearest scene to the figure of "
                     f"{comp.figure.date_label})", files))
    return made, skipped


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else ("∞" if math.isinf(v) else f"{v:g}")
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_HOW_TO_READ = """\
## How to read this

Three different quantities appear here; they answer different questions and must not be mixed.

- **Snapshot** (`frames.csv` `count`, the per-scene chart): the cars the detector found in a zone
  in *one image* — cars present at one moment. A press figure such as "73 rail cars at Tumangang
  on 5 October 2023" is a snapshot. An empty count means the zone was **not observed** (under
  cloud, outside the image, no data: coverage below {min_cov:.0%}); it never means zero cars.
- **Weekly peak** (`weekly.csv` `peak`): the largest snapshot of the week. It is a lower bound on
  the cars that used the zone that week: cars that came and went between images are not in it.
- **Weekly estimate** (`weekly.csv` `estimate`, `low`–`high`): unique cars present in the zone at
  some time during the week. Consecutive images are co-registered and their cars matched, so
  parked cars are counted once and new arrivals are added. It corrects for the detector's
  measured precision and recall and, in `high`, allows for cars that may have come and gone
  unseen between images or while the zone was under cloud (90% interval; `high` empty: unknown).
  `arrivals` is the number of detected cars with no match in the previous observed image.
  A zone that trains only pass through (the bridge, crossed in minutes) is rarely imaged
  occupied: its estimate is what was seen, and only `high` speaks for the traffic across it.
- **Comparison** (`comparison.csv`): each reported figure is paired with the same kind of
  quantity — a snapshot with the counted image nearest in time (`days_apart`), a weekly figure
  with the weekly estimate. "approximately" means ±10%, "at least" a lower bound, "at most" and
  "up to" upper bounds. `consistent`: the measured 90% interval overlaps the reported range.
"""


def _markdown(
    inputs: ReportInputs,
    tables: ReportTables,
    plots: list[tuple[str, str]],
    quicklooks: list[tuple[str, list[tuple[str, str]]]],
    skipped: list[str],
    s: ReportSettings,
) -> str:
    counted = [r for r in inputs.records if r.status == "counted"]
    m = inputs.model
    shares = m.matrix.class_metrics() if m.matrix is not None else m.metrics
    metrics = ", ".join(f"{c} p={v.precision:.2f} r={v.recall:.2f}" for c, v in shares.items())
    unmeasured = m.matrix is None and all(v.precision == 1.0 and v.recall == 1.0 for v in m.metrics.values())
    correction = (
        f" Counts are corrected by the whole system's error matrix, measured on {m.matrix.measured_on}"
        " (`railwatch/count/errormatrix.py`)." if m.matrix is not None else ""
    )
    parts = [
        f"# railwatch report: {inputs.site.name}\n",
        *_provenance_notes(counted),
        f"Generated {iso_utc(datetime.now(UTC))}. Model `{m.name}` (sha256 `{m.sha256}`); measured "
        f"accuracy: {metrics}.{correction}"
        + (" No accuracy was measured for this model: intervals carry no detector error." if
           unmeasured else "") + "\n",
        f"Scenes counted: {len(counted)}; rejected: {len(inputs.rejections)} (see "
        "`rejected.csv`). Latest run: "
        f"{iso_utc(inputs.run.started)}, railwatch {inputs.run.versions.get('railwatch', '?')}.\n",
        _HOW_TO_READ.format(min_cov=s.min_coverage),
        "## Comparison with reported figures\n",
        _md_table(comparison_table(tables.comparisons)[
            ["date", "zone", "class", "quantity", "qualifier", "reported", "measured_quantity",
             "measured", "low", "high", "scene", "days_apart", "verdict", "quoted_as"]
        ].round(1)),
    ]
    listed = [c for c in tables.comparisons if not c.distant]
    n_verdicts = {v: sum(c.verdict is v for c in listed) for v in Verdict}
    parts.append(", ".join(f"{v.value}: {n}" for v, n in n_verdicts.items()) + "\n")
    if distant := distant_summary(tables.comparisons):
        parts.append(distant + "\n")
    parts += ["## What to look at next\n", *[f"- {line}" for line in what_next(tables, inputs.site.name)], ""]
    for title, png in plots:
        parts.append(f"## {title}\n\n![{title}]({png})\n")
    parts += _quicklook_section(quicklooks, skipped, s)
    weekly = _weekly_csv(tables.weekly)
    busy = weekly[(weekly["peak"].fillna(0) > 0) | (weekly["estimate"].fillna(0) > 0)]
    parts += ["## Weekly series (zones and classes with cars)\n", _md_table(busy)]
    parts += ["## Scenes\n", _md_table(_scene_table(counted))]
    return "\n".join(parts)


#: A reported figure is tested by a scene this close to its date (the comparison's window).
NEXT_WEEKS = 3


def what_next(tables: ReportTables, site: str) -> list[str]:
    """Which images to request next: for each reported figure near the batch that no scene
    could test, the place and dates a scene would have to show; the weeks whose intervals are
    widest for want of scenes (one more image there narrows the series most)."""
    lines = []
    for c in tables.comparisons:
        f = c.figure
        if c.distant or c.verdict is not Verdict.NOT_OBSERVED or f.site != site:
            continue
        what = f"{f.qualifier.value.replace('_', ' ')} {f.count:g}, {f.zone}"
        when = (f"inside {f.date_label}" if f.is_range
                else f"within {ComparisonSettings().max_days_apart:g} days of {f.date_label}")
        lines.append(f"the {f.date_label} figure ({what}) has no scene to test it "
                     f"({c.note or 'none observed the zone'}): a scene of {f.zone} {when} would")
    weekly = tables.weekly
    if not weekly.empty:
        w = weekly[weekly["estimate"].notna()].copy()
        w["width"] = w["high"].astype(float) - w["low"].astype(float)
        per_zone = w.groupby(["week", "zone"], as_index=False).agg(width=("width", "sum"),
                                                                  n_scenes=("n_scenes", "max"))
        for r in per_zone.sort_values("width", ascending=False).head(NEXT_WEEKS).itertuples(index=False):
            lines.append(f"{r.week}, {r.zone}: the widest interval ({r.width:.0f} cars over the classes) "
                         f"from {int(r.n_scenes)} scene(s); another scene of that week narrows it most")
        unseen = weekly[weekly["estimate"].isna()][["week", "zone"]].drop_duplicates()
        if len(unseen):
            first = unseen.iloc[0]
            lines.append(f"{len(unseen)} week × zone(s) have no observed scene at all (e.g. "
                         f"{first['week']}, {first['zone']}): any scene there is new evidence")
    return lines or ["every reported figure near these scenes was tested; no week lacks a scene"]


def _quicklook_section(quicklooks: list[tuple[str, list[tuple[str, str]]]], skipped: list[str],
                       s: ReportSettings) -> list[str]:
    if not (quicklooks or skipped):
        return [] if s.quicklooks else [
            "_Quicklooks are drawn only when the imagery is read (`railwatch count`)._\n"]
    parts = ["## Quicklooks\n",
             "Each scene and zone: the whole zone, then crops of its busiest parts (squares of "
             f"{CROP_SIDE_M:.0f} m at the scene's native resolution, every pixel enlarged alike) to check "
             "car by car. Boxes are coloured by class (legend under each image); zone outlines are "
             "white.\n"]
    for heading, files in quicklooks:
        parts.append(f"### {heading}\n")
        parts += [f"![{caption}]({png})\n" for caption, png in files]
    return parts + [f"- no quicklook for {why}\n" for why in skipped]


def _scene_table(counted: Sequence[SceneRecord]) -> pd.DataFrame:
    """The scenes counted; the ``simulated`` column only where some may be simulated."""
    scenes = pd.DataFrame.from_records(
        [{"scene": r.name, "acquired": iso_utc(r.acquired) if r.acquired else "", "crs": r.crs,
          "gsd_m": round(r.gsd or math.nan, 3), "sha256": r.content_sha256[:16],
          "simulated": {True: "yes", False: "no", None: "unknown"}[r.simulated]} for r in counted],
        columns=["scene", "acquired", "crs", "gsd_m", "sha256", "simulated"],
    )
    if all(r.simulated is False for r in counted):  # real imagery: no word of simulation
        scenes = scenes.drop(columns="simulated")
    return scenes


def _provenance_notes(counted: Sequence[SceneRecord]) -> list[str]:
    """The simulated-imagery banner, only where counted scenes are simulated (their STAC sidecar
    says so, as recorded in the store), and a note on scenes whose origin was not recorded."""
    simulated = sum(r.simulated is True for r in counted)
    unknown = sum(r.simulated is None for r in counted)
    notes = []
    if simulated:
        n = len(counted)
        which = ("The scene counted here is" if n == 1 else
                 f"All {n} scenes counted here are" if simulated == n else
                 f"{simulated} of the {n} scenes counted here {'is' if simulated == 1 else 'are'}")
        notes.append(
            f"> **Simulated imagery.** {which} **SIMULATED** (marked `railwatch:simulated: true` "
            "in the STAC sidecar): rendered by railwatch's scene simulator, not satellite images. "
            "Numbers computed from them describe a simulation, not real traffic at the crossing.\n"
        )
    if unknown:
        notes.append(
            f"> {unknown} of the {len(counted)} scenes were counted before the store recorded "
            "whether imagery is simulated; recount them (`railwatch count --force`) to know.\n"
        )
    return notes
