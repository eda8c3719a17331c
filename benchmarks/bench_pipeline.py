"""Benchmark 1: railwatch's pipeline against the naive full-frame baseline, on the sample site.

Quick and full mode: the bundled sample scenes (``sample_tiles/*.tif``, simulated at 0.5 m,
with truth in ``sample_tiles/truth/``) on the bundled site — one scene in quick mode, all of them
in full mode. Tiny mode (tests): a small simulated scene. One loaded model and runtime shared
by both sides. Timed per scene: railwatch's ``open_scene`` + ``observe_scene`` (chip plan over
the counting areas, warp onto the site grid, cloud mask, model, merge, zones, coverage) against
the whole frame resampled to the model's ground sample distance with the model over every chip
of it, same chip size, overlap and merge (:mod:`naive`). Runs are interleaved; per-scene medians
are summed. Recall is measured for both on the same truth: the visible cars whose centre lies in
the site's counting areas.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from common import (
    REPO,
    Profile,
    TimingStats,
    load_counted_detector,
    markdown_table,
    model_description,
    score,
    time_repeats,
    warm_up,
)
from naive import FrameDetections, detect_full_frame
from pyproj import Transformer
from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.classes import CLASSES
from railwatch.detect.detector import Detector, Runtime
from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.site import Site, load_site
from railwatch.training.evaluate import Evaluation, merge_evaluations

__all__ = ["markdown", "run"]

RUNTIME = Runtime.ONNX
#: The bundled sample scenes (simulated, 0.5 m) and their truth.
SAMPLE = REPO / "sample_tiles"


@dataclass(frozen=True, slots=True)
class Case:
    """One scene to time both approaches on, with its site and its visible cars in the counting
    areas (site CRS)."""

    path: Path
    site: Site
    true_corners: np.ndarray
    true_class: np.ndarray


def _quality(ev: Evaluation) -> dict[str, object]:
    s, cov = ev.any_class, ev.per_class["covered_car"]
    return {"recall": round(s.recall, 4), "precision": round(s.precision, 4), "f1": round(s.f1, 4),
            "covered_car_recall": round(cov.recall, 4), "n_true": s.n_true, "n_pred": s.n_pred}


def sample_cases(pattern: str) -> list[Case]:
    """The bundled sample scenes matching ``pattern`` on the bundled site, with their truth:
    the cars not under cloud whose centre lies in the site's counting areas."""
    site = load_site("tumangang_khasan")
    region = site.counting_region()
    to_site = Transformer.from_crs("EPSG:4326", site.crs.to_wkt(), always_xy=True)
    cases = []
    for path in sorted(SAMPLE.glob(pattern)):
        doc = json.loads((SAMPLE / "truth" / f"{path.stem}.geojson").read_text())
        corners, classes = [], []
        for f in doc["features"]:
            if f["properties"].get("under_cloud"):
                continue
            ring = np.asarray(f["geometry"]["coordinates"][0][:4], dtype=float)
            x, y = to_site.transform(ring[:, 0], ring[:, 1])
            corners.append(np.column_stack([x, y]))
            classes.append(CLASSES.index(f["properties"]["class"]))
        c = np.asarray(corners, dtype=float).reshape(-1, 4, 2)
        k = np.asarray(classes, dtype=np.int64)
        centre = c.mean(axis=1)
        inside = shapely.contains_xy(region, centre[:, 0], centre[:, 1])
        cases.append(Case(path, site, c[inside], k[inside]))
    if not cases:
        raise FileNotFoundError(f"no sample scene matches {SAMPLE / pattern}; run scripts/sample.sh")
    return cases


def _simulated_case(profile: Profile, detector: Detector, work: Path) -> tuple[Case, dict[str, object]]:
    site = benchmark_site(profile.pipeline_box, "pipeline")
    spec = SceneSpec(at=scene_time(Season.EARLY_AUTUMN), gsd=detector.gsd, haze=0.05, seed=11)
    t0 = time.perf_counter()
    sim = render_to_file(site, spec, Density.MEDIUM, work / "pipeline_scene.tif")
    true_corners, true_class = sim.truth_in(site.counting_region())
    about = {"source": f"simulated at {spec.gsd} m, {spec.season}, {Density.MEDIUM} yard",
             "cars_in_scene": len(sim.true_corners), "render_s": round(time.perf_counter() - t0, 2)}
    return Case(sim.path, site, true_corners, true_class), about


def _in_site(found: FrameDetections, path: Path, site: Site) -> FrameDetections:
    """The baseline's boxes (scene CRS) in the site's CRS."""
    with rasterio.open(path) as src:
        crs = src.crs
    if crs == site.crs or len(found.corners) == 0:
        return found
    tr = Transformer.from_crs(crs.to_wkt(), site.crs.to_wkt(), always_xy=True)
    x, y = tr.transform(found.corners[..., 0], found.corners[..., 1])
    return FrameDetections(np.stack([x, y], axis=-1), found.class_id, found.confidence, found.chips)


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Time both approaches ``profile.repeats`` times on each scene (interleaved), and score them."""
    detector, counter = load_counted_detector(model, RUNTIME)
    if profile.pipeline_sample is not None:
        cases = sample_cases(profile.pipeline_sample)
        about: dict[str, object] = {"source": f"sample_tiles/{profile.pipeline_sample} (simulated, 0.5 m)"}
    else:
        case, about = _simulated_case(profile, detector, work)
        cases = [case]
    warm_up(detector)
    keys = ("railwatch", "naive")
    runs: dict[str, list[float]] = {k: [] for k in keys}
    model_s: dict[str, list[float]] = {k: [] for k in keys}
    chips: dict[str, list[int]] = {k: [] for k in keys}
    evals: dict[str, list[Evaluation]] = {k: [] for k in keys}
    per_scene = []
    for case in cases:
        found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        scene_model: dict[str, list[float]] = {k: [] for k in keys}
        scene_chips: dict[str, int] = {}

        def railwatch_once(case: Case = case, found: dict = found, scene_model: dict = scene_model,
                           scene_chips: dict = scene_chips) -> None:
            counter.reset()
            scene = open_scene(case.path, case.site.crs, case.site.aoi_local)
            d = observe_scene(scene, case.site, detector).detections
            found["railwatch"] = (d.corners, d.class_id, d.confidence)
            scene_chips["railwatch"] = counter.chips
            scene_model["railwatch"].append(counter.seconds)

        def naive_once(case: Case = case, found: dict = found, scene_model: dict = scene_model,
                       scene_chips: dict = scene_chips) -> None:
            counter.reset()
            d = _in_site(detect_full_frame(case.path, detector), case.path, case.site)
            found["naive"] = (d.corners, d.class_id, d.confidence)
            scene_chips["naive"] = counter.chips
            scene_model["naive"].append(counter.seconds)

        stats = time_repeats({"railwatch": railwatch_once, "naive": naive_once}, profile.pipeline_repeats)
        region = case.site.counting_region()
        row: dict[str, object] = {"scene": case.path.name, "cars_in_counting_areas": len(case.true_corners)}
        for k in keys:
            corners, cls, conf = found[k]
            centre = corners.mean(axis=1) if len(corners) else np.zeros((0, 2))
            inside = shapely.contains_xy(region, centre[:, 0], centre[:, 1])
            ev = score(k, corners[inside], cls[inside], conf[inside], case.true_corners, case.true_class)
            evals[k].append(ev)
            runs[k].extend(stats[k].seconds)
            model_s[k].extend(scene_model[k])
            chips[k].append(scene_chips[k])
            row[k] = {"median_s": round(stats[k].median, 3), "chips": scene_chips[k],
                      "recall": round(ev.any_class.recall, 4)}
        row["speedup"] = round(stats["naive"].median / stats["railwatch"].median, 3)
        per_scene.append(row)
        print(f"  {case.path.name}: railwatch {stats['railwatch'].median:.1f} s, naive "
              f"{stats['naive'].median:.1f} s, {row['speedup']}x", file=sys.stderr, flush=True)
    approaches = {}
    for k in keys:
        total_s = sum(r[k]["median_s"] for r in per_scene)  # type: ignore[index]
        pooled = merge_evaluations(k, evals[k])
        approaches[k] = {
            **TimingStats(tuple(runs[k])).as_dict(),
            "chips": int(statistics.median(chips[k])), "total_chips": sum(chips[k]),
            "total_s": round(total_s, 3), "chips_per_s": round(sum(chips[k]) / total_s, 2),
            "model_median_s": round(statistics.median(model_s[k]), 4),
            "model_share": round(sum(model_s[k]) / sum(runs[k]), 3),
            **_quality(pooled),
        }
    per_run = [n / r for n, r in zip(runs["naive"], runs["railwatch"], strict=True)]
    first = cases[0]
    rows, cols = _shape(first.path)
    site = first.site
    n_true = sum(len(c.true_corners) for c in cases)
    return {
        "benchmark": "pipeline",
        "runtime": str(RUNTIME),
        "model": model_description(detector.manifest),
        "repeats": profile.pipeline_repeats,
        "scene": {
            **about, "scenes": len(cases), "file": first.path.name, "rows": rows, "cols": cols,
            "megapixels": round(rows * cols / 1e6, 2), "model_gsd_m": detector.gsd,
            "site_bounds_utm": [round(v, 1) for v in site.aoi_local.bounds],
            "frame_area_km2": round(site.aoi_local.area / 1e6, 4),
            "counting_area_km2": round(site.counting_region().area / 1e6, 4),
            "cars_in_counting_areas": n_true,
        },
        "per_scene": per_scene,
        "railwatch": approaches["railwatch"],
        "naive": approaches["naive"],
        "speedup_total": round(approaches["naive"]["total_s"] / approaches["railwatch"]["total_s"], 3),
        "speedup_median": round(statistics.median(per_run), 3),
        "speedup_per_run": [round(x, 3) for x in per_run],
        "target": "railwatch >= 3x faster than naive, recall not lower",
    }


def _shape(path: Path) -> tuple[int, int]:
    with rasterio.open(path) as src:
        return src.height, src.width


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    scene = result["scene"]
    rows = []
    for key, label in (("railwatch", "railwatch (chip plan over the counting areas)"),
                       ("naive", "naive (every chip of the full frame)")):
        r = result[key]
        rows.append([label, r["chips"], r["total_s"], r["median_s"], r["model_median_s"], r["spread"],
                     r["chips_per_s"], r["recall"], r["covered_car_recall"], r["precision"], r["n_pred"]])
    table = markdown_table(
        ["approach", "chips/scene", "total s", "median s/scene", "of which model s", "spread",
         "chips/s", "recall", "covered recall", "precision", "predicted"], rows)
    per_scene = markdown_table(
        ["scene", "cars", "railwatch s", "naive s", "speed-up", "railwatch recall", "naive recall"],
        [[r["scene"], r["cars_in_counting_areas"], r["railwatch"]["median_s"], r["naive"]["median_s"],
          r["speedup"], r["railwatch"]["recall"], r["naive"]["recall"]] for r in result["per_scene"]])
    return "\n".join([
        "## 1. Pipeline against the naive full-frame baseline",
        "",
        f"Scenes: {scene['source']}; {scene['scenes']} scene(s) of {scene['rows']} × {scene['cols']} px "
        f"({scene['megapixels']} Mpx), model at {scene['model_gsd_m']} m; "
        f"frame {scene['frame_area_km2']} km², "
        f"counting areas {scene['counting_area_km2']} km²; {scene['cars_in_counting_areas']} visible cars "
        f"in the counting areas. Runtime for both: {result['runtime']}; {result['repeats']} interleaved "
        "run(s) each per scene. railwatch = open_scene + observe_scene (warp onto the site grid, cloud "
        "mask, chips, model, merge, zones, coverage); naive = the frame resampled to the model's ground "
        "sample distance, every chip, same merge. Recall at rotated IoU 0.5 on the counting areas.",
        "",
        table,
        "",
        f"**Speed-up (total naive / total railwatch): {result['speedup_total']}×**; median of paired runs "
        f"{result['speedup_median']}× (per run: {', '.join(str(x) for x in result['speedup_per_run'])}). "
        "Target: ≥ 3× with no lower recall.",
        "",
        per_scene,
    ])
