"""Benchmark 5: how far the pipeline is from the fastest this machine could run it.

Lower bound = floating-point operations the model needs per chip (ultralytics' thop count at
the chip size; torch's own ``FlopCounterMode`` beside it as a cross-check) × chips the scene
needs, over the machine's float32 matrix-multiply rate (the fastest of several timed
``torch.matmul`` of two n × n matrices, all cores). Dense matmul is the best case of CPU
arithmetic, so this is a practical floor for this model, chip plan and precision; only fewer
chips, a smaller model, lower precision or fewer arithmetic operations (e.g. Winograd
convolutions) go below it.

With the pipeline and runtime results of the same run, it reports the measured time against
the bound, and splits the gap into model time (runtime efficiency) and everything else
(reading, warping, cloud mask, chip plan, merge).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import Profile, markdown_table, model_description

from railwatch.detect.manifest import ModelFile, ModelManifest

__all__ = ["markdown", "matmul_gflops", "model_gflops", "run"]


def matmul_gflops(n: int, repeats: int) -> list[float]:
    """Float32 GFLOP/s of each of ``repeats`` timed ``torch.matmul`` on n × n matrices (2 n³
    operations each)."""
    import torch

    from railwatch.detect.offline import configure_torch_threads

    configure_torch_threads()
    a = torch.randn(n, n, dtype=torch.float32)
    b = torch.randn(n, n, dtype=torch.float32)
    torch.matmul(a, b)  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return rates


def model_gflops(manifest: ModelManifest) -> dict[str, float]:
    """GFLOPs of one chip: ultralytics' thop count, and torch's ``FlopCounterMode`` count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from railwatch.detect.offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.utils.torch_utils import get_flops

    yolo = ultralytics.YOLO(str(manifest.verified_path(ModelFile.WEIGHTS)), task="obb")
    net = yolo.model.float().eval()
    thop = float(get_flops(net, imgsz=manifest.chip))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, manifest.chip, manifest.chip))
    return {"thop_gflops": round(thop, 4), "torch_counter_gflops": round(counter.get_total_flops() / 1e9, 4)}


def _scene_rows(pipeline: Mapping[str, Any], per_chip: float, rate: float) -> list[dict[str, object]]:
    rows = []
    for key in ("railwatch", "naive"):
        r = pipeline[key]
        bound = r["chips"] * per_chip / rate
        rows.append({
            "approach": key, "chips": r["chips"], "bound_s": round(bound, 4),
            "measured_s": r["median_s"], "model_s": r["model_median_s"],
            "measured_over_bound": round(r["median_s"] / bound, 2) if bound else None,
            "model_over_bound": round(r["model_median_s"] / bound, 2) if bound else None,
            "non_model_share": round(1 - r["model_median_s"] / r["median_s"], 3),
        })
    return rows


def _pipeline_run(pipeline: Mapping[str, Any]) -> dict[str, object]:
    """Which pipeline run the measured times come from (it may be an earlier run's JSON)."""
    info = pipeline.get("machine") or {}
    scene = pipeline.get("scene") or {}
    return {"profile": pipeline.get("profile"), "date": info.get("date"),
            "git_commit": info.get("git_commit"), "scenes": scene.get("scenes", 1)}


def run(profile: Profile, model: Path, work: Path, pipeline: Mapping[str, Any] | None = None,
        runtimes: Mapping[str, Any] | None = None) -> dict[str, object]:
    """Measure the bound; relate it to ``pipeline`` and ``runtimes`` results when given."""
    manifest = ModelManifest.load(model)
    flops = model_gflops(manifest)
    per_chip = flops["thop_gflops"] or flops["torch_counter_gflops"]
    rates = matmul_gflops(profile.matmul_n, max(5, profile.repeats))
    rate = max(rates)  # the fastest the machine showed: the bound is a best case
    result: dict[str, object] = {
        "benchmark": "limit",
        "model": model_description(manifest),
        "gflops_per_chip": flops,
        "matmul_n": profile.matmul_n,
        "matmul_gflops_per_s": round(rate, 2),
        "matmul_median_gflops_per_s": round(statistics.median(rates), 2),
        "matmul_runs_gflops_per_s": [round(r, 2) for r in rates],
        "bound_chips_per_s": round(rate / per_chip, 2) if per_chip else None,
    }
    if runtimes is not None:
        best = max(runtimes["rows"], key=lambda r: r["chips_per_s"])
        result["best_runtime"] = {
            "runtime": best["runtime"], "batch": best["batch"], "chips_per_s": best["chips_per_s"],
            "achieved_gflops_per_s": round(best["chips_per_s"] * per_chip, 2),
            "share_of_matmul_rate": round(best["chips_per_s"] * per_chip / rate, 3),
        }
    if pipeline is not None and per_chip:
        result["scene"] = _scene_rows(pipeline, per_chip, rate)
        result["pipeline_run"] = _pipeline_run(pipeline)
    return result


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    flops = result["gflops_per_chip"]
    chip = result["model"]["chip"]
    lines = [
        "## 5. Limit: the fastest this machine could run the pipeline",
        "",
        f"Model cost: {flops['thop_gflops']} GFLOPs per {chip} px chip (ultralytics/thop; torch "
        f"FlopCounterMode: {flops['torch_counter_gflops']}). Machine: {result['matmul_gflops_per_s']} "
        f"GFLOP/s float32 (torch.matmul {result['matmul_n']}², best of "
        f"{len(result['matmul_runs_gflops_per_s'])}; median {result['matmul_median_gflops_per_s']}), "
        f"so at best {result['bound_chips_per_s']} chips/s.",
    ]
    if "best_runtime" in result:
        b = result["best_runtime"]
        lines += ["", f"Best runtime measured: {b['runtime']} at batch {b['batch']}, {b['chips_per_s']} "
                  f"chips/s = {b['achieved_gflops_per_s']} GFLOP/s, {b['share_of_matmul_rate']:.0%} of the "
                  "matmul rate."]
    if "scene" in result:
        src = result.get("pipeline_run") or {}
        lines += ["", f"Measured times: benchmark 1 ({src.get('profile')} run of {src.get('date')}, commit "
                  f"{src.get('git_commit')}; median per scene over {src.get('scenes')} scene(s))."]
        lines += ["", markdown_table(
            ["approach", "chips", "bound s", "measured s", "model s", "measured / bound", "model / bound",
             "share not in the model"],
            [[r["approach"], r["chips"], r["bound_s"], r["measured_s"], r["model_s"],
              r["measured_over_bound"], r["model_over_bound"], r["non_model_share"]]
             for r in result["scene"]],
        )]
    return "\n".join(lines)
