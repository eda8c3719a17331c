"""Scenes per minute: the serial batch against a local Dask cluster of 1 and 2 workers, and
what that means for counting a year of daily scenes of many crossings.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_cluster.py [--scenes N] [--workers 1 2] [--model DIR]
                                                 [--out benchmarks/out/cluster.json]

The first N sample scenes (default: all 11) are counted into a fresh store, one run each: by
``run_batch`` (serial, one process, the model on every core), by ``run_batch_on_cluster`` on
``local:1`` and ``local:2`` (each worker's ONNX Runtime gets cores ÷ workers threads), and
serially again, so that a change in the machine's load between runs shows. Wall time from the
call to the summary, so a cluster's start-up and its workers' model loading are in it; the
start-up alone (a cluster started and closed, no scene) is timed separately and reported beside
it. Prints the JSON document and a markdown section.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, load_counted_detector, machine, warm_up

from railwatch.batch.cluster import ClusterSpec, ModelLoader, connect, run_batch_on_cluster
from railwatch.batch.job import BatchSettings, run_batch
from railwatch.detect.detector import DetectorSettings
from railwatch.detect.manifest import default_model_dir
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

#: The capacity question: a year of daily scenes of this many crossings, in a night of this many hours.
CROSSINGS = 10
NIGHT_H = 8.0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(scenes: list[Path], model: Path, workers: tuple[int, ...], work: Path) -> dict[str, object]:
    site = load_site("tumangang_khasan")
    quiet = BatchSettings(progress=False)
    detector, counter = load_counted_detector(model)
    warm_up(detector)
    counter.reset()
    record = ModelRecord.describing(detector)
    runs: dict[str, dict[str, float]] = {}

    def serial(name: str) -> None:
        counter.reset()
        t0 = time.perf_counter()
        with Store(work / f"{name}.sqlite") as store:
            summary = run_batch(scenes, site, detector, store, record, quiet)
        seconds = time.perf_counter() - t0
        runs[name] = {"seconds": seconds, "counted": len(summary.counted), "model_s": counter.seconds,
                      "outside_model_share": 1 - counter.seconds / seconds,
                      "load_average_1min": os.getloadavg()[0]}
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)

    serial("serial")

    for n in workers:
        spec = ClusterSpec(workers=n)
        t0 = time.perf_counter()
        with connect(spec):
            pass
        startup = time.perf_counter() - t0
        loader = ModelLoader(record.sha256, model,
                             settings=DetectorSettings(threads=max(1, _cores() // n)))
        t0 = time.perf_counter()
        with Store(work / f"local{n}.sqlite") as store:
            summary = run_batch_on_cluster(scenes, site, loader, store, record, spec, quiet,
                                           gsd=detector.gsd)
        seconds = time.perf_counter() - t0
        runs[f"local:{n}"] = {"seconds": seconds, "counted": len(summary.counted),
                              "startup_s": startup, "load_average_1min": os.getloadavg()[0]}
        print(f"local:{n}: {seconds:.1f} s (start-up alone {startup:.1f} s)", file=sys.stderr, flush=True)
    serial("serial again")  # brackets the cluster runs: how much the machine's load moved

    for r in runs.values():
        r["scenes_per_min"] = 60 * r["counted"] / r["seconds"]
        if "startup_s" in r:
            r["scenes_per_min_after_startup"] = 60 * r["counted"] / max(1e-9, r["seconds"] - r["startup_s"])
    per_scene = runs["serial"]["seconds"] / max(1, runs["serial"]["counted"])
    year = 365 * CROSSINGS
    night_s = NIGHT_H * 3600
    machines = year * per_scene / night_s
    capacity = {
        "scenes": year, "night_h": NIGHT_H, "serial_s_per_scene": per_scene,
        "machines_like_this_one": machines, "machines_like_this_one_rounded_up": math.ceil(machines),
        "worker_cores": math.ceil(machines * _cores()),
    }
    return {"scenes": [s.name for s in scenes], "cores": _cores(), "runs": runs, "capacity": capacity}


def markdown(result: dict[str, object], info: dict[str, object]) -> str:
    runs = result["runs"]
    cap = result["capacity"]
    assert isinstance(runs, dict) and isinstance(cap, dict)
    serial = runs["serial"]["scenes_per_min"]
    lines = [
        f"{len(result['scenes'])} sample scenes, {info['cpu']}, {result['cores']} cores, load average "
        f"at start {info['load_average_1_5_15']}, {info['date']}.",
        "",
        "| path | wall s | scenes/min | × serial | cluster start-up s | scenes/min after start-up "
        "| load (1 min) after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        rate = r["scenes_per_min"]
        after = r.get("scenes_per_min_after_startup", rate)
        lines.append(f"| {name} | {r['seconds']:.1f} | {rate:.2f} | {rate / serial:.2f} | "
                     f"{r.get('startup_s', 0):.1f} | {after:.2f} | {r['load_average_1min']:.1f} |")
    lines += [
        "",
        f"Serial: {cap['serial_s_per_scene']:.1f} s per scene, "
        f"{runs['serial']['outside_model_share']:.0%} of it outside the model. "
        f"A year of daily scenes of {CROSSINGS} crossings is {cap['scenes']} scenes; in a "
        f"{cap['night_h']:.0f} h night that is {cap['machines_like_this_one']:.2f} machines like this one "
        f"(→ {cap['machines_like_this_one_rounded_up']}, {cap['worker_cores']} one-core workers).",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scenes", type=int, default=11, help="sample scenes to count (default: all 11)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local cluster sizes")
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "cluster.json")
    args = p.parse_args()
    scenes = sorted((REPO / "sample_tiles").glob("*.tif"))[: args.scenes]
    info = machine()
    with tempfile.TemporaryDirectory(prefix="railwatch-cluster-") as tmp:
        result = run(scenes, args.model, tuple(args.workers), Path(tmp))
    result["machine"] = info
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    print(markdown(result, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
