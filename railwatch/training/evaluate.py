"""Detection accuracy against ground truth: precision, recall, F1 per class at rotated IoU
thresholds, and count error — per scene and overall (pure functions, and a markdown table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from railwatch.classes import CLASSES
from railwatch.detect.obb import rotated_iou

__all__ = [
    "ClassScore",
    "Evaluation",
    "evaluate_scene",
    "evaluation_table",
    "markdown_table",
    "match_boxes",
    "merge_evaluations",
    "system_matrix",
]


@dataclass(frozen=True, slots=True)
class ClassScore:
    """True positives, false positives, false negatives and counts of one class."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else float("nan")

    @property
    def n_true(self) -> int:
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def count_error(self) -> float:
        """Relative error of the count (predicted − true) / true."""
        return (self.n_pred - self.n_true) / self.n_true if self.n_true else float("nan")

    def __add__(self, other: ClassScore) -> ClassScore:
        return ClassScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Scores per class (and ``any`` class: a car is a car) at one IoU threshold."""

    name: str
    iou: float
    per_class: dict[str, ClassScore]
    any_class: ClassScore

    def as_dict(self) -> dict[str, object]:
        def one(s: ClassScore) -> dict[str, float | int]:
            return {
                "precision": round(s.precision, 4), "recall": round(s.recall, 4),
                "f1": round(s.f1, 4), "n_true": s.n_true, "n_pred": s.n_pred,
                "count_error": round(s.count_error, 4),
            }

        return {
            "iou": self.iou,
            "per_class": {c: one(s) for c, s in self.per_class.items()},
            "any_class": one(self.any_class),
        }


def match_boxes(
    pred: np.ndarray, truth: np.ndarray, iou_threshold: float, scores: np.ndarray | None = None
) -> np.ndarray:
    """Greedy one-to-one matching (highest score first): ``(k, 2)`` index pairs (pred, truth)."""
    if len(pred) == 0 or len(truth) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    iou = rotated_iou(pred, truth)
    order = np.argsort(-scores) if scores is not None else np.arange(len(pred))
    taken = np.zeros(len(truth), dtype=bool)
    pairs = []
    for i in order:
        candidates = np.where(~taken & (iou[i] >= iou_threshold))[0]
        if len(candidates):
            j = candidates[np.argmax(iou[i, candidates])]
            taken[j] = True
            pairs.append((i, j))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def evaluate_scene(
    name: str,
    pred_corners: np.ndarray,
    pred_class: np.ndarray,
    pred_score: np.ndarray,
    true_corners: np.ndarray,
    true_class: np.ndarray,
    iou_threshold: float = 0.5,
) -> Evaluation:
    """Score one scene. A class-correct match is a TP of its class; "any" ignores the class."""
    per_class: dict[str, ClassScore] = {}
    for k, cls in enumerate(CLASSES):
        p, t = pred_class == k, true_class == k
        pairs = match_boxes(pred_corners[p], true_corners[t], iou_threshold, pred_score[p])
        tp = len(pairs)
        per_class[cls] = ClassScore(tp, int(p.sum()) - tp, int(t.sum()) - tp)
    pairs = match_boxes(pred_corners, true_corners, iou_threshold, pred_score)
    tp = len(pairs)
    any_class = ClassScore(tp, len(pred_corners) - tp, len(true_corners) - tp)
    return Evaluation(name, iou_threshold, per_class, any_class)


def merge_evaluations(name: str, parts: Sequence[Evaluation]) -> Evaluation:
    """Sum the counts of several scenes' evaluations at the same IoU."""
    if not parts:
        raise ValueError("nothing to merge")
    zero = ClassScore(0, 0, 0)
    per_class: dict[str, ClassScore] = {c: sum((p.per_class[c] for p in parts), zero) for c in CLASSES}
    any_class = sum((p.any_class for p in parts), zero)
    return Evaluation(name, parts[0].iou, per_class, any_class)


def markdown_table(evaluations: Sequence[Evaluation]) -> str:
    """One row per evaluation × class: precision, recall, F1, true and predicted counts."""
    lines = [
        "| set | IoU | class | precision | recall | F1 | true | predicted | count error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in evaluation_table(evaluations).itertuples(index=False):
        lines.append(
            f"| {r.set} | {r.iou:.1f} | {r[2]} | {r.precision:.3f} | {r.recall:.3f} | "
            f"{r.f1:.3f} | {r.true} | {r.predicted} | {r.count_error:+.1%} |"
        )
    return "\n".join(lines)


def evaluation_table(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """The rows of :func:`markdown_table` as a DataFrame (numbers, not text), classes with no
    car on either side left out; ``class`` "any rail car" ignores the class."""
    rows = []
    for ev in evaluations:
        for cls, s in [*ev.per_class.items(), ("any rail car", ev.any_class)]:
            if s.n_true == 0 and s.n_pred == 0:
                continue
            rows.append({"set": ev.name, "iou": ev.iou, "class": cls, "precision": s.precision,
                         "recall": s.recall, "f1": s.f1, "true": s.n_true, "predicted": s.n_pred,
                         "count_error": s.count_error})
    return pd.DataFrame(rows, columns=["set", "iou", "class", "precision", "recall", "f1", "true",
                                       "predicted", "count_error"])


def system_matrix(
    pred_corners: np.ndarray,
    pred_class: np.ndarray,
    pred_score: np.ndarray,
    true_corners: np.ndarray,
    true_class: np.ndarray,
    iou_threshold: float = 0.3,
) -> np.ndarray:
    """The whole system's error matrix on one scene: counts ``(K + 1, K + 1)``, rows what it
    said (classes, then *missed*), columns what was there (classes, then *not a car*).

    Detections and true cars are matched one to one on rotated overlap whatever their class
    (the finder's question); a matched pair adds to (called, true), an unmatched detection to
    (called, not a car), an unmatched true car to (missed, true). See
    :class:`~railwatch.count.errormatrix.ErrorMatrix`.
    """
    k = len(CLASSES)
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    pairs = match_boxes(pred_corners, true_corners, iou_threshold, pred_score)
    matched_pred = np.zeros(len(pred_corners), dtype=bool)
    matched_true = np.zeros(len(true_corners), dtype=bool)
    for i, j in pairs:
        m[int(pred_class[i]), int(true_class[j])] += 1
        matched_pred[i] = matched_true[j] = True
    m[:k, k] += np.bincount(np.asarray(pred_class, dtype=np.int64)[~matched_pred], minlength=k)[:k]
    m[k, :k] += np.bincount(np.asarray(true_class, dtype=np.int64)[~matched_true], minlength=k)[:k]
    return m
