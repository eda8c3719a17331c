"""The whole system's error matrix, measured on simulated scenes never trained on.

Scenes of the middle of the Tumangang yard are rendered by the simulator with seeds the
benchmarks' accuracy table does not use (100 and up), at native resolutions 0.3–0.7 m, in
every season, with medium and dense yards, and counted by the full pipeline (warp, cloud mask,
chip plan, finder, namer). Each detection is matched one to one with a true car on rotated
IoU 0.3 whatever the class: the pair adds to the matrix cell (called, true); an unmatched
detection to (called, not a car); an unmatched car to (missed, true). The matrix, with the
number of cars behind each cell (and each scene's own matrix, so that the correction can tell how much scenes
disagree), goes into the model's manifest (``accuracy.system``) with
``--write``, where the count correction (:mod:`railwatch.count.errormatrix`) finds it.

    python benchmarks/bench_error_matrix.py --model models --scenes 10 --write
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from common import _YARD, machine
from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.classes import CLASS_NAMES
from railwatch.count.errormatrix import ErrorMatrix
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
GSDS = (0.3, 0.4, 0.5, 0.6, 0.7)
SEASONS = tuple(Season)
FIRST_SEED = 100


def scene_plan(n: int, first_seed: int = FIRST_SEED) -> list[tuple[int, float, Season, Density]]:
    """``n`` (seed, gsd, season, density) combinations cycling through every value."""
    densities = (Density.MEDIUM, Density.DENSE)
    return [
        (first_seed + i, GSDS[i % len(GSDS)], SEASONS[(i // 2) % len(SEASONS)], densities[i % 2])
        for i in range(n)
    ]


def measure(model: Path, n_scenes: int, work: Path, log=print
            ) -> tuple[ErrorMatrix, list[dict[str, object]]]:
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    site = benchmark_site(YARD_BOX, "error-matrix")
    region = site.counting_region()
    total = np.zeros((len(CLASS_NAMES) + 1,) * 2, dtype=np.int64)
    per_scene = []
    rows = []
    for seed, gsd, season, density in scene_plan(n_scenes):
        spec = SceneSpec(at=scene_time(season), gsd=gsd, cloud_fraction=0.0, haze=0.05, season=season,
                         seed=seed)
        path = work / f"scene_{seed}.tif"
        t0 = time.perf_counter()
        sim = render_to_file(site, spec, density, path, world_seed=seed)
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
        covered_true = int((classes == 0).sum())
        covered_found = int((found.class_id == 0).sum())
        rows.append({"seed": seed, "gsd": gsd, "season": str(season), "density": str(density),
                     "cars": len(classes), "detections": len(found), "covered_true": covered_true,
                     "covered_called": covered_found, "seconds": round(time.perf_counter() - t0, 1)})
        log(f"seed {seed} gsd {gsd} {season} {density}: {len(classes)} cars, {len(found)} found, "
            f"covered {covered_found}/{covered_true}")
    last = FIRST_SEED + n_scenes - 1
    on = (f"{len(rows)} simulated scenes of the Tumangang yard (seeds {FIRST_SEED}–{last}, "
          f"native {GSDS[0]}–{GSDS[-1]} m, every season, medium and dense yards), rotated IoU 0.3")
    return ErrorMatrix(total, measured_on=on, per_scene=np.stack(per_scene)), rows


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
