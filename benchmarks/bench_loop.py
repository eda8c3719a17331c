"""The correct-and-retrain loop, measured: how much do N corrected cars lift the finder on a
new kind of imagery, and what does it cost?

A "new kind of imagery" is one condition of the shift suite (`bench_shift.CONDITIONS`, default
"strong sharpening"), SIMULATED with exact truth. A simulated analyst looks at one part of a
training scene of that kind: the N true cars nearest a point of the yard, every car there
drawn (kind unknown, as a hurried analyst leaves it) and every false box there gone (the chips
show only what lies within 8 m of what was drawn, `railwatch.training.labels`). That file goes
through `export_from_labels` and `train_model` with the defaults `railwatch train --stage finder
--data DS --from MODEL` takes (one-class finder, AdamW 1e-3, 100 epochs capped at 10 minutes,
the threshold chosen again on the held-out share of the analyst's chips). The new model is
scored on held-out scenes of the same kind (other seeds), any car at rotated IoU 0.5 and 0.3,
at the threshold the fine-tune chose; N = 0 is the model as given.

    python benchmarks/bench_loop.py --model railwatch/models --cars 0 15 30 50 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_shift import CONDITIONS
from common import machine, markdown_table, score
from pyproj import Transformer

from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.manifest import ModelManifest, default_model_dir
from railwatch.detect.observation import observe_file
from railwatch.simulate.yardscene import RenderedYard, render_yard_scene, write_yard_scene
from railwatch.training.evaluate import merge_evaluations
from railwatch.training.fit import TrainSettings, default_schedule, train_model
from railwatch.training.labels import export_from_labels

TRAIN_SEEDS = (300, 301)
TEST_SEEDS = (400, 401, 402)
SIZE_M = 240.0


def analyst_labels(scene: RenderedYard, n: int, seed: int) -> dict[str, object]:
    """The ``n`` true cars nearest a random car of the scene, as polygons without a kind."""
    corners = np.array([c.corners() for c in scene.cars])
    centres = corners.mean(axis=1)
    rng = np.random.default_rng(seed)
    start = centres[rng.integers(len(centres))]
    nearest = np.argsort(np.linalg.norm(centres - start, axis=1))[:n]
    to_ll = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    features = []
    for k in nearest:
        lon, lat = to_ll.transform(corners[k][:, 0], corners[k][:, 1])
        ring = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
        features.append({"type": "Feature", "properties": {"class": None},
                         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}})
    return {"type": "FeatureCollection", "features": features}


def evaluate(model: Path, tests: list[tuple[Path, RenderedYard]]) -> dict[str, float]:
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    at50, at30 = [], []
    for path, scene in tests:
        _, _, obs = observe_file(path, detector)
        found = obs.detections
        true = np.array([c.corners() for c in scene.cars]).reshape(-1, 4, 2)
        cls = np.array([c.car.cls.class_id for c in scene.cars], dtype=np.int64)
        at50.append(score(path.stem, found.corners, found.class_id, found.confidence, true, cls))
        at30.append(score(path.stem, found.corners, found.class_id, found.confidence, true, cls, iou=0.3))
    s50, s30 = merge_evaluations("", at50).any_class, merge_evaluations("", at30).any_class
    return {"conf": detector.conf, "precision": round(s50.precision, 4), "recall": round(s50.recall, 4),
            "f1": round(s50.f1, 4), "f1_iou03": round(s30.f1, 4), "count_error": round(s50.count_error, 4),
            "n_true": s50.n_true}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--condition", default="strong sharpening", choices=[c.name for c in CONDITIONS])
    p.add_argument("--cars", type=int, nargs="+", default=[0, 15, 30, 50, 100])
    p.add_argument("--replay", type=Path, default=None,
                   help="a simulated dataset to mix in (replay), e.g. chips of `railwatch dataset simulate`")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/loop.json"))
    args = p.parse_args()
    cond = next(c for c in CONDITIONS if c.name == args.condition)
    result: dict[str, object] = {"benchmark": "loop", "machine": machine(), "condition": cond.name,
                                 "model": ModelManifest.load(args.model).name, "rows": []}
    rows: list[dict[str, object]] = result["rows"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="railwatch-loop-") as tmp:
        work = Path(tmp)
        tests = []
        for seed in TEST_SEEDS:
            scene = render_yard_scene(cond.spec(seed, SIZE_M))
            path, _ = write_yard_scene(scene, work / "test" / f"test_{seed}_20240910.tif")
            tests.append((path, scene))
        train = [render_yard_scene(cond.spec(seed, SIZE_M)) for seed in TRAIN_SEEDS]
        train_paths = [write_yard_scene(s, work / "train" / f"train_{s.spec.seed}_20240910.tif")[0]
                       for s in train]
        for n in args.cars:
            if n == 0:
                rows.append({"cars": 0, "cpu_minutes": 0.0, **evaluate(args.model, tests)})
                print(json.dumps(rows[-1]), file=sys.stderr)
                continue
            # the analyst corrects n cars: half on each training scene (one scene when few)
            per = [n] if n < 40 else [n - n // 2, n // 2]
            labels = {"type": "FeatureCollection", "features": []}
            for k, m in enumerate(per):
                labels["features"] += analyst_labels(train[k], m, seed=n + k)["features"]  # type: ignore[operator]
            lab = work / f"labels_{n}.geojson"
            lab.write_text(json.dumps(labels))
            ds = work / f"ds_{n}"
            export_from_labels(train_paths[: len(per)], lab, ds, gsd=0.3, chip=320,
                               val_fraction=0.5 if len(per) > 1 else 0.2)
            schedule = default_schedule(fine_tune=True, analyst=True)
            datasets = (str(ds), *([str(args.replay)] if args.replay else []))
            settings = TrainSettings(datasets=datasets, out=str(work / f"model_{n}"), base=str(args.model),
                                     epochs=schedule.epochs, lr0=schedule.lr0, hours=schedule.hours,
                                     single_cls=True, workers=0)
            started = time.process_time()
            wall = time.monotonic()
            manifest = train_model(settings, progress=lambda m: None)
            cpu = (time.process_time() - started) / 60
            row = {"cars": n, "cpu_minutes": round(cpu, 2),
                   "wall_minutes": round((time.monotonic() - wall) / 60, 2),
                   "epochs_run": manifest.training.get("epochs_run"),
                   "conf_chosen": manifest.accuracy.document.get("conf_chosen"), **evaluate(manifest.folder, tests)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))


def markdown(result: dict[str, object]) -> str:
    rows = result["rows"]  # type: ignore[assignment]
    table = markdown_table(
        ["corrected cars", "CPU min", "threshold", "precision", "recall", "F1", "F1 (IoU 0.3)",
         "count error"],
        [[r["cars"], r["cpu_minutes"], r["conf"], r["precision"], r["recall"], r["f1"], r["f1_iou03"],
          f"{r['count_error']:+.1%}"] for r in rows],  # type: ignore[index, union-attr]
    )
    return (f"## The correct-and-retrain loop on a new kind of imagery: {result['condition']} (SIMULATED)\n\n"
            f"Model {result['model']}; held-out scenes seeds {list(TEST_SEEDS)}, {SIZE_M:.0f} m; any car at "
            "rotated IoU 0.5 at the threshold each model chose.\n\n" + table)


if __name__ == "__main__":
    main()
