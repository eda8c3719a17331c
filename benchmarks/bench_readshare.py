"""How much of a scene's time is spent outside the model (reading and warping windows, cloud
mask, merging), for two versions of railwatch side by side.

Usage (from the repository root)::

    git archive de80661 railwatch | tar -x -C /tmp/railwatch-before   # an earlier version
    .venv/bin/python benchmarks/bench_readshare.py --before /tmp/railwatch-before [--scenes 4]

Each sample scene is opened and observed (``open_scene`` + ``observe_scene``, the shipped model,
ONNX Runtime) in a fresh process per version, versions interleaved scene by scene (before, after,
before, after, ...) so that background load falls on both; in each process one warm-up run, then
the median of ``--repeats`` runs. The model's time is the time inside the finder runtime's
``predict`` and, where the model has one, the namer's ``probabilities``.
Prints a JSON document and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_scene(scene: Path, repeats: int) -> dict[str, float]:
    """Time open + observe of one scene with the railwatch importable here."""
    from railwatch.detect.detector import load_detector
    from railwatch.detect.observation import observe_scene
    from railwatch.imagery.scene import open_scene
    from railwatch.site import load_site

    site = load_site("tumangang_khasan")
    detector = load_detector()
    inner = detector.backend.predict
    spent = [0.0]

    def timed(*args: object, **kw: object) -> object:
        t0 = time.perf_counter()
        out = inner(*args, **kw)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - t0
        return out

    detector.backend.predict = timed  # type: ignore[method-assign]
    namer = getattr(detector, "namer", None)  # the second stage, where the version has one
    if namer is not None:
        inner_namer = namer.probabilities

        def timed_namer(*args: object, **kw: object) -> object:
            t0 = time.perf_counter()
            out = inner_namer(*args, **kw)
            spent[0] += time.perf_counter() - t0
            return out

        namer.probabilities = timed_namer
    totals, models, found = [], [], 0
    for i in range(repeats + 1):
        spent[0] = 0.0
        t0 = time.perf_counter()
        observation = observe_scene(open_scene(scene, site.crs, site.aoi_local), site, detector)
        if i:  # the first run warms caches up
            totals.append(time.perf_counter() - t0)
            models.append(spent[0])
        found = len(observation.detections)
    return {"total_s": statistics.median(totals), "model_s": statistics.median(models),
            "detections": found}


def compare(before: Path, scenes: list[Path], repeats: int) -> dict[str, object]:
    versions = {"before": before, "after": REPO}
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in versions}
    for scene in scenes:
        for name, code in versions.items():
            env = dict(os.environ, PYTHONPATH=str(code))
            out = subprocess.run(
                [sys.executable, __file__, "--scene", str(scene), "--repeats", str(repeats)],
                env=env, capture_output=True, text=True, check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["scene"] = scene.name
            rows[name].append(row)
            print(f"{name:6} {scene.name}: {row['total_s']:.2f} s, model {row['model_s']:.2f} s, "
                  f"{row['detections']} detections", file=sys.stderr, flush=True)
    summary = {}
    for name, r in rows.items():
        total = sum(x["total_s"] for x in r)
        model = sum(x["model_s"] for x in r)
        summary[name] = {"total_s": round(total, 2), "model_s": round(model, 2),
                         "outside_s": round(total - model, 2),
                         "outside_share": round((total - model) / total, 3)}
    same = [a["detections"] == b["detections"] for a, b in zip(rows["before"], rows["after"], strict=True)]
    return {"scenes": [s.name for s in scenes], "repeats": repeats, "rows": rows, "summary": summary,
            "same_detection_counts": all(same), "load_average": os.getloadavg()}


def markdown(result: dict[str, object]) -> str:
    s = result["summary"]
    assert isinstance(s, dict)
    lines = ["| version | total s | model s | outside the model s | outside share |", "|---|---|---|---|---|"]
    for name in ("before", "after"):
        v = s[name]
        lines.append(f"| {name} | {v['total_s']} | {v['model_s']} | {v['outside_s']} | "
                     f"{v['outside_share']:.0%} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--before", type=Path, help="folder holding an earlier railwatch package")
    p.add_argument("--scenes", type=int, default=4, help="sample scenes to time (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per scene and version")
    p.add_argument("--scene", type=Path, help=argparse.SUPPRESS)  # one scene, in a child process
    args = p.parse_args()
    if args.scene is not None:
        print(json.dumps(one_scene(args.scene, args.repeats)))
        return 0
    if args.before is None or not (args.before / "railwatch").is_dir():
        p.error("--before must be a folder holding an earlier railwatch package")
    scenes = sorted((REPO / "sample_tiles").glob("*.tif"))[: args.scenes]
    result = compare(args.before, scenes, args.repeats)
    print(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
