"""The naive baseline: the model over every chip of the full frame, as SAHI slices an image.

Same loaded model and runtime, same chip size and overlap, same batching, same rule for boxes
cut by an inner chip edge and the same rotated merge as railwatch's detector (it *is*
railwatch's detector, fed other tiles) — the only difference is *which* chips are looked at:
all of them, over the scene's own frame resampled to the model's ground sample distance
(bilinear, as an image is resized before slicing), read in strips one chip high. No site grid,
no counting region, no valid mask, no cloud mask, no coverage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import box

from railwatch.detect.chipplan import axis_starts
from railwatch.detect.detector import Detector
from railwatch.imagery.tile import PixelWindow, Tile

__all__ = ["FrameDetections", "detect_full_frame", "frame_chips"]


@dataclass(frozen=True, slots=True)
class FrameDetections:
    """Merged boxes of a whole frame in the scene's map coordinates, and how many chips were seen."""

    corners: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    chips: int


def _frame(src: rasterio.io.DatasetReader, gsd: float) -> tuple[Affine, int, int]:
    """The scene's own frame resampled to ``gsd``: transform, rows, cols."""
    scale = gsd / math.sqrt(abs(src.transform.determinant))
    rows, cols = max(1, round(src.height / scale)), max(1, round(src.width / scale))
    transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
    return transform, rows, cols


def frame_chips(path: Path, detector: Detector) -> int:
    """Chips of the whole frame of ``path`` at the model's ground sample distance."""
    layout = detector.chip_layout
    with rasterio.open(path) as src:
        _, rows, cols = _frame(src, detector.gsd)
    return len(axis_starts(rows, layout.size, layout.overlap)) * len(axis_starts(cols, layout.size,
                                                                              layout.overlap))


def _strips(path: Path, detector: Detector) -> Iterator[Tile]:
    layout = detector.chip_layout
    size = layout.size
    acquired = datetime(2000, 1, 1, tzinfo=UTC)  # not used by the detector
    with rasterio.open(path) as src:
        transform, rows, cols = _frame(src, detector.gsd)
        starts = axis_starts(rows, size, layout.overlap)
        splits = [0, *((a + b + size) // 2 for a, b in itertools.pairwise(starts)), rows]
        with WarpedVRT(src, crs=src.crs, transform=transform, width=cols, height=rows,
                       resampling=Resampling.bilinear) as vrt:
            for i, r in enumerate(starts):
                h = min(size, rows - r)
                data = vrt.read([1, 2, 3], window=Window(0, r, cols, h))
                yield Tile(
                    array=np.ascontiguousarray(data, dtype=np.uint8),
                    valid=np.ones((h, cols), dtype=bool),
                    transform=transform @ Affine.translation(0, r),
                    crs=src.crs,
                    acquired=acquired,
                    scene=path.name,
                    core=PixelWindow(splits[i] - r, 0, splits[i + 1] - splits[i], cols),
                )


def detect_full_frame(path: Path, detector: Detector) -> FrameDetections:
    """Every chip of the frame in ``path`` through ``detector``, merged on rotated overlap."""
    with rasterio.open(path) as src:
        frame = box(*src.bounds)
    found = detector.detect(_strips(path, detector), frame)
    return FrameDetections(found.corners, found.class_id, found.confidence, frame_chips(path, detector))
