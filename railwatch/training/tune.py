"""Measure a trained model on validation chips and pick its confidence threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from railwatch.detect.detector import Backend
from railwatch.detect.obb import xywhr_to_corners
from railwatch.errors import RailwatchError
from railwatch.training.evaluate import Evaluation, evaluate_scene, merge_evaluations

__all__ = ["ChipPredictions", "measure_on_val", "predict_val_chips", "tune_threshold"]

THRESHOLDS = tuple(np.round(np.arange(0.10, 0.80, 0.05), 2))


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


def tune_threshold(preds: Sequence[ChipPredictions]) -> tuple[float, dict[str, Any]]:
    """The threshold with the best F1 over all cars (class-correct), and the accuracy there."""
    best_conf, best_f1 = THRESHOLDS[0], -1.0
    for t in THRESHOLDS:
        ev = evaluate_at(preds, float(t))
        f1 = sum(s.tp for s in ev.per_class.values()) * 2 / max(
            1, sum(2 * s.tp + s.fp + s.fn for s in ev.per_class.values())
        )
        if f1 > best_f1:
            best_conf, best_f1 = float(t), f1
    at50 = evaluate_at(preds, best_conf, 0.5)
    at30 = evaluate_at(preds, best_conf, 0.3)
    return best_conf, {
        "conf": best_conf,
        "evaluated_on": f"{len(preds)} validation chips (simulated unless the datasets say otherwise)",
        **at50.as_dict(),
        "at_iou_0.3": at30.as_dict(),
    }


def measure_on_val(weights: Path, datasets: Sequence[str | Path], size: int) -> dict[str, Any]:
    """Accuracy of ``weights`` on the datasets' validation chips, at the threshold tuned there
    (the ``accuracy`` block of a manifest)."""
    import yaml

    from railwatch.detect.detector import TorchBackend

    val_dirs: list[Path] = []
    for d in datasets:
        doc = yaml.safe_load((Path(d) / "data.yaml").read_text())
        root = Path(doc.get("path") or d)
        vals = doc["val"] if isinstance(doc["val"], list) else [doc["val"]]
        val_dirs.extend(root / v for v in vals)
    preds = predict_val_chips(TorchBackend(weights, size), val_dirs, size)
    _, accuracy = tune_threshold(preds)
    return accuracy
