"""Measure a trained model on validation chips and pick its confidence threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from railwatch.detect.detector import Backend
from railwatch.detect.obb import xywhr_to_corners
from railwatch.errors import RailwatchError
from railwatch.training.evaluate import Evaluation, evaluate_scene, merge_evaluations

__all__ = ["ChipPredictions", "measure_on_val", "predict_val_chips", "tune_threshold"]

THRESHOLDS = tuple(np.round(np.arange(0.05, 0.80, 0.05), 2))
#: Fewer held-out cars than this make a chosen threshold a guess; the manifest says so.
FEW_CARS = 30


@dataclass(frozen=True, slots=True)
class ChipPredictions:
    """Low-threshold predictions and truth of one validation chip (chip pixels)."""

    name: str
    pred_corners: np.ndarray
    pred_class: np.ndarray
    pred_score: np.ndarray
    true_corners: np.ndarray
    true_class: np.ndarray


def _read_label(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        return np.zeros((0, 4, 2)), np.zeros(0, dtype=np.int64)
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, 4, 2)), np.zeros(0, dtype=np.int64)
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 1:9].reshape(-1, 4, 2) * size, arr[:, 0].astype(np.int64)


def predict_val_chips(
    backend: Backend, image_dirs: Sequence[Path], size: int, batch: int = 16, limit: int | None = None
) -> list[ChipPredictions]:
    """Run ``backend`` at a low threshold over the chips in ``image_dirs`` (ultralytics layout:
    labels beside ``images/`` in ``labels/``)."""
    import cv2

    files = sorted(p for d in image_dirs for p in Path(d).glob("*.png"))[:limit]
    out: list[ChipPredictions] = []
    for i in range(0, len(files), batch):
        group = files[i : i + batch]
        chips = []
        for f in group:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise RailwatchError(f"{f}: not a readable image; remove it or re-export the dataset")
            if bgr.shape[:2] != (size, size):
                bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
            chips.append(bgr[:, :, ::-1])
        for f, boxes in zip(group, backend.predict(np.stack(chips), 0.05, 0.5), strict=True):
            label = Path(str(f).replace("/images/", "/labels/")).with_suffix(".txt")
            true_corners, true_class = _read_label(label, size)
            out.append(ChipPredictions(
                f.name, xywhr_to_corners(boxes.xywhr), boxes.class_id, boxes.confidence,
                true_corners, true_class,
            ))
    return out


def evaluate_at(preds: Sequence[ChipPredictions], conf: float, iou: float = 0.5) -> Evaluation:
    parts = []
    for p in preds:
        keep = p.pred_score >= conf
        parts.append(evaluate_scene(p.name, p.pred_corners[keep], p.pred_class[keep],
                                    p.pred_score[keep], p.true_corners, p.true_class, iou))
    return merge_evaluations("val chips", parts)


def one_class(preds: Sequence[ChipPredictions]) -> list[ChipPredictions]:
    """The predictions with every class, found and true, made one (a car is a car)."""
    return [replace(p, pred_class=np.zeros_like(p.pred_class), true_class=np.zeros_like(p.true_class))
            for p in preds]


def tune_threshold(preds: Sequence[ChipPredictions], single_class: bool = False,
                   evaluated_on: str = "validation chips (simulated unless the datasets say otherwise)",
                   ) -> tuple[float, dict[str, Any]]:
    """The threshold with the best F1 over all cars (class-correct; any car for a one-class
    finder, whose accuracy then has no per-class part), and the accuracy there."""
    if single_class:
        preds = one_class(preds)
    best_conf, best_f1 = THRESHOLDS[0], -1.0
    for t in THRESHOLDS:
        ev = evaluate_at(preds, float(t))
        f1 = sum(s.tp for s in ev.per_class.values()) * 2 / max(
            1, sum(2 * s.tp + s.fp + s.fn for s in ev.per_class.values())
        )
        if f1 > best_f1:
            best_conf, best_f1 = float(t), f1
    at50 = evaluate_at(preds, best_conf, 0.5).as_dict()
    at30 = evaluate_at(preds, best_conf, 0.3).as_dict()
    if single_class:  # the finder names no class: its per-class scores mean nothing
        del at50["per_class"], at30["per_class"]
    n_cars = int(sum(len(p.true_class) for p in preds))
    curve = {f"{float(t):.2f}": round(evaluate_at(preds, float(t)).any_class.f1, 4) for t in THRESHOLDS}
    return best_conf, {
        "conf": best_conf,
        "conf_chosen": f"the best any-car F1 of {len(THRESHOLDS)} thresholds "
                       f"{THRESHOLDS[0]}–{THRESHOLDS[-1]} on {n_cars} cars of {len(preds)} {evaluated_on}"
                       + (f"; fewer than {FEW_CARS} cars: the threshold is uncertain" if n_cars < FEW_CARS
                          else ""),
        "evaluated_on": f"{len(preds)} {evaluated_on}",
        "n_cars": n_cars,
        "f1_by_conf": {k: (None if v != v else v) for k, v in curve.items()},
        **at50,
        "at_iou_0.3": at30,
    }


def measure_on_val(weights: Path, datasets: Sequence[str | Path], size: int, single_class: bool = False
                   ) -> dict[str, Any]:
    """Accuracy of ``weights`` on held-out chips, at the threshold chosen there (the ``accuracy``
    block of a manifest).

    When some datasets are an analyst's labels (``railwatch dataset from-labels``), only their
    validation chips are used: a finder fine-tuned on a new kind of imagery is measured, and its
    threshold chosen, on cars of that imagery it did not train on, never on simulated chips.
    """
    import yaml

    from railwatch.detect.detector import TorchBackend
    from railwatch.training.datasets import is_analyst_dataset

    docs = [(Path(d), yaml.safe_load((Path(d) / "data.yaml").read_text())) for d in datasets]
    analyst = [(d, doc) for d, doc in docs if is_analyst_dataset(d)]
    chosen = analyst or docs
    val_dirs: list[Path] = []
    for d, doc in chosen:
        root = Path(doc.get("path") or d)
        vals = doc["val"] if isinstance(doc["val"], list) else [doc["val"]]
        val_dirs.extend(root / v for v in vals)
    what = (f"held-out chips of the analyst's labels ({', '.join(d.name for d, _ in analyst)}; never "
            "trained on)" if analyst else "validation chips (simulated unless the datasets say otherwise)")
    preds = predict_val_chips(TorchBackend(weights, size), val_dirs, size)
    _, accuracy = tune_threshold(preds, single_class, evaluated_on=what)
    return accuracy
