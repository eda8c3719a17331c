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

    python benchmarks/bench_loop.py --model models --cars 0 15 30 50 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench_shift import CONDITIONS
from common import machine, markdown_table

from railwatch.detect.manifest import ModelManifest, default_model_dir
from railwatch.simulate.yardscene import render_yard_scene, write_yard_scene
from railwatch.training.loop import corrected_cars, retrain_on_corrections, score_on_scenes

TRAIN_SEEDS = (300, 301)
TEST_SEEDS = (400, 401, 402)
SIZE_M = 240.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--condition", default="strong sharpening", choices=[c.name for c in CONDITIONS])
    p.add_argument("--cars", type=int, nargs="+", default=[0, 15, 30, 50, 100])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/loop.json"))
    args = p.parse_args()
    cond = next(c for c in CONDITIONS if c.name == args.condition)
    rows: list[dict[str, object]] = []
    result: dict[str, object] = {"benchmark": "loop", "machine": machine(), "condition": cond.name,
                                 "model": ModelManifest.load(args.model).name, "rows": rows}
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
                rows.append({"cars": 0, "cpu_minutes": 0.0, "wall_minutes": 0.0,
                             **asdict(score_on_scenes(args.model, tests))})
            else:
                per = [n] if n < 40 else [n - n // 2, n // 2]  # one scene when few, else two
                corrections = [f for k, m in enumerate(per) for f in corrected_cars(train[k], m, seed=n + k)]
                turn = retrain_on_corrections(args.model, train_paths[: len(per)], corrections,
                                              work / f"turn_{n}", log=lambda m: print(m, file=sys.stderr))
                rows.append({"cars": n, "cpu_minutes": round(turn.cpu_minutes, 2),
                             "wall_minutes": round(turn.wall_minutes, 2), "conf_chosen": turn.conf_chosen,
                             **asdict(score_on_scenes(turn.model, tests))})
            print(json.dumps(rows[-1]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))


def markdown(result: dict[str, object]) -> str:
    rows = result["rows"]  # type: ignore[assignment]
    table = markdown_table(
        ["corrected cars", "minutes (CPU min)", "threshold", "precision", "recall", "F1", "F1 (IoU 0.3)",
         "count error"],
        [[r["cars"], f"{r['wall_minutes']} ({r['cpu_minutes']})", r["conf"], r["precision"], r["recall"],
          r["f1"], r["f1_iou03"], f"{r['count_error']:+.1%}"] for r in rows],  # type: ignore[index, union-attr]
    )
    return (f"## The correct-and-retrain loop on a new kind of imagery: {result['condition']} (SIMULATED)\n\n"
            f"Model {result['model']}; held-out scenes seeds {list(TEST_SEEDS)}, {SIZE_M:.0f} m; any car at "
            "rotated IoU 0.5 at the threshold each model chose.\n\n" + table)


if __name__ == "__main__":
    main()
