"""Quicklook PNGs of simulator output: chip sheets (with or without labels) and scene crops.

Used to *look* at what the simulator makes (docs/ holds the committed ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from railwatch.simulate.chips import render_chip

__all__ = ["CLASS_COLORS_BGR", "chip_sheet", "scene_crop"]

#: Box colours per class (BGR for OpenCV): covered red, open yellow, tank magenta,
#: flat cyan, locomotive green.
CLASS_COLORS_BGR = ((40, 40, 230), (0, 220, 255), (230, 60, 230), (230, 200, 40), (40, 210, 40))


def chip_sheet(
    path: Path, seed: int, indices: list[int], *, cols: int = 3, labels: bool = False,
    gsd: float = 0.3, chip: int = 320, zoom: int = 1,
) -> Path:
    """A sheet of rendered chips (at 1:1 unless ``zoom``), optionally with their label boxes."""
    import cv2

    tiles = []
    for i in indices:
        c = render_chip(seed, i, gsd=gsd, chip=chip)
        img = np.ascontiguousarray(c.image[..., ::-1])
        if zoom > 1:
            img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        if labels:
            for lab in c.labels:
                pts = np.round(lab.corners * chip * zoom).astype(np.int32)
                cv2.polylines(img, [pts], True, CLASS_COLORS_BGR[lab.cls.class_id], 1, cv2.LINE_AA)
        sun = f"{c.sun.elevation_deg:.0f}/{c.sun.azimuth_deg:.0f}"
        text = f"#{i} native {c.native_gsd:.2f} m, {c.season}, sun {sun}"
        cv2.putText(img, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    blank = np.zeros_like(tiles[0])
    while len(tiles) % cols:
        tiles.append(blank)
    rows = [np.hstack(tiles[k : k + cols]) for k in range(0, len(tiles), cols)]
    sheet = np.vstack(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return path


def scene_crop(
    image: Path, centre: tuple[float, float], size_px: tuple[int, int], path: Path,
    *, zoom: int = 1, truth: list[np.ndarray] | None = None,
) -> Path:
    """A full-resolution crop of a scene GeoTIFF around ``centre`` (map coordinates).

    ``truth`` (polygons as (n, 2) map-coordinate arrays) are outlined when given.
    """
    import cv2

    w, h = size_px
    with rasterio.open(image) as src:
        col, row = ~src.transform @ centre
        c0, r0 = int(col - w / 2), int(row - h / 2)
        data = src.read(window=Window(c0, r0, w, h), boundless=True, fill_value=0)
        transform = src.window_transform(Window(c0, r0, w, h))
    img = np.ascontiguousarray(np.moveaxis(data, 0, -1)[..., ::-1])
    if zoom > 1:
        img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    for poly in truth or []:
        cols_, rows_ = ~transform @ (poly[:, 0], poly[:, 1])
        pts = np.round(np.column_stack([cols_, rows_]) * zoom).astype(np.int32)
        cv2.polylines(img, [pts], True, (40, 40, 230), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path
