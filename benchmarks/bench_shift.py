"""Benchmark 6: a shift suite — generic yard scenes taken under conditions training never saw.

Each condition changes one thing from a reference (a European marshalling yard of 15–25
tracks, 35 % occupied, 0.3 m, sun 50° from 160°, early autumn, a mild sensor) to a value at
or beyond the edge of what the training chips were rendered with: sun elevations of 12° and
78°, wagons of 10–13 m only, 25-track yards, summer ballast overgrown with weeds, strong
sharpening, JPEG quality 40, noise σ 8, a colour cast, 0.25 m and 0.6 m. Scenes come from
:mod:`railwatch.simulate.yardscene` (SIMULATED, exact truth), are written as GeoTIFFs and
counted by the full pipeline on the image's whole footprint (warp onto the model's grid,
chip plan, model, merge). Scores: any-car precision, recall and F1 at rotated IoU 0.5 (and
F1 at 0.3, the real-yard test's threshold), and the count error, over the cars whose centre
lies in the image. Seeds are shared across conditions, so one factor changes at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from common import Profile, markdown_table, model_description, score

from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.observation import observe_file
from railwatch.errors import RailwatchError
from railwatch.simulate.ground import Season
from railwatch.simulate.imaging import Sensor
from railwatch.simulate.sun import Sun
from railwatch.simulate.yard import YardStyle
from railwatch.simulate.yardscene import EUROPEAN_YARD, YardScene, render_yard_scene, write_yard_scene
from railwatch.training.evaluate import ClassScore, Evaluation, merge_evaluations

__all__ = ["CONDITIONS", "Condition", "markdown", "run"]

#: The sensor of the reference: a little blur, noise σ 3, mild sharpening, JPEG 85.
SENSOR = Sensor(blur_px=0.5, noise=3.0, jpeg_quality=85, gamma=1.0, haze=0.03, sharpen=0.4,
                sharpen_px=1.2, saturation=0.85)


@dataclass(frozen=True, slots=True)
class Condition:
    """One row: a name, what the scene spec becomes, and how training relates to it.

    ``v2`` and ``chips``: whether the shipped model v2's training chips / today's chip
    generator cover the condition (``yes``, ``edge``, ``no``).
    """

    name: str
    note: str
    v2: str
    chips: str
    gsd: float = 0.3
    sun_elevation: float = 50.0
    style: YardStyle = EUROPEAN_YARD
    season: Season = Season.EARLY_AUTUMN
    sensor: Sensor = SENSOR

    def spec(self, seed: int, size_m: float) -> YardScene:
        return YardScene(seed=seed, gsd=self.gsd, size_m=size_m, style=self.style, season=self.season,
                         sun=Sun(160.0, self.sun_elevation), sensor=self.sensor)


CONDITIONS: tuple[Condition, ...] = (
    Condition("reference", "European yard, 0.3 m, sun 50°", "no (1520 mm stock only)", "yes"),
    Condition("sun 12°", "long shadows", "no (15–70°)", "no (15–72°)", sun_elevation=12.0),
    Condition("sun 78°", "short shadows", "no (15–70°)", "no (15–72°)", sun_elevation=78.0),
    Condition("wagons 10–13 m", "every wagon short", "no (≥ 12 m)", "edge (two-axle share)",
              style=replace(EUROPEAN_YARD, car_length_m=(10.0, 13.0))),
    Condition("25-track yard", "25 tracks, 35 % occupied", "no (≤ 10 tracks)", "yes (10–30)",
              style=replace(EUROPEAN_YARD, tracks=(25, 25))),
    Condition("summer ballast", "summer, weeds on 35–50 % of ballast", "no weeds", "no (≤ 30 %)",
              season=Season.SUMMER, style=replace(EUROPEAN_YARD, weeds=(0.35, 0.5))),
    Condition("strong sharpening", "unsharp mask 2.0, radius 1.5 px", "no (≤ 0.8)", "no (≤ 1.3)",
              sensor=replace(SENSOR, sharpen=2.0, sharpen_px=1.5)),
    Condition("JPEG 40", "quality 40", "yes (35–91)", "no (50–95)", sensor=replace(SENSOR, jpeg_quality=40)),
    Condition("noise σ 8", "Gaussian σ 8 on 0–255", "edge (1.5–8)", "no (1–7)",
              sensor=replace(SENSOR, noise=8.0)),
    Condition("colour cast", "gains 1.2 / 1.0 / 0.78 (warm)", "no (σ 0.05)", "edge (σ 0.09)",
              sensor=replace(SENSOR, gains=(1.2, 1.0, 0.78))),
    Condition("0.25 m", "native 0.25 m, warped to 0.3 m", "yes", "yes", gsd=0.25),
    Condition("0.6 m", "native 0.6 m, warped to 0.3 m", "yes", "yes", gsd=0.6),
)

#: Thresholds of the calibration sweep: F1 at each, from one pass at the lowest.
SWEEP = tuple(round(0.05 * k, 2) for k in range(2, 11))  # 0.10 … 0.50
#: The band over which a calibrated finder's F1 should hold (issue 19: within 0.05 over 0.2–0.4).
BAND = (0.2, 0.4)

#: (seeds, scene side in metres) per profile.
SIZES = {"tiny": ((0,), 60.0), "quick": ((0, 1), 200.0), "full": ((0, 1, 2, 3), 240.0)}


def _row(cond: Condition, evals: list[Evaluation], loose: list[Evaluation], errors: list[str]
         ) -> dict[str, object]:
    row: dict[str, object] = {"condition": cond.name, "note": cond.note, "in_v2_training": cond.v2,
                              "in_new_chips": cond.chips, "scenes": len(evals), "rejected": errors}
    if not evals:
        return row
    s: ClassScore = merge_evaluations(cond.name, evals).any_class
    s3: ClassScore = merge_evaluations(cond.name, loose).any_class
    row.update({"n_true": s.n_true, "n_pred": s.n_pred, "precision": round(s.precision, 4),
                "recall": round(s.recall, 4), "f1": round(s.f1, 4), "f1_iou03": round(s3.f1, 4),
                "count_error": round(s.count_error, 4)})
    return row


def _calibration(found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
                 ) -> dict[str, object]:
    """Any-car F1 at each threshold of :data:`SWEEP` over the scenes of one condition."""
    curve = {}
    for t in SWEEP:
        parts = []
        for corners, called, conf, true, cls in found:
            kept = conf >= t
            parts.append(score("", corners[kept], called[kept], conf[kept], true, cls))
        curve[f"{t:.2f}"] = round(merge_evaluations("", parts).any_class.f1, 4) if parts else float("nan")
    best = max(curve, key=lambda k: -1.0 if curve[k] != curve[k] else curve[k])
    band = [v for k, v in curve.items() if BAND[0] <= float(k) <= BAND[1]]
    return {"f1_by_conf": curve, "best_conf": float(best), "best_f1": curve[best],
            "band_f1_min": min(band), "band_f1_max": max(band)}


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Render, count and score every condition × seed: at the model's own threshold, and F1 at
    each threshold of :data:`SWEEP` (one pass at the lowest, boxes then filtered by confidence)."""
    own = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    conf = own.conf
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX, conf=min(SWEEP)))
    seeds, size_m = SIZES[profile.name]
    conditions = CONDITIONS[:2] if profile.name == "tiny" else CONDITIONS
    rows = []
    for k, cond in enumerate(conditions):
        evals, loose, errors, swept = [], [], [], []
        for seed in seeds:
            scene = render_yard_scene(cond.spec(seed, size_m))
            path, truth = write_yard_scene(scene, work / "shift" / f"shift_{k}_{seed}.tif")
            try:
                _, _, obs = observe_file(path, detector)
            except RailwatchError as exc:
                errors.append(f"seed {seed}: {exc}")
                continue
            finally:
                path.unlink()
                truth.unlink()
            every = obs.detections
            true = np.array([c.corners() for c in scene.cars]).reshape(-1, 4, 2)
            cls = np.array([c.car.cls.class_id for c in scene.cars], dtype=np.int64)
            swept.append((np.asarray(every.corners), np.asarray(every.class_id), np.asarray(every.confidence),
                          true, cls))
            found = every[every.confidence >= conf]
            evals.append(score(f"seed {seed}", found.corners, found.class_id, found.confidence, true, cls))
            loose.append(score(f"seed {seed}", found.corners, found.class_id, found.confidence, true, cls,
                               iou=0.3))
        row = _row(cond, evals, loose, errors)
        if swept:
            row["calibration"] = _calibration(swept)
        rows.append(row)
    return {
        "benchmark": "shift",
        "model": model_description(own.manifest),
        "conf": conf,
        "iou": 0.5,
        "seeds": list(seeds),
        "scene_side_m": size_m,
        "reference": {"yard": "European, 15–25 tracks, 35 % occupied", "gsd_m": 0.3, "sun": "50° from 160°",
                      "season": "early_autumn", "sensor": "blur 0.5 px, noise 3, sharpen 0.4, JPEG 85"},
        "rows": rows,
    }


def _percent(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:+.1%}"


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    nan = float("nan")
    table = markdown_table(
        ["condition", "what", "v2 trained on it", "new chips cover it", "scenes", "true cars", "predicted",
         "precision", "recall", "F1", "F1 (IoU 0.3)", "count error"],
        [[r["condition"], r["note"], r["in_v2_training"], r["in_new_chips"], r["scenes"], r.get("n_true", 0),
          r.get("n_pred", 0), r.get("precision", nan), r.get("recall", nan), r.get("f1", nan),
          r.get("f1_iou03", nan), _percent(r.get("count_error"))] for r in result["rows"]],
    )
    ref = result["reference"]
    rejected = [f"{r['condition']}: {e}" for r in result["rows"] for e in r["rejected"]]
    lines = [
        "## 6. Shift suite: conditions the training never used",
        "",
        f"SIMULATED generic yard scenes ({result['scene_side_m']:.0f} m square, seeds {result['seeds']}, "
        f"`railwatch.simulate.yardscene`); reference {ref['yard']}, {ref['gsd_m']} m, sun {ref['sun']}, "
        f"{ref['season']}, sensor {ref['sensor']}; one factor changed per row. Any rail car at rotated IoU "
        f"{result['iou']} (and 0.3), whole image; count error = (predicted − true) / true, pooled.",
        "",
        table,
    ]
    calibrated = [r for r in result["rows"] if "calibration" in r]
    if calibrated:
        sweep = list(calibrated[0]["calibration"]["f1_by_conf"])
        lines += [
            "",
            f"Calibration (the counts above at the model's threshold {result.get('conf', '?')}): any-car F1 "
            "at each threshold, one pass at the lowest; the best threshold per condition, and F1's range "
            f"over {BAND[0]}–{BAND[1]}.",
            "",
            markdown_table(
                ["condition", *sweep, "best conf", "F1 range 0.2–0.4"],
                [[r["condition"], *[r["calibration"]["f1_by_conf"][t] for t in sweep],
                  r["calibration"]["best_conf"],
                  f"{r['calibration']['band_f1_min']:.3f}–{r['calibration']['band_f1_max']:.3f}"]
                 for r in calibrated],
            ),
        ]
        bests = [r["calibration"]["best_conf"] for r in calibrated]
        lines += ["", f"Best threshold moves over {min(bests):.2f}–{max(bests):.2f} between conditions."]
    if rejected:
        lines += ["", "Scenes the pipeline refused: " + "; ".join(rejected)]
    return "\n".join(lines)
