"""Benchmark 1: railwatch's corridor-only pipeline against the naive full-frame baseline.

One simulated scene of the site (rendered at the model's ground sample distance, so the
baseline can chip it as it is), one loaded model and runtime shared by both sides. Timed:
railwatch's ``open_scene`` + ``observe_scene`` (windows around the counting areas, warp,
cloud mask, chip plan, model, merge, zones, coverage) against reading the whole frame and
running the model over every chip of it with the same chip size, overlap and merge
(:mod:`naive`). Runs are interleaved; medians are compared. Recall is measured for both on
the same truth: the visible cars whose centre lies in the site's counting areas.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from common import (
    Profile,
    load_counted_detector,
    markdown_table,
    model_description,
    score,
    time_repeats,
    warm_up,
)
from naive import FrameDetections, detect_full_frame
from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.detections import Detections
from railwatch.detector import Runtime
from railwatch.observation import observe_scene
from railwatch.scene import open_scene
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.training.evaluate import Evaluation

__all__ = ["markdown", "run"]

RUNTIME = Runtime.ONNX


def _quality(ev: Evaluation) -> dict[str, object]:
    s, cov = ev.any_class, ev.per_class["covered_car"]
    return {"recall": round(s.recall, 4), "precision": round(s.precision, 4), "f1": round(s.f1, 4),
            "covered_car_recall": round(cov.recall, 4), "n_true": s.n_true, "n_pred": s.n_pred}


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Render the scene, time both approaches ``profile.repeats`` times, and score them."""
    detector, counter = load_counted_detector(model, RUNTIME)
    site = benchmark_site(profile.pipeline_box, "pipeline")
    spec = SceneSpec(at=scene_time(Season.EARLY_AUTUMN), gsd=detector.gsd, haze=0.05, seed=11)
    t0 = time.perf_counter()
    sim = render_to_file(site, spec, Density.MEDIUM, work / "pipeline_scene.tif")
    render_s = time.perf_counter() - t0
    region = site.counting_region()
    warm_up(detector)
    found: dict[str, Detections | FrameDetections] = {}
    chips: dict[str, int] = {}
    model_s: dict[str, list[float]] = {"railwatch": [], "naive": []}

    def railwatch_once() -> None:
        counter.reset()
        scene = open_scene(sim.path, site.crs, site.aoi_local)
        found["railwatch"] = observe_scene(scene, site, detector).detections
        chips["railwatch"] = counter.chips
        model_s["railwatch"].append(counter.seconds)

    def naive_once() -> None:
        counter.reset()
        found["naive"] = detect_full_frame(sim.path, detector)
        chips["naive"] = counter.chips
        model_s["naive"].append(counter.seconds)

    stats = time_repeats({"railwatch": railwatch_once, "naive": naive_once}, profile.repeats)
    true_corners, true_class = sim.truth_in(region)
    naive = found["naive"]
    centre = naive.corners.mean(axis=1) if len(naive.corners) else np.zeros((0, 2))
    in_region = shapely.contains_xy(region, centre[:, 0], centre[:, 1])
    rw = found["railwatch"]
    evals = {
        "railwatch": score("railwatch", rw.corners, rw.class_id, rw.confidence, true_corners, true_class),
        "naive": score("naive", naive.corners[in_region], naive.class_id[in_region],
                       naive.confidence[in_region], true_corners, true_class),
    }
    rows, cols = _shape(sim.path)
    approaches = {
        k: {**stats[k].as_dict(), "chips": chips[k], "chips_per_s": round(chips[k] / stats[k].median, 2),
            "model_median_s": round(statistics.median(model_s[k]), 4),
            **_quality(evals[k])}
        for k in ("railwatch", "naive")
    }
    per_run = [n / r for n, r in zip(stats["naive"].seconds, stats["railwatch"].seconds, strict=True)]
    return {
        "benchmark": "pipeline",
        "runtime": str(RUNTIME),
        "model": model_description(detector.manifest),
        "repeats": profile.repeats,
        "scene": {
            "file": sim.path.name, "rows": rows, "cols": cols, "megapixels": round(rows * cols / 1e6, 2),
            "gsd_m": spec.gsd, "season": str(spec.season), "yard": str(Density.MEDIUM),
            "site_bounds_utm": [round(v, 1) for v in site.aoi_local.bounds],
            "frame_area_km2": round(site.aoi_local.area / 1e6, 4),
            "counting_area_km2": round(region.area / 1e6, 4),
            "cars_in_scene": len(sim.true_corners), "cars_in_counting_areas": len(true_corners),
            "render_s": round(render_s, 2),
        },
        "railwatch": approaches["railwatch"],
        "naive": approaches["naive"],
        "speedup_median": round(stats["naive"].median / stats["railwatch"].median, 3),
        "speedup_per_run": [round(x, 3) for x in per_run],
        "target": "railwatch >= 3x faster than naive, recall not lower",
    }


def _shape(path: Path) -> tuple[int, int]:
    import rasterio

    with rasterio.open(path) as src:
        return src.height, src.width


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    scene = result["scene"]
    rows = []
    for key, label in (("railwatch", "railwatch (corridor-only chip plan)"),
                       ("naive", "naive (every chip of the full frame)")):
        r = result[key]
        rows.append([label, r["chips"], r["median_s"], r["model_median_s"], r["spread"], r["chips_per_s"],
                     r["recall"], r["covered_car_recall"], r["precision"], r["n_pred"]])
    table = markdown_table(
        ["approach", "chips", "median s", "of which model s", "spread", "chips/s", "recall",
         "covered recall", "precision", "predicted"], rows)
    return "\n".join([
        "## 1. Pipeline against the naive full-frame baseline",
        "",
        f"Scene: simulated {scene['rows']} × {scene['cols']} px ({scene['megapixels']} Mpx) at "
        f"{scene['gsd_m']} m, {scene['season']}, {scene['yard']} yard; frame {scene['frame_area_km2']} km², "
        f"counting areas {scene['counting_area_km2']} km²; {scene['cars_in_counting_areas']} visible cars "
        f"in the counting areas (of {scene['cars_in_scene']}). Runtime for both: {result['runtime']}; "
        f"{result['repeats']} interleaved runs each. Recall at rotated IoU 0.5 on the counting areas.",
        "",
        table,
        "",
        f"**Speed-up (median naive / median railwatch): {result['speedup_median']}×** "
        f"(per run: {', '.join(str(x) for x in result['speedup_per_run'])}). "
        "Target: ≥ 3× with no lower recall.",
    ])
