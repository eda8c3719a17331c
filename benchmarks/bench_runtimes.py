"""Benchmark 2: ONNX Runtime against torch (ultralytics predict) on the same chips.

The chips are simulated yard chips (:func:`railwatch.simulate.chips.render_chip`) at the
model's ground sample distance and chip size. Each runtime gets the whole set in batches of
1, 8 and 32, through railwatch's own back-ends (decode and rotated NMS included, as in the
pipeline); one untimed call per batch size first. Runs of all runtime × batch cases are
interleaved; throughput is chips over the median wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from common import Profile, markdown_table, model_description, time_repeats

from railwatch.detect.detector import Detector, DetectorSettings, Runtime, load_detector
from railwatch.simulate.chips import render_chip

__all__ = ["markdown", "run"]


def _chips(n: int, gsd: float, size: int, seed: int = 7) -> np.ndarray:
    return np.stack([render_chip(seed, i, gsd=gsd, chip=size).image for i in range(n)])


def _predict_all(detector: Detector, chips: np.ndarray, batch: int) -> Callable[[], None]:
    def once() -> None:
        for i in range(0, len(chips), batch):
            detector.backend.predict(chips[i : i + batch], detector.conf, detector.settings.iou)

    return once


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Time both runtimes at each batch size of ``profile`` on ``profile.runtime_chips`` chips."""
    detectors = {rt: load_detector(model, settings=DetectorSettings(runtime=rt)) for rt in Runtime}
    manifest = detectors[Runtime.ONNX].manifest
    chips = _chips(profile.runtime_chips, manifest.gsd, manifest.chip)
    cases: dict[str, Callable[[], None]] = {}
    for rt, det in detectors.items():
        for b in profile.runtime_batches:
            det.backend.predict(chips[:b], det.conf, det.settings.iou)  # warm-up for this shape
            cases[f"{rt}/{b}"] = _predict_all(det, chips, b)
    stats = time_repeats(cases, profile.repeats)
    rows = []
    for key, st in stats.items():
        runtime, batch = key.split("/")
        n_batches = -(-len(chips) // int(batch))
        rows.append({"runtime": runtime, "batch": int(batch), **st.as_dict(),
                     "chips_per_s": round(len(chips) / st.median, 2),
                     "ms_per_chip": round(1000 * st.median / len(chips), 2),
                     "ms_per_batch": round(1000 * st.median / n_batches, 2)})
    ratio = {}
    for b in profile.runtime_batches:
        onnx, torch = (stats[f"{rt}/{b}"].median for rt in (Runtime.ONNX, Runtime.TORCH))
        ratio[str(b)] = round(torch / onnx, 3)
    return {
        "benchmark": "runtimes",
        "model": model_description(manifest),
        "chips": len(chips),
        "chip_px": manifest.chip,
        "repeats": profile.repeats,
        "rows": rows,
        "onnx_speedup_over_torch": ratio,
    }


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    table = markdown_table(
        ["runtime", "batch", "chips/s", "ms per chip", "ms per batch", "spread"],
        [[r["runtime"], r["batch"], r["chips_per_s"], r["ms_per_chip"], r["ms_per_batch"], r["spread"]]
         for r in result["rows"]],
    )
    speedups = ", ".join(f"batch {b}: {x}×" for b, x in result["onnx_speedup_over_torch"].items())
    return "\n".join([
        "## 2. Runtimes: ONNX Runtime against torch",
        "",
        f"{result['chips']} simulated chips of {result['chip_px']} px, median of {result['repeats']} "
        "interleaved runs; each runtime through railwatch's back-end (decode and rotated NMS included).",
        "",
        table,
        "",
        f"ONNX Runtime speed-up over torch (median time ratio): {speedups}.",
    ])
