"""The correct-and-retrain loop on simulated imagery of a new kind, where the truth is known: a
simulated analyst's corrections, one turn of the loop (dataset, fine-tune with the defaults
`railwatch train` takes), and the score on held-out scenes. Used by notebook 03 and
``benchmarks/bench_loop.py``; an analyst's own loop is the README's commands on real files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import Transformer

from railwatch.detect.detector import DetectorSettings, Runtime, load_detector
from railwatch.detect.observation import observe_file
from railwatch.simulate.yardscene import RenderedYard
from railwatch.training.evaluate import Evaluation, evaluate_scene, merge_evaluations
from railwatch.training.fit import TrainSettings, default_freeze, default_schedule, train_model
from railwatch.training.labels import ChipSettings, export_from_labels

__all__ = ["LoopScore", "LoopTurn", "corrected_cars", "retrain_on_corrections", "score_on_scenes"]


@dataclass(frozen=True, slots=True)
class LoopScore:
    """Any-car scores of a model on held-out scenes (rotated IoU 0.5, and F1 at 0.3), at the
    threshold the model chose."""

    conf: float
    precision: float
    recall: float
    f1: float
    f1_iou03: float
    count_error: float
    n_true: int


@dataclass(frozen=True, slots=True)
class LoopTurn:
    """One turn of the loop: how many cars were corrected, what it cost, where the model is."""

    cars: int
    cpu_minutes: float
    wall_minutes: float
    model: Path
    conf_chosen: str


def corrected_cars(scene: RenderedYard, n: int, seed: int) -> list[dict[str, object]]:
    """What an analyst in a hurry hands back: the ``n`` true cars nearest a random car of the
    scene, each drawn as a polygon without a kind (EPSG:4326 features). Every false box near
    them is gone, as the chips show only what lies near what was drawn."""
    corners = np.array([c.corners() for c in scene.cars])
    centres = corners.mean(axis=1)
    start = centres[np.random.default_rng(seed).integers(len(centres))]
    nearest = np.argsort(np.linalg.norm(centres - start, axis=1))[:n]
    to_lonlat = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    features: list[dict[str, object]] = []
    for k in nearest:
        lon, lat = to_lonlat.transform(corners[k][:, 0], corners[k][:, 1])
        ring = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
        features.append({"type": "Feature", "properties": {"class": None},
                         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}})
    return features


def score_on_scenes(model: Path, scenes: Sequence[tuple[Path, RenderedYard]]) -> LoopScore:
    """The model (full pipeline, ONNX Runtime) on each scene's whole image against its truth."""
    detector = load_detector(model, settings=DetectorSettings(runtime=Runtime.ONNX))
    at50: list[Evaluation] = []
    at30: list[Evaluation] = []
    for path, scene in scenes:
        _, _, observed = observe_file(path, detector)
        found = observed.detections
        true = np.array([c.corners() for c in scene.cars], dtype=np.float64).reshape(-1, 4, 2)
        cls = np.array([c.car.cls.class_id for c in scene.cars], dtype=np.int64)
        for iou, acc in ((0.5, at50), (0.3, at30)):
            acc.append(evaluate_scene(path.stem, np.asarray(found.corners, np.float64), found.class_id,
                                      found.confidence, true, cls, iou))
    s50, s30 = merge_evaluations("", at50).any_class, merge_evaluations("", at30).any_class
    return LoopScore(detector.conf, s50.precision, s50.recall, s50.f1, s30.f1, s50.count_error, s50.n_true)


def retrain_on_corrections(
    base: Path,
    images: Sequence[Path],
    corrections: Sequence[dict[str, object]],
    work: Path,
    epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> LoopTurn:
    """One turn: the corrections (features of :func:`corrected_cars`, or an analyst's file)
    become a dataset, and the finder of ``base`` is fine-tuned with the defaults of an analyst's
    fine-tune (``epochs`` overrides them for a quick look)."""
    labels = work / "corrections.geojson"
    work.mkdir(parents=True, exist_ok=True)
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": list(corrections)}))
    dataset = work / "dataset"
    export_from_labels(list(images), labels, dataset,
                       ChipSettings(val_fraction=0.5 if len(images) > 1 else 0.2))
    schedule = default_schedule(fine_tune=True, analyst=True)
    datasets = [str(dataset)]
    if schedule.replay:  # as `railwatch train` does: renders beside the few real chips
        from railwatch.simulate.chips import export_yolo_obb

        export_yolo_obb(work / "replay", schedule.replay, seed=7, workers=max(1, os.cpu_count() or 1))
        datasets.append(str(work / "replay"))
    settings = TrainSettings(datasets=tuple(datasets), out=str(work / "model"), base=str(base),
                             epochs=epochs or schedule.epochs, lr0=schedule.lr0, hours=schedule.hours,
                             single_cls=True, workers=0, freeze=default_freeze(str(base)))
    cpu, wall = time.process_time(), time.monotonic()
    manifest = train_model(settings, progress=lambda m: None)
    turn = LoopTurn(len(corrections), (time.process_time() - cpu) / 60, (time.monotonic() - wall) / 60,
                    manifest.folder, str(manifest.accuracy.document.get("conf_chosen", "")))
    log(f"{turn.cars} corrected cars: {turn.wall_minutes:.1f} min ({turn.cpu_minutes:.1f} CPU min); "
        f"threshold {manifest.conf}: {turn.conf_chosen}")
    return turn
