"""The finder's threshold with the namer behind it, chosen on simulated scenes never trained on.

Scenes of the middle of the Tumangang yard (seeds 150 and up: neither the error matrix's
100–149 nor the accuracy table's), native 0.3–0.7 m, every season, medium and dense yards, are
counted once by the full pipeline at the lowest threshold; F1 at each threshold comes from
keeping the boxes above it (the namer's veto does not depend on the threshold). The best any-car
F1 (rotated IoU 0.5) is the threshold; covered-car F1 is shown beside it. With ``--write`` the
threshold goes into the model's manifest (``namer.finder_conf``), where the detector finds it.

    python benchmarks/bench_threshold.py --model MODEL --scenes 6 --write
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_error_matrix import YARD_BOX, scene_plan
from common import markdown_table, score
from simscenes import benchmark_site, render_to_file, scene_time

from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.simulate.scenario import SceneSpec
from railwatch.training.evaluate import merge_evaluations

FIRST_SEED = 150
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 11))  # 0.05 … 0.50


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--write", action="store_true", help="write the threshold into the manifest")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/threshold.json"))
    args = p.parse_args(argv)
    detector = load_detector(args.model,
                             settings=DetectorSettings(runtime=Runtime.ONNX, conf=min(THRESHOLDS)))
    site = benchmark_site(YARD_BOX, "threshold")
    region = site.counting_region()
    found_all = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, gsd, season, density in scene_plan(args.scenes, FIRST_SEED):
            spec = SceneSpec(at=scene_time(season), gsd=gsd, cloud_fraction=0.0, haze=0.05, season=season,
                             seed=seed)
            path = Path(tmp) / f"scene_{seed}.tif"
            sim = render_to_file(site, spec, density, path, world_seed=seed)
            found = observe_scene(open_scene(path, site.crs, site.aoi_local), site, detector).detections
            corners, classes = sim.truth_in(region)
            found_all.append((found, corners, classes))
            print(f"seed {seed} {gsd} m {season} {density}: {len(classes)} cars, {len(found)} boxes",
                  file=sys.stderr)
    rows = []
    for t in THRESHOLDS:
        parts = []
        for found, corners, classes in found_all:
            kept = found[found.confidence >= t]
            parts.append(score("", kept.corners, kept.class_id, kept.confidence, corners, classes))
        ev = merge_evaluations("", parts)
        rows.append({"conf": t, "precision": ev.any_class.precision, "recall": ev.any_class.recall,
                     "f1": ev.any_class.f1, "covered_f1": ev.per_class["covered_car"].f1,
                     "count_error": ev.any_class.count_error})
    best = max(rows, key=lambda r: r["f1"])
    doc = {"model": str(args.model), "scenes": args.scenes, "first_seed": FIRST_SEED, "rows": rows,
           "best": best["conf"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(markdown_table(["conf", "P", "R", "F1", "covered F1", "count error"],
                         [[r["conf"], r["precision"], r["recall"], r["f1"], r["covered_f1"],
                           f"{r['count_error']:+.1%}"] for r in rows]))
    print(f"best any-car F1 at conf {best['conf']}")
    if args.write:
        path = args.model / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.setdefault("namer", {})["finder_conf"] = best["conf"]
        manifest["namer"]["finder_conf_chosen"] = (
            f"best any-car F1 (rotated IoU 0.5) of thresholds {THRESHOLDS[0]}–{THRESHOLDS[-1]} on "
            f"{args.scenes} simulated Tumangang-yard scenes "
            f"(seeds {FIRST_SEED}–{FIRST_SEED + args.scenes - 1}, "
            "never trained on), the namer behind the finder: python benchmarks/bench_threshold.py "
            f"--scenes {args.scenes} --write")
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"threshold written into {path}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
