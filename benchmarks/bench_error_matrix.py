"""The whole system's error matrix, measured on simulated scenes never trained on.

Scenes of the middle of the Tumangang yard are rendered by the simulator with seeds the
benchmarks' accuracy table does not use (200 and up: the threshold is chosen on 150–155),
at native resolutions 0.25–0.8 m, in
every season, with medium and dense yards, and counted by the full pipeline (warp, cloud mask,
chip plan, finder, namer). Each detection is matched one to one with a true car on rotated
IoU 0.3 whatever the class: the pair adds to the matrix cell (called, true); an unmatched
detection to (called, not a car); an unmatched car to (missed, true). The matrix, with the
number of cars behind each cell (and each scene's own matrix, so that the correction can tell how much scenes
disagree), goes into the model's manifest (``accuracy.system``) with
``--write``, where the count correction (:mod:`railwatch.count.errormatrix`) finds it.

Scenes are taken between 08:15 and 12:15 local time (the hour drawn from the seed), so that the
sun stands 15–70° high over the year; besides the pooled matrix, one matrix per condition
(:data:`GSD_BANDS` × :data:`SUN_BANDS`, :class:`~railwatch.count.errormatrix.SceneCondition`)
is written, which the correction uses for scenes of that condition when it holds enough cars.

    python benchmarks/bench_error_matrix.py --model models --scenes 90 --write
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from common import _YARD, machine
from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.classes import CLASS_NAMES
from railwatch.count.errormatrix import ErrorMatrix, SceneCondition
from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.detect.observation import observe_scene
from railwatch.errors import RailwatchError
from railwatch.imagery.scene import open_scene
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.training.evaluate import system_matrix

#: The middle of the Tumangang yard (UTM 52N), the box the accuracy benchmark uses.
YARD_BOX = _YARD
GSDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.25, 0.8, 0.35, 0.55)
#: The conditions with a matrix of their own: native gsd bands (m) × sun elevation bands (°).
GSD_BANDS = ((0.0, 0.4), (0.4, 0.6), (0.6, 2.0))
SUN_BANDS = ((-90.0, 30.0), (30.0, 50.0), (50.0, 90.5))
SEASONS = tuple(Season)
#: Seeds 200 and up (before 2026-12-03: 100–109, which overlapped the threshold's 150–155 once
#: more than 50 scenes were measured).
FIRST_SEED = 200


def scene_plan(n: int, first_seed: int = FIRST_SEED) -> list[tuple[int, float, Season, Density]]:
    """``n`` (seed, gsd, season, density) combinations cycling through every value."""
    densities = (Density.MEDIUM, Density.DENSE)
    return [
        (first_seed + i, GSDS[i % len(GSDS)], SEASONS[(i // 2) % len(SEASONS)], densities[i % 2])
        for i in range(n)
    ]


class NamingRecorder:
    """Stands for the detector's namer and keeps, for the cars it lets through (in the order the
    detections come out), every class probability: what fractional counting would add up."""

    def __init__(self, namer: object) -> None:
        self.namer = namer
        self.spec = namer.spec  # type: ignore[attr-defined]
        self.kept: list[np.ndarray] = []

    def crops(self, *args: object) -> object:
        return self.namer.crops(*args)  # type: ignore[attr-defined]

    def name_crops(self, crops: np.ndarray, size: np.ndarray) -> object:
        named = self.namer.name_crops(crops, size)  # type: ignore[attr-defined]
        self.kept.append(named.probs[named.not_a_car < self.spec.veto])
        return named


def fractional_covered(probs: np.ndarray) -> float:
    """Covered cars counted fractionally: each kept box adds its covered probability among the
    car classes (a box split 60/40 between covered and open adds 0.6)."""
    k = len(CLASS_NAMES)
    if not len(probs):
        return 0.0
    cars = probs[:, :k]
    return float((cars[:, 0] / np.maximum(cars.sum(axis=1), 1e-9)).sum())


def measure(model: Path, n_scenes: int, work: Path, log=print
            ) -> tuple[ErrorMatrix, list[dict[str, object]]]:
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    recorder = NamingRecorder(detector.namer) if detector.namer is not None else None
    if recorder is not None:
        detector.namer = recorder  # type: ignore[assignment]
    site = benchmark_site(YARD_BOX, "error-matrix")
    region = site.counting_region()
    total = np.zeros((len(CLASS_NAMES) + 1,) * 2, dtype=np.int64)
    per_scene = []
    rows = []
    suns = []
    for seed, gsd, season, density in scene_plan(n_scenes):
        at = scene_time(season) + timedelta(hours=(seed * 7) % 9 / 2 - 2.0)
        spec = SceneSpec(at=at, gsd=gsd, cloud_fraction=0.0, haze=0.05, season=season, seed=seed)
        path = work / f"scene_{seed}.tif"
        t0 = time.perf_counter()
        sim = render_to_file(site, spec, density, path, world_seed=seed)
        if recorder is not None:
            recorder.kept.clear()
        try:
            found = observe_scene(open_scene(path, site.crs, site.aoi_local), site, detector).detections
        except RailwatchError as exc:
            log(f"seed {seed}: {exc}")
            continue
        finally:
            path.unlink(missing_ok=True)
        corners, classes = sim.truth_in(region)
        m = system_matrix(found.corners, found.class_id, found.confidence, corners, classes, 0.3)
        total += m
        per_scene.append(m)
        suns.append(sim.sun_elevation)
        covered_true = int((classes == 0).sum())
        covered_found = int((found.class_id == 0).sum())
        kept = np.concatenate(recorder.kept) if recorder is not None and recorder.kept else np.zeros((0, 6))
        fractional = fractional_covered(kept) if len(kept) == len(found) else float("nan")
        rows.append({"seed": seed, "gsd": gsd, "season": str(season), "density": str(density),
                     "sun_elevation": round(sim.sun_elevation, 1), "at": at.isoformat(),
                     "cars": len(classes), "detections": len(found), "covered_true": covered_true,
                     "covered_called": covered_found, "covered_fractional": round(fractional, 2),
                     "seconds": round(time.perf_counter() - t0, 1)})
        log(f"seed {seed} gsd {gsd} {season} {density}: {len(classes)} cars, {len(found)} found, "
            f"covered {covered_found}/{covered_true}")
    last = FIRST_SEED + n_scenes - 1
    on = (f"{len(rows)} simulated scenes of the Tumangang yard (seeds {FIRST_SEED}–{last}, "
          f"native {min(GSDS[:n_scenes])}–{max(GSDS[:n_scenes])} m, every season, sun "
          f"{min(suns):.0f}–{max(suns):.0f}°, medium and dense yards), rotated IoU 0.3")
    scenes = np.stack(per_scene)
    gsds = np.array([r["gsd"] for r in rows], dtype=float)
    sun = np.array(suns)
    conditional = []
    for g in GSD_BANDS:
        for e in SUN_BANDS:
            cond = SceneCondition(g, e)
            mine = np.array([cond.holds(a, b) for a, b in zip(gsds, sun, strict=True)])
            if mine.any():
                part = scenes[mine]
                conditional.append((cond, ErrorMatrix(part.sum(axis=0), f"{int(mine.sum())} of the scenes, "
                                                       f"{cond.describe()}", part)))
    return ErrorMatrix(total, measured_on=on, per_scene=scenes, by_condition=tuple(conditional)), rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--write", action="store_true", help="store the matrix in the model's manifest")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/error_matrix.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        matrix, rows = measure(args.model, args.scenes, Path(tmp))
    doc = matrix.as_json()
    k = len(CLASS_NAMES)
    c = matrix.counts
    shares = matrix.class_metrics()
    summary = {
        "error_matrix": doc,
        "found_share": dict(zip(CLASS_NAMES, np.round(matrix.found_shares, 4).tolist(), strict=True)),
        "per_class": {n: {"precision": round(m.precision, 4), "recall": round(m.recall, 4)}
                      for n, m in shares.items()},
        "cars": int(c[:, :k].sum()), "detections": int(c[:k].sum()),
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    covered = [(r["covered_true"], r["covered_called"], r["covered_fractional"]) for r in rows
               if r["covered_true"] >= 5]
    if covered:
        true, called, frac = (np.array(v, dtype=float) for v in zip(*covered, strict=True))
        summary["covered_count_error"] = {
            "scenes": len(true), "called_mean_abs": round(float(np.mean(np.abs(called - true) / true)), 4),
            "fractional_mean_abs": round(float(np.nanmean(np.abs(frac - true) / true)), 4),
            "called_total": round(float(called.sum() / true.sum() - 1), 4),
            "fractional_total": round(float(np.nansum(frac) / true.sum() - 1), 4)}
        print("covered cars per scene, mean abs error: called", summary["covered_count_error"])
    summary["by_condition"] = [
        {"condition": cond.describe(), "scenes": len(m.per_scene) if m.per_scene is not None else 0,
         "cars": int(m.counts[:, :k].sum()), "used": m.enough,
         "found_share": dict(zip(CLASS_NAMES, np.round(m.found_shares, 4).tolist(), strict=True)),
         "covered_precision": round(m.class_metrics()["covered_car"].precision, 4)}
        for cond, m in matrix.by_condition
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "scenes": rows}, indent=2) + "\n")
    print("rows: called " + ", ".join([*CLASS_NAMES, "missed"]) + "; columns: true " +
          ", ".join([*CLASS_NAMES, "not_a_car"]))
    print(np.array2string(c.astype(int)))
    if args.write:
        path = args.model / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.setdefault("accuracy", {})["system"] = {
            **{k2: v for k2, v in summary.items() if k2 != "machine"},
            "command": "python benchmarks/bench_error_matrix.py --model MODEL "
                       f"--scenes {args.scenes} --write",
        }
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"error matrix written into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
