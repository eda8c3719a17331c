"""Oriented boxes: conversions, rotated IoU and rotated non-maximum suppression (pure numpy/shapely).

A box is either ``xywhr`` (centre, width, height, rotation in radians, the ultralytics
convention) or its four ``corners`` ``(4, 2)`` in order around the box. Overlap is always
measured on the rotated polygons, never on axis-aligned hulls: on a diagonal track the hulls of
neighbouring cars overlap heavily, which is why SAHI and supervision merge them away.
"""

from __future__ import annotations

import numpy as np
import shapely

__all__ = [
    "corners_to_xywhr",
    "merge_oriented",
    "polygons",
    "rotated_iou",
    "rotated_nms",
    "xywhr_to_corners",
]


def xywhr_to_corners(xywhr: np.ndarray) -> np.ndarray:
    """``(n, 5)`` → ``(n, 4, 2)`` corners, counter-clockwise in a y-up frame."""
    xywhr = np.asarray(xywhr, dtype=np.float64).reshape(-1, 5)
    cx, cy, w, h, r = xywhr.T
    cos, sin = np.cos(r), np.sin(r)
    dx = np.stack([w / 2 * cos, w / 2 * sin], axis=-1)  # along width
    dy = np.stack([-h / 2 * sin, h / 2 * cos], axis=-1)  # along height
    c = np.stack([cx, cy], axis=-1)
    return np.stack([c - dx - dy, c + dx - dy, c + dx + dy, c - dx + dy], axis=1)


def corners_to_xywhr(corners: np.ndarray) -> np.ndarray:
    """``(n, 4, 2)`` corners of rectangles → ``(n, 5)`` with w ≥ h and r in [0, π)."""
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    centre = corners.mean(axis=1)
    e1 = corners[:, 1] - corners[:, 0]
    e2 = corners[:, 2] - corners[:, 1]
    l1, l2 = np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1)
    long_edge = np.where((l1 >= l2)[:, None], e1, e2)
    w, h = np.maximum(l1, l2), np.minimum(l1, l2)
    r = np.mod(np.arctan2(long_edge[:, 1], long_edge[:, 0]), np.pi)
    return np.column_stack([centre, w, h, r])


def polygons(corners: np.ndarray) -> np.ndarray:
    """Shapely polygons for ``(n, 4, 2)`` corners."""
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    if len(corners) == 0:
        return np.empty(0, dtype=object)
    return np.asarray(shapely.polygons(corners), dtype=object)


def rotated_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` intersection over union of the rotated polygons of corners ``a`` and ``b``."""
    pa, pb = polygons(a), polygons(b)
    if len(pa) == 0 or len(pb) == 0:
        return np.zeros((len(pa), len(pb)))
    inter = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    union = shapely.area(pa)[:, None] + shapely.area(pb)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def rotated_nms(
    corners: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.5,
    classes: np.ndarray | None = None,
    class_agnostic: bool = True,
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS on rotated IoU, highest score first.

    Only boxes whose axis-aligned extents touch are compared exactly (an STRtree query), so the
    cost grows with neighbours, not with n². With ``class_agnostic`` (the default: a car is one
    class at a time) boxes of different classes suppress each other too.
    """
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    n = len(corners)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    polys = polygons(corners)
    areas = shapely.area(polys)
    tree = shapely.STRtree(polys)
    left, right = tree.query(polys, predicate="intersects")
    pairs = left != right
    left, right = left[pairs], right[pairs]
    inter = shapely.area(shapely.intersection(polys[left], polys[right]))
    iou = inter / np.maximum(areas[left] + areas[right] - inter, 1e-12)
    hit = iou > iou_threshold
    if classes is not None and not class_agnostic:
        hit &= classes[left] == classes[right]
    neighbours: dict[int, list[int]] = {}
    for i, j in zip(left[hit].tolist(), right[hit].tolist(), strict=True):
        neighbours.setdefault(i, []).append(j)
    order = np.argsort(-np.asarray(scores), kind="stable")
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        for j in neighbours.get(i, ()):
            suppressed[j] = True
    return np.asarray(keep, dtype=np.int64)


def merge_oriented(
    corners: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.5,
    containment_threshold: float = 0.7,
) -> np.ndarray:
    """Indices kept when merging detections from overlapping chips.

    Rotated NMS first; then a box that lies mostly (``containment_threshold`` of its own
    area) inside a higher-scoring kept box is dropped too: that is the cut-off part of a car
    seen at a chip edge, whose IoU with the whole car is small. Neighbouring cars on a track,
    1–2 m apart, overlap by nothing and are both kept.
    """
    keep = rotated_nms(corners, scores, iou_threshold)
    if len(keep) < 2:
        return keep
    polys = polygons(np.asarray(corners)[keep])
    areas = shapely.area(polys)
    tree = shapely.STRtree(polys)
    left, right = tree.query(polys, predicate="intersects")
    pairs = left != right
    left, right = left[pairs], right[pairs]
    inter = shapely.area(shapely.intersection(polys[left], polys[right]))
    # keep is ordered by score: lower index = higher score.
    contained = (inter / np.maximum(areas[left], 1e-12) > containment_threshold) & (right < left)
    drop = np.zeros(len(keep), dtype=bool)
    drop[left[contained]] = True
    return keep[~drop]
