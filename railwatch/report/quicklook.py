"""Quicklooks: a scene's pixels around an area with its detections drawn, as an RGB array."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from railwatch.classes import CLASSES
from railwatch.detect.detections import Detections
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import Scene, read_tiles
from railwatch.imagery.tile import PixelWindow

__all__ = ["CLASS_COLOURS", "quicklook", "save_png"]

#: One colour per class (RGB), used in every drawing.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "covered_car": (255, 215, 0),
    "open_car": (0, 200, 255),
    "tank_car": (255, 60, 60),
    "flat_car": (120, 255, 120),
    "locomotive": (255, 0, 255),
}


def quicklook(
    scene: Scene,
    grid: SiteGrid,
    bounds: tuple[float, float, float, float],
    detections: Detections,
    max_side: int = 2400,
) -> np.ndarray:
    """``(rows, cols, 3)`` uint8: the scene on the grid within ``bounds`` (map units), boxes drawn.

    Read at full resolution, then shrunk so that the longer side is at most ``max_side``;
    invalid pixels are shown dark grey.
    """
    inv = ~grid.transform
    c0, r0 = inv @ (bounds[0], bounds[3])
    c1, r1 = inv @ (bounds[2], bounds[1])
    c0, r0 = max(0, math.floor(c0)), max(0, math.floor(r0))
    c1, r1 = min(grid.cols, math.ceil(c1)), min(grid.rows, math.ceil(r1))
    window = PixelWindow(r0, c0, max(1, r1 - r0), max(1, c1 - c0))
    tile = next(read_tiles(scene, grid, [GridWindow(window, PixelWindow(0, 0, window.rows, window.cols))]))
    rgb = tile.array.transpose(1, 2, 0).copy()
    rgb[~tile.valid] = 40
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    image = Image.fromarray(rgb)
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    width = 1 if scale < 0.6 else 2
    for corners, cls in zip(detections.corners, detections.class_id, strict=True):
        px = tile.map_to_pixels(corners) * scale
        draw.polygon([tuple(p) for p in px.tolist()], outline=CLASS_COLOURS[CLASSES[cls]], width=width)
    return np.asarray(image)


def save_png(rgb: np.ndarray, path: str) -> None:
    Image.fromarray(rgb).save(path, compress_level=3)  # optimize=True cost seconds per PNG
