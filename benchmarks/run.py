"""Run railwatch's benchmarks and write one JSON per benchmark and a ``summary.md``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py [--quick | --tiny] [--model DIR] [--out DIR] [--only NAME ...]
                                       [--pipeline-json FILE]

Full mode takes ~45–60 min on 2 idle cores (the pipeline benchmark alone ~25 min), ``--quick``
~5 min, ``--tiny`` seconds (for the tests: the numbers mean nothing). See benchmarks/README.md
for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import bench_accuracy
import bench_limit
import bench_pipeline
import bench_runtimes
import bench_scaling
import bench_shift
from common import PROFILES, REPO, Profile, machine, write_json

from railwatch.detect.manifest import ModelManifest, default_model_dir

BENCHMARKS = ("pipeline", "runtimes", "scaling", "accuracy", "limit", "shift")
MARKDOWN: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "pipeline": bench_pipeline.markdown,
    "runtimes": bench_runtimes.markdown,
    "scaling": bench_scaling.markdown,
    "accuracy": bench_accuracy.markdown,
    "shift": bench_shift.markdown,
    "limit": bench_limit.markdown,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller scenes, fewer repeats (a few minutes)")
    size.add_argument("--tiny", action="store_true", help="tiny inputs, to prove the scripts work (tests)")
    p.add_argument("--model", type=Path, default=default_model_dir(),
                   help="model folder with manifest.json (default: $RAILWATCH_MODEL_DIR, "
                   "else the shipped models/)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out",
                   help="where the JSON files, summary.md and scaling.png go (default: benchmarks/out/)")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="NAME",
                   help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    p.add_argument("--pipeline-json", type=Path, default=None, metavar="FILE",
                   help="pipeline.json of an earlier run, for the limit benchmark to relate its bound to "
                        "when this run does not run the pipeline benchmark itself")
    args = p.parse_args(argv)
    if args.pipeline_json is not None and not args.pipeline_json.is_file():
        p.error(f"--pipeline-json {args.pipeline_json}: no such file")
    return args


def _run_one(name: str, profile: Profile, model: Path, work: Path, done: Mapping[str, Any],
             out: Path, earlier: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if name == "pipeline":
        return bench_pipeline.run(profile, model, work)
    if name == "runtimes":
        return bench_runtimes.run(profile, model, work)
    if name == "scaling":
        result = bench_scaling.run(profile, model, work)
        bench_scaling.plot(result, out / "scaling.png")
        return result
    if name == "accuracy":
        return bench_accuracy.run(profile, model, work)
    if name == "shift":
        return bench_shift.run(profile, model, work)
    return bench_limit.run(profile, model, work, done.get("pipeline", earlier), done.get("runtimes"))


def _machine_section(info: Mapping[str, Any], model: ModelManifest, profile: Profile) -> str:
    v = info["versions"]
    training = model.training.get("note") or model.training.get("command") or "not recorded"
    return "\n".join([
        "# railwatch benchmarks",
        "",
        f"- Date: {info['date']}; profile: `{profile.name}`; railwatch commit {info['git_commit']}",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; "
        f"load average at start {info['load_average_1_5_15']}; {info['os']}",
        f"- Software: Python {info['python']}, numpy {v['numpy']}, torch {v['torch']}, onnxruntime "
        f"{v['onnxruntime']}, ultralytics {v['ultralytics']}, rasterio {v['rasterio']} (GDAL {v['gdal']})",
        f"- Model: `{model.name}` (sha256 {model.sha256[:12]}…), {model.gsd} m, {model.chip} px chips; "
        f"trained: {training}",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES["tiny" if args.tiny else "quick" if args.quick else "full"]
    if not (args.model / "manifest.json").is_file():
        print(f"{args.model}: no manifest.json; pass --model with a model folder", file=sys.stderr)
        return 2
    manifest = ModelManifest.load(args.model)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    write_json(out / "machine.json", info)
    done: dict[str, dict[str, Any]] = {}
    earlier = json.loads(args.pipeline_json.read_text(encoding="utf-8")) if args.pipeline_json else None
    order = [b for b in BENCHMARKS if b in args.only]
    with tempfile.TemporaryDirectory(prefix="railwatch-bench-") as tmp:
        for i, name in enumerate(order, 1):
            print(f"[{i}/{len(order)}] {name} …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            result = _run_one(name, profile, args.model, Path(tmp), done, out, earlier)
            result["elapsed_s"] = round(time.perf_counter() - t0, 1)
            result["profile"] = profile.name
            result["machine"] = info
            done[name] = result
            write_json(out / f"{name}.json", result)
            print(f"[{i}/{len(order)}] {name} done in {result['elapsed_s']} s", file=sys.stderr, flush=True)
    sections = [_machine_section(info, manifest, profile)]
    sections += [MARKDOWN[name](done[name]) for name in order]
    (out / "summary.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {out / 'summary.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
