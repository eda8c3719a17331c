"""Shared pieces of the benchmarks: run profiles, the machine description, timing, a chip-counting
model wrapper, scoring against truth, and markdown tables.

Nothing here asserts a timing: benchmarks measure and write; the reader judges.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from railwatch.classes import CLASSES
from railwatch.detect.detector import ChipBoxes, Detector, DetectorSettings, Runtime, load_detector
from railwatch.detect.manifest import ModelManifest
from railwatch.training.evaluate import Evaluation, evaluate_scene

__all__ = [
    "PROFILES",
    "REPO",
    "ChipCounter",
    "Profile",
    "Timing",
    "TimingStats",
    "load_counted_detector",
    "machine",
    "markdown_table",
    "model_description",
    "score",
    "time_repeats",
    "warm_up",
    "write_json",
]

#: The repository root (benchmarks/ lives in it).
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Profile:
    """How big each benchmark runs: ``tiny`` (tests), ``quick`` (minutes) or ``full``.

    Boxes are ``(minx, miny, maxx, maxy)`` in the bundled site's local UTM metres; ``None`` is
    the bounding box of the whole site AOI. ``pipeline_sample`` is a file pattern in
    ``sample_tiles/`` (the pipeline benchmark runs on those scenes), or ``None``: a simulated
    scene of ``pipeline_box``. ``pipeline_repeats`` runs of each approach per scene.
    """

    name: str
    repeats: int
    pipeline_box: tuple[float, float, float, float] | None
    pipeline_sample: str | None
    pipeline_repeats: int
    runtime_chips: int
    runtime_batches: tuple[int, ...]
    scaling_sides: tuple[int, ...]
    accuracy_box: tuple[float, float, float, float]
    accuracy_seeds: tuple[int, ...]
    matmul_n: int

    def __post_init__(self) -> None:
        if min(self.repeats, self.pipeline_repeats, self.runtime_chips) < 1 or not self.runtime_batches:
            raise ValueError("repeats and runtime_chips must be >= 1, with at least one batch size")
        if len(self.scaling_sides) < 2 or any(s < 64 for s in self.scaling_sides):
            raise ValueError("scaling needs at least two scene sides of >= 64 px")
        if not self.accuracy_seeds or self.matmul_n < 64:
            raise ValueError("accuracy needs a seed, and matmul_n must be >= 64")


#: The middle of the Tumangang yard: six parallel yard tracks and the mainline.
_YARD = (632000.0, 4697618.0, 632600.0, 4698018.0)
#: The Tumangang yard and its surroundings (1.6 × 1 km).
_YARD_AREA = (631500.0, 4697300.0, 633100.0, 4698300.0)

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny", repeats=2, pipeline_box=(632150.0, 4697740.0, 632450.0, 4697900.0),
        pipeline_sample=None, pipeline_repeats=2,
        runtime_chips=16, runtime_batches=(1, 8), scaling_sides=(256, 512),
        accuracy_box=(632200.0, 4697760.0, 632400.0, 4697880.0), accuracy_seeds=(0,), matmul_n=256,
    ),
    "quick": Profile(
        name="quick", repeats=3, pipeline_box=_YARD_AREA,
        pipeline_sample="tumangang_khasan_20231005T0215Z.tif", pipeline_repeats=1, runtime_chips=64,
        runtime_batches=(1, 8, 32),
        scaling_sides=(2000, 4000, 8000), accuracy_box=_YARD, accuracy_seeds=(0,), matmul_n=2048,
    ),
    "full": Profile(
        name="full", repeats=5, pipeline_box=None, pipeline_sample="*.tif", pipeline_repeats=1,
        runtime_chips=128, runtime_batches=(1, 8, 32),
        scaling_sides=(2000, 8000, 20000), accuracy_box=_YARD, accuracy_seeds=(0, 1, 2), matmul_n=4096,
    ),
}


@dataclass(frozen=True, slots=True)
class TimingStats:
    """Wall times (s) of repeated runs of one thing."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.seconds))

    @property
    def spread(self) -> float:
        """Largest minus smallest, as a fraction of the median (how noisy the runs were)."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"median_s": round(self.median, 4), "runs_s": [round(s, 4) for s in self.seconds],
                "spread": round(self.spread, 3)}


Timing = Callable[[], object]


def time_repeats(fns: Mapping[str, Timing], repeats: int) -> dict[str, TimingStats]:
    """Run each function ``repeats`` times, interleaved (a, b, a, b, …) so that background load
    falls on all of them alike; wall time of each run."""
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            runs[key].append(time.perf_counter() - t0)
    return {k: TimingStats(tuple(v)) for k, v in runs.items()}


class ChipCounter:
    """Wraps a model backend; counts the chips it is asked to look at and the time it takes."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.chips = 0
        self.calls = 0
        self.seconds = 0.0

    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        t0 = time.perf_counter()
        out: list[ChipBoxes] = self.inner.predict(chips, conf, iou)  # type: ignore[attr-defined]
        self.seconds += time.perf_counter() - t0
        self.chips += len(chips)
        self.calls += 1
        return out

    def reset(self) -> None:
        self.chips = 0
        self.calls = 0
        self.seconds = 0.0


def load_counted_detector(model: Path, runtime: Runtime = Runtime.ONNX, batch: int = 8
                          ) -> tuple[Detector, ChipCounter]:
    """The model in ``model`` with a chip counter between the detector and its runtime."""
    plain = load_detector(model, settings=DetectorSettings(runtime=runtime, batch=batch))
    counter = ChipCounter(plain.backend)
    return Detector(plain.manifest, counter, plain.settings), counter


def warm_up(detector: Detector) -> None:
    """One batch through the model, so that session set-up is not timed."""
    size = detector.manifest.chip
    chips = np.full((detector.settings.batch, size, size, 3), 114, dtype=np.uint8)
    detector.backend.predict(chips, detector.conf, detector.settings.iou)


def score(name: str, pred_corners: np.ndarray, pred_class: np.ndarray, pred_conf: np.ndarray,
          true_corners: np.ndarray, true_class: np.ndarray, iou: float = 0.5) -> Evaluation:
    """Precision, recall and F1 per class and for any car, at rotated IoU ``iou``."""
    return evaluate_scene(
        name, np.asarray(pred_corners, float).reshape(-1, 4, 2), np.asarray(pred_class, np.int64),
        np.asarray(pred_conf, float), np.asarray(true_corners, float).reshape(-1, 4, 2),
        np.asarray(true_class, np.int64), iou,
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are written with 3 significant decimals."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            if v != v:  # NaN
                return "–"
            if abs(v) >= 1000:
                return f"{v:,.0f}"
            if v != 0 and abs(v) < 0.01:
                return f"{v:.2g}"
            return f"{v:.3f}".rstrip("0").rstrip(".")
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, doc: object) -> Path:
    """Write ``doc`` as indented JSON (numpy scalars and paths converted)."""

    def default(o: object) -> object:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    path.write_text(json.dumps(doc, indent=2, default=default) + "\n", encoding="utf-8")
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, object]:
    """What the numbers were measured on: CPU, cores, RAM, load, date and software versions."""
    import rasterio

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "ram_gib": _ram_gib(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "railwatch": _version("railwatch"),
            "numpy": _version("numpy"),
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"),
            "ultralytics": _version("ultralytics-opencv-headless")
            if _version("ultralytics") == "not installed" else _version("ultralytics"),
            "rasterio": _version("rasterio"),
            "gdal": rasterio.__gdal_version__,
        },
        "git_commit": _git_commit(),
    }


def model_description(manifest: ModelManifest) -> dict[str, object]:
    """Which model produced the numbers: name, sha256, gsd, chip, and how it was trained."""
    training = manifest.training
    return {
        "folder": str(manifest.folder),
        "name": manifest.name,
        "sha256": manifest.sha256,
        "gsd": manifest.gsd,
        "chip": manifest.chip,
        "classes": list(CLASSES),
        "training_note": str(training.get("note", training.get("command", ""))),
    }
