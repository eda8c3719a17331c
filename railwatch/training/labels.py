"""Training chips from an analyst's labelled imagery: GeoTIFFs plus car polygons.

The labels are a GeoJSON FeatureCollection in EPSG:4326 (as digitised in QGIS), one Polygon
per car with ``properties.class`` one of railwatch's classes. Each image is warped onto a
local UTM grid at the model's ground sample distance (the same loader as counting, so the
chips look like what the detector will see) and cut into overlapping chips with YOLO-OBB
labels. Chips with no car are kept at a small rate as negatives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import yaml
from shapely.geometry import shape

from railwatch.classes import CLASS_NAMES, CLASSES
from railwatch.detect.chipplan import CAR_OVERLAP_M, axis_starts
from railwatch.errors import RailwatchError
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import footprint_lonlat, open_scene, read_tiles
from railwatch.imagery.tile import PixelWindow
from railwatch.site import site_for_footprint

__all__ = ["LabelledCar", "chip_labels", "export_from_labels", "read_labels"]

#: A car cut by a chip edge is labelled when at least this fraction of it is inside.
MIN_INSIDE = 0.5


@dataclass(frozen=True, slots=True)
class LabelledCar:
    """One labelled car: its polygon (EPSG:4326) and class index."""

    polygon: shapely.Polygon
    class_id: int


def read_labels(path: Path) -> list[LabelledCar]:
    """Car polygons with a ``class`` property; refuses unknown classes with the feature's index."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RailwatchError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    cars = []
    for i, feature in enumerate(doc.get("features") or []):
        cls = (feature.get("properties") or {}).get("class")
        if cls not in CLASSES:
            raise RailwatchError(
                f"{path}: feature {i} has class {cls!r}; use one of {', '.join(CLASSES)}"
            )
        try:
            geom = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RailwatchError(f"{path}: feature {i} has no readable geometry") from exc
        if geom.geom_type != "Polygon" or geom.is_empty:
            raise RailwatchError(f"{path}: feature {i} is a {geom.geom_type}; draw each car as a Polygon")
        cars.append(LabelledCar(geom, CLASSES.index(cls)))
    return cars


def chip_labels(corners_px: np.ndarray, class_id: np.ndarray, size: int) -> list[str]:
    """YOLO-OBB label lines for cars given by corners in chip pixels.

    Cars less than ``MIN_INSIDE`` inside are dropped; cut cars are clipped to the chip and
    labelled with the minimum rotated rectangle of what is inside.
    """
    window = shapely.box(0, 0, size, size)
    lines = []
    for corners, k in zip(corners_px, class_id, strict=True):
        poly = shapely.Polygon(corners)
        if poly.area <= 0:
            continue
        inside = poly.intersection(window)
        if inside.area / poly.area < MIN_INSIDE:
            continue
        if inside.area / poly.area < 0.999:
            corners = np.asarray(inside.minimum_rotated_rectangle.exterior.coords)[:4]
        pts = np.clip(corners / size, 0.0, 1.0)
        lines.append(f"{int(k)} " + " ".join(f"{v:.6f}" for v in pts.ravel()))
    return lines


def export_from_labels(
    images: Sequence[Path],
    labels: Path,
    out: Path,
    gsd: float = 0.3,
    chip: int = 320,
    negative_rate: float = 0.1,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Write chips and labels under ``out`` (ultralytics layout) and return ``out/data.yaml``.

    With several images, whole images go to validation (no leakage between neighbouring,
    overlapping chips); with one, every fifth chip does.
    """
    import cv2

    cars = read_labels(labels)
    if not cars:
        raise RailwatchError(f"{labels}: no labelled cars")
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    n_val_images = max(1, round(len(images) * val_fraction)) if len(images) > 1 else 0
    val_images = set(rng.permutation(len(images))[:n_val_images].tolist())
    written = {"train": 0, "val": 0}
    used_cars = 0
    for i, image in enumerate(images):
        image = Path(image)
        site = site_for_footprint(image.stem, footprint_lonlat(image))
        scene = open_scene(image, site.crs, site.aoi_local)
        grid = SiteGrid.covering(scene.footprint, site.crs, gsd)
        polys = [site.to_local(c.polygon) for c in cars]
        here = [j for j, p in enumerate(polys) if p.intersects(scene.footprint)]
        used_cars += len(here)
        world = np.array([np.asarray(polys[j].minimum_rotated_rectangle.exterior.coords)[:4]
                          for j in here]).reshape(-1, 4, 2)
        klass = np.array([cars[j].class_id for j in here], dtype=np.int64)
        overlap = min(chip - 1, math.ceil(CAR_OVERLAP_M / gsd))
        windows = [
            GridWindow(PixelWindow(r, c, min(chip, grid.rows - r), min(chip, grid.cols - c)),
                       PixelWindow(0, 0, min(chip, grid.rows - r), min(chip, grid.cols - c)))
            for r in axis_starts(grid.rows, chip, overlap)
            for c in axis_starts(grid.cols, chip, overlap)
        ]
        for n, tile in enumerate(read_tiles(scene, grid, windows)):
            if tile.valid.mean() < 0.5:
                continue
            px = tile.map_to_pixels(world) if len(world) else world
            lines = chip_labels(px, klass, chip)
            if not lines and rng.random() > negative_rate:
                continue
            split = "val" if (i in val_images or (len(images) == 1 and n % 5 == 4)) else "train"
            rgb = np.full((chip, chip, 3), 114, np.uint8)
            rows, cols = tile.shape
            rgb[:rows, :cols] = tile.array.transpose(1, 2, 0)
            stem = f"{image.stem}_{n:05d}"
            cv2.imwrite(str(out / "images" / split / f"{stem}.png"), rgb[:, :, ::-1])
            (out / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            written[split] += 1
    if used_cars == 0:
        raise RailwatchError(
            f"{labels}: none of the labelled cars lies on the images; are they in EPSG:4326?"
        )
    if written["val"] == 0:
        raise RailwatchError("no validation chips were written; label more imagery")
    doc = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
        "gsd": gsd,
        "source": {"images": [str(p) for p in images], "labels": str(labels)},
    }
    (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out / "data.yaml"

