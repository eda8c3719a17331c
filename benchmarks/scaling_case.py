"""One case of the scaling benchmark, in a fresh process: time and peak memory of the pipeline.

``python benchmarks/scaling_case.py SCENE SITE MODEL REPEATS`` loads the model, warms it up,
notes the peak resident set size so far (interpreter, libraries, model), then runs
``open_scene`` + ``observe_scene`` ``REPEATS`` times and prints one JSON line: wall times,
chips, and the peak resident set size before and after (the kernel's high-water mark of
resident memory, which sees GDAL's and numpy's allocations, unlike ``tracemalloc``; see
:func:`max_rss_mib`).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from common import load_counted_detector, warm_up

from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.site import load_site


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    memory map. ``getrusage``'s ``ru_maxrss`` would carry the parent's peak over through
    fork + exec, so a child of a big parent would report the parent's size. Elsewhere
    ``ru_maxrss`` (KiB on Linux, bytes on macOS) is all there is.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str]) -> None:
    scene_path, site_path, model, repeats = Path(argv[0]), Path(argv[1]), Path(argv[2]), int(argv[3])
    detector, counter = load_counted_detector(model)
    warm_up(detector)
    site = load_site(site_path)
    base = max_rss_mib()
    seconds, model_s, chips, found = [], [], 0, 0
    for _ in range(repeats):
        counter.reset()
        t0 = time.perf_counter()
        scene = open_scene(scene_path, site.crs, site.aoi_local)
        found = len(observe_scene(scene, site, detector).detections)
        seconds.append(time.perf_counter() - t0)
        model_s.append(counter.seconds)
        chips = counter.chips
    print(json.dumps({"seconds": seconds, "model_seconds": model_s, "chips": chips, "detections": found,
                      "base_rss_mib": round(base, 1), "peak_rss_mib": round(max_rss_mib(), 1),
                      "counting_area_m2": round(site.counting_region().area, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
