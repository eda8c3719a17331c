"""Benchmark 4: accuracy across imaging conditions, against simulated truth.

A reference condition (0.5 m, early autumn, light haze, no cloud, a medium yard) and one
factor changed at a time: ground sample distance (0.3, 0.5, 0.7, 1.0 m), season, haze, cloud
fraction and yard density. Each condition × seed is a scene of the middle of the Tumangang
yard rendered by the simulator at that native resolution and counted by the full pipeline
(warp onto the model's grid, cloud mask, chip plan, model, merge). Scores: F1 at rotated IoU
0.5 over any car and over covered cars, and the count error, on the visible cars whose
centre lies in the counting areas. Seeds are shared across conditions, so the world, the
trains and the sensor are the same and only the factor changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common import Profile, markdown_table, model_description, score
from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.observation import observe_scene
from railwatch.errors import RailwatchError
from railwatch.imagery.scene import open_scene
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.training.evaluate import ClassScore, Evaluation, merge_evaluations

__all__ = ["Condition", "conditions", "markdown", "run"]


@dataclass(frozen=True, slots=True)
class Condition:
    """How a scene is taken and how full the yard is."""

    gsd: float = 0.5
    season: Season = Season.EARLY_AUTUMN
    haze: float = 0.05
    cloud: float = 0.0
    density: Density = Density.MEDIUM

    def spec(self, seed: int) -> SceneSpec:
        return SceneSpec(at=scene_time(self.season), gsd=self.gsd, cloud_fraction=self.cloud,
                         haze=self.haze, season=self.season, seed=seed)


REFERENCE = Condition()

#: Each factor and the values it takes (the others stay at the reference).
FACTORS: dict[str, tuple[object, ...]] = {
    "gsd": (0.3, 0.5, 0.7, 1.0),
    "season": tuple(Season),
    "haze": (0.05, 0.2, 0.4),
    "cloud": (0.0, 0.3, 0.6),
    "density": tuple(Density),
}


def conditions() -> Iterator[tuple[str, object, Condition]]:
    """(factor, value, condition) for every row of the table."""
    for factor, values in FACTORS.items():
        for value in values:
            yield factor, value, replace(REFERENCE, **{factor: value})  # type: ignore[arg-type]


def _row(factor: str, value: object, cond: Condition, evals: list[Evaluation], errors: list[str]
         ) -> dict[str, object]:
    row: dict[str, object] = {"factor": factor, "value": str(value), "gsd_m": cond.gsd,
                              "season": str(cond.season), "haze": cond.haze, "cloud": cond.cloud,
                              "density": str(cond.density), "scenes": len(evals), "rejected": errors}
    if not evals:
        return row
    pooled = merge_evaluations(f"{factor}={value}", evals)
    s: ClassScore = pooled.any_class
    per_scene = [abs(e.any_class.count_error) for e in evals if e.any_class.n_true]
    per_scene_covered = [abs(e.per_class["covered_car"].count_error) for e in evals
                         if e.per_class["covered_car"].n_true]
    row.update({
        "n_true": s.n_true, "n_pred": s.n_pred, "precision": round(s.precision, 4),
        "recall": round(s.recall, 4), "f1": round(s.f1, 4),
        "covered_f1": round(pooled.per_class["covered_car"].f1, 4),
        "count_error": round(s.count_error, 4),
        "mean_abs_scene_count_error": round(sum(per_scene) / len(per_scene), 4) if per_scene else None,
        "covered_mean_abs_scene_count_error": (round(sum(per_scene_covered) / len(per_scene_covered), 4)
                                               if per_scene_covered else None),
    })
    return row


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Render, count and score every condition × seed."""
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    site = benchmark_site(profile.accuracy_box, "accuracy")
    region = site.counting_region()
    cache: dict[Condition, tuple[list[Evaluation], list[str]]] = {}
    rows = []
    for factor, value, cond in conditions():
        if cond not in cache:
            evals, errors = [], []
            for seed in profile.accuracy_seeds:
                path = work / "accuracy" / f"scene_{len(cache)}_{seed}.tif"
                sim = render_to_file(site, cond.spec(seed), cond.density, path, world_seed=seed)
                try:
                    scene = open_scene(path, site.crs, site.aoi_local)
                    found = observe_scene(scene, site, detector).detections
                except RailwatchError as exc:
                    errors.append(f"seed {seed}: {exc}")
                    continue
                finally:
                    path.unlink()
                true_corners, true_class = sim.truth_in(region)
                evals.append(score(f"seed {seed}", found.corners, found.class_id, found.confidence,
                                   true_corners, true_class))
            cache[cond] = (evals, errors)
        rows.append(_row(factor, value, cond, *cache[cond]))
    return {
        "benchmark": "accuracy",
        "model": model_description(detector.manifest),
        "iou": 0.5,
        "seeds": list(profile.accuracy_seeds),
        "site_bounds_utm": [round(v, 1) for v in site.aoi_local.bounds],
        "reference": {"gsd_m": REFERENCE.gsd, "season": str(REFERENCE.season), "haze": REFERENCE.haze,
                      "cloud": REFERENCE.cloud, "density": str(REFERENCE.density)},
        "rows": rows,
    }


def _percent(value: float | None, signed: bool = False) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    nan = float("nan")
    table = markdown_table(
        ["factor", "value", "scenes", "true cars", "predicted", "precision", "recall", "F1",
         "covered F1", "count error", "mean abs scene count error", "covered: mean abs scene count error"],
        [[r["factor"], r["value"], r["scenes"], r.get("n_true", 0), r.get("n_pred", 0),
          r.get("precision", nan), r.get("recall", nan), r.get("f1", nan), r.get("covered_f1", nan),
          _percent(r.get("count_error"), signed=True), _percent(r.get("mean_abs_scene_count_error")),
          _percent(r.get("covered_mean_abs_scene_count_error"))]
         for r in result["rows"]],
    )
    ref = result["reference"]
    rejected = [f"{r['factor']}={r['value']}: {e}" for r in result["rows"] for e in r["rejected"]]
    lines = [
        "## 4. Accuracy across conditions",
        "",
        f"Simulated scenes of the middle of the Tumangang yard (seeds {result['seeds']}); reference "
        f"{ref['gsd_m']} m, {ref['season']}, haze {ref['haze']}, cloud {ref['cloud']}, {ref['density']} "
        f"yard, one factor changed per row. Any rail car at rotated IoU {result['iou']}, on the visible "
        "cars whose centre lies in the counting areas; count error = (predicted − true) / true, pooled.",
        "",
        table,
    ]
    if rejected:
        lines += ["", "Scenes the pipeline refused: " + "; ".join(rejected)]
    return "\n".join(lines)
