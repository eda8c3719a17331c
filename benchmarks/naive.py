"""The naive baseline: the model over every chip of the full frame, as SAHI slices an image.

Same model and runtime, same chip size and overlap, same rule for boxes cut by an inner chip
edge and the same rotated merge as railwatch's detector — the only difference is *which*
chips are looked at (all of them, rather than those over the counting areas) and that the
frame is read as it is, without the site grid, cloud mask or coverage. The scene must already
be at the model's ground sample distance (benchmark scenes are rendered on the site grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from railwatch.chipplan import Chip, axis_starts
from railwatch.detector import PAD_VALUE, Detector, _touches_inner_edge
from railwatch.obb import merge_oriented, xywhr_to_corners

__all__ = ["FrameDetections", "detect_full_frame"]


@dataclass(frozen=True, slots=True)
class FrameDetections:
    """Merged boxes of a whole frame in map coordinates, and how many chips were looked at."""

    corners: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    chips: int


def _strip_chips(strip: np.ndarray, cols: list[int], size: int) -> np.ndarray:
    """Chips ``(n, size, size, 3)`` RGB starting at ``cols`` of a strip ``(3, h, width)``."""
    _, h, width = strip.shape
    out = np.full((len(cols), size, size, 3), PAD_VALUE, dtype=np.uint8)
    for i, c in enumerate(cols):
        c1 = min(c + size, width)
        out[i, :h, : c1 - c] = strip[:, :, c:c1].transpose(1, 2, 0)
    return out


def detect_full_frame(path: Path, detector: Detector) -> FrameDetections:
    """Every chip of the frame in ``path`` through ``detector``'s model, merged on rotated overlap."""
    size = detector.manifest.chip
    settings = detector.settings
    with rasterio.open(path) as src:
        gsd = abs(src.transform.a)
        if not math.isclose(gsd, detector.gsd, rel_tol=1e-3):
            raise ValueError(
                f"{path}: the baseline needs the scene at the model's {detector.gsd} m, not {gsd} m"
            )
        overlap = min(size - 1, math.ceil(settings.overlap_m / gsd))
        rows, cols = src.height, src.width
        col_starts = axis_starts(cols, size, overlap)
        corners, conf, cls = [], [], []
        n_chips = 0
        for r in axis_starts(rows, size, overlap):
            h = min(size, rows - r)
            strip = src.read([1, 2, 3], window=Window(0, r, cols, h))
            pixels = _strip_chips(strip, col_starts, size)
            n_chips += len(pixels)
            for b in range(0, len(pixels), settings.batch):
                batch = pixels[b : b + settings.batch]
                found = detector.backend.predict(batch, detector.conf, settings.iou)
                for c, boxes in zip(col_starts[b : b + settings.batch], found, strict=True):
                    if len(boxes.confidence) == 0:
                        continue
                    px = xywhr_to_corners(boxes.xywhr)
                    whole = ~_touches_inner_edge(px, Chip(r, c, size), (rows, cols))
                    px = px[whole]
                    px[..., 0] += c
                    px[..., 1] += r
                    corners.append(px)
                    conf.append(boxes.confidence[whole])
                    cls.append(boxes.class_id[whole])
        transform = src.transform
    if not corners:
        return FrameDetections(np.zeros((0, 4, 2)), np.zeros(0, np.int64), np.zeros(0), n_chips)
    px = np.concatenate(corners)
    confidence = np.concatenate(conf)
    class_id = np.concatenate(cls).astype(np.int64)
    keep = merge_oriented(px, confidence, settings.iou)
    px = px[keep]
    x = transform.a * px[..., 0] + transform.b * px[..., 1] + transform.c
    y = transform.d * px[..., 0] + transform.e * px[..., 1] + transform.f
    return FrameDetections(np.stack([x, y], axis=-1), class_id[keep], confidence[keep], n_chips)
