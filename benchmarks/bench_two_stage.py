"""What the namer costs: per-scene time of the two-stage model against its finder alone.

Each of the 11 sample scenes (SIMULATED) is opened and observed (warp, cloud mask, chip plan,
finder, and for the two-stage model the namer on every found car) by both, interleaved
(a, b, a, b, …) so that background load hits both alike; the ratio of the median per-scene
times is the cost of the second stage. The finder alone runs at its own tuned threshold, as
the one-stage model did.

    python benchmarks/bench_two_stage.py --model models --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import machine

from railwatch.detect.detector import Detector, load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.site import load_site

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    site = load_site("tumangang_khasan")
    two = load_detector(args.model)
    if two.namer is None:
        raise SystemExit(f"{args.model}: no namer in this model")
    one = Detector(two.manifest, two.backend, two.settings)  # the finder alone, its own threshold
    scenes = sorted((REPO / "sample_tiles").glob("*.tif"))
    times: dict[str, list[float]] = {"finder": [], "finder+namer": []}
    found: dict[str, int] = {"finder": 0, "finder+namer": 0}
    for r in range(args.repeats):
        for path in scenes:
            for name, det in (("finder", one), ("finder+namer", two)):
                t0 = time.perf_counter()
                obs = observe_scene(open_scene(path, site.crs, site.aoi_local), site, det)
                times[name].append(time.perf_counter() - t0)
                if r == 0:
                    found[name] += len(obs.detections)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "two_stage", "scenes": len(scenes), "repeats": args.repeats,
        "median_s_per_scene": {k: round(v, 3) for k, v in med.items()},
        "ratio": round(med["finder+namer"] / med["finder"], 3),
        "cars_found_first_pass": found, "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
