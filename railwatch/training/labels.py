"""Training chips from an analyst's labelled imagery: GeoTIFFs plus car polygons.

The labels are a GeoJSON FeatureCollection in EPSG:4326, one Polygon per car, either

- ``detections.geojson`` exactly as ``railwatch count`` / ``railwatch detect`` wrote it, after
  the analyst deleted the false boxes and drew the missed cars in QGIS (properties ``scene``,
  ``acquired``, ``class``, ``confidence``, ``zone``, ``class_confidence`` — only ``scene``
  and ``class`` are read), or
- plain polygons digitised from scratch (any properties, or none; MultiPolygons are read
  part by part; a legacy ``crs`` member other than lon/lat is transformed).

``properties.class`` names the car's kind. A car whose kind is unknown — ``class`` missing,
null, empty, ``rail_car`` or ``unknown`` — still marks where a car is: it is written with the
class index :data:`UNKNOWN_KIND` (one past railwatch's classes). A one-class finder trained
with ``single_cls`` uses it like any car; a class dataset skips it: ultralytics drops a chip
whose label exceeds the class count of a five-class ``data.yaml``, and the namer's crop
reader leaves such cars out. ``properties.scene`` (an image file name), when the image is
among those given, ties a car to that image only (one file may hold several dates of a
place); a car naming an image not given is not used; a car without a scene is used on every
image it lies on (or, when every car that names a scene names the same one, on that one).

Each image is warped onto a local UTM grid at the model's ground sample distance (the same
loader as counting, so the chips look like what the detector will see) and cut into
overlapping chips with YOLO-OBB labels, around what the analyst looked at (the labelled cars and
the boxes they deleted, see :func:`export_from_labels`); the rest of each chip is greyed out.
Label every car near those you correct: an unlabelled car in view teaches "no car here".
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import shapely
import yaml
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from railwatch.classes import CLASS_NAMES, CLASSES
from railwatch.detect.chipplan import CAR_OVERLAP_M, axis_starts
from railwatch.errors import RailwatchError
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import footprint_lonlat, open_scene
from railwatch.imagery.tile import PixelWindow
from railwatch.imagery.warp import read_tiles
from railwatch.site import site_for_footprint

__all__ = [
    "UNKNOWN_KIND",
    "UNKNOWN_NAMES",
    "ChipSettings",
    "LabelledCar",
    "chip_labels",
    "export_from_labels",
    "read_labels",
]

#: A car cut by a chip edge is labelled when at least this fraction of it is inside.
MIN_INSIDE = 0.5
#: Class index written for a car of unknown kind: one past railwatch's classes.
UNKNOWN_KIND = len(CLASSES)
#: ``class`` values that mean "a rail car, kind unknown" (besides a missing or null class).
UNKNOWN_NAMES = ("", "rail_car", "railcar", "car", "unknown")


@dataclass(frozen=True, slots=True)
class LabelledCar:
    """One labelled car: its polygon (EPSG:4326), class index (``None``: kind unknown) and the
    image file it belongs to (``None``: any image it lies on)."""

    polygon: shapely.Polygon
    class_id: int | None
    scene: str | None = None


def _crs_of(doc: dict[str, object], path: Path) -> CRS | None:
    """The legacy GeoJSON ``crs`` member, or None for lon/lat."""
    crs = doc.get("crs")
    if not isinstance(crs, dict):
        return None
    props = crs.get("properties")
    name = props.get("name") if isinstance(props, dict) else None
    if not isinstance(name, str):
        return None
    if re.search(r"CRS84|EPSG::?4326$", name, re.IGNORECASE):
        return None
    try:
        return CRS.from_user_input(name)
    except Exception as exc:  # pyproj raises its own CRSError
        raise RailwatchError(f"{path}: unknown crs {name!r}; save the layer as GeoJSON in EPSG:4326") from exc


def _reprojected(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def move(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(geom, move)


def read_labels(path: Path, skipped: list[str] | None = None) -> list[LabelledCar]:
    """Car polygons as written by ``railwatch count``/``detect`` or digitised from scratch.

    Refuses, naming the feature, a class that is neither railwatch's nor an unknown-kind
    marker, and a geometry that is not a (Multi)Polygon. A polygon that cannot be a car —
    coordinates that are not numbers (NaN, infinite), or no area (a ring of two points, a
    line drawn as a polygon) — is skipped, and ``skipped`` (when given) gets one line naming the
    feature and why.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RailwatchError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    if not isinstance(doc, dict):
        raise RailwatchError(f"{path}: not a GeoJSON FeatureCollection")
    crs = _crs_of(doc, Path(path))
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True) if crs is not None else None
    cars = []
    for i, feature in enumerate(doc.get("features") or []):
        props = (feature.get("properties") if isinstance(feature, dict) else None) or {}
        cls = props.get("class")
        if cls is None or (isinstance(cls, str) and cls.strip().lower() in UNKNOWN_NAMES):
            class_id: int | None = None
        elif cls in CLASSES:
            class_id = CLASSES.index(cls)
        else:
            raise RailwatchError(
                f"{path}: feature {i} has class {cls!r}; use one of {', '.join(CLASSES)}, or leave "
                "it empty (or 'rail_car') for a car of unknown kind"
            )
        scene = props.get("scene")
        try:
            with warnings.catch_warnings():  # NaN coordinates: refused below, by name
                warnings.simplefilter("ignore", RuntimeWarning)
                geom = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RailwatchError(f"{path}: feature {i} has no readable geometry") from exc
        why = _not_a_car_shape(geom)
        if why is not None:
            if skipped is not None:
                skipped.append(f"{path}: feature {i} skipped: {why}")
            continue
        if to_lonlat is not None:
            geom = _reprojected(geom, to_lonlat)
        parts = list(getattr(geom, "geoms", [geom])) if geom.geom_type == "MultiPolygon" else [geom]
        for part in parts:
            if part.geom_type != "Polygon" or part.is_empty:
                raise RailwatchError(f"{path}: feature {i} is a {geom.geom_type}; draw each car as a Polygon")
            x0, y0, x1, y1 = part.bounds
            if min(x0, y0) < -180 or x1 > 180 or y1 > 90 or y0 < -90:
                raise RailwatchError(
                    f"{path}: feature {i} is not in lon/lat; save the layer as GeoJSON in EPSG:4326"
                )
            cars.append(LabelledCar(part, class_id, str(scene) if scene else None))
    return cars


def _not_a_car_shape(geom: BaseGeometry) -> str | None:
    """Why a (Multi)Polygon cannot be a car's outline, or ``None``."""
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None  # refused below, with its type
    coords = shapely.get_coordinates(geom)
    if not len(coords) or not np.isfinite(coords).all():
        return "its coordinates are not all numbers (NaN or infinite)"
    if not geom.area > 0 or any(not part.area > 0 for part in getattr(geom, "geoms", [geom])):
        return "it has no area (fewer than three distinct corners)"
    return None


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


def _for_image(cars: Sequence[LabelledCar], name: str, given: set[str]) -> list[int]:
    """Indices of the cars that label image ``name`` (see the module docstring)."""
    named = {c.scene for c in cars if c.scene is not None and c.scene in given}
    sole = next(iter(named)) if len(named) == 1 else None
    return [j for j, c in enumerate(cars)
            if c.scene == name or (c.scene is None and (sole is None or sole == name))]


#: The analyst is taken to have looked this far (metres) around each labelled car and each
#: deleted box: chip pixels farther from all of them are greyed out, so that a car nobody
#: labelled never teaches "no car here".
REVIEW_MARGIN_M = 8.0
#: A counted box overlapping no label by this rotated IoU was deleted by the analyst.
DELETED_IOU = 0.3


@dataclass(frozen=True, slots=True)
class ReviewedImage:
    """What an analyst's file says about one image: the cars (local CRS corners and class
    index), the boxes they deleted, and the area they looked at."""

    corners: np.ndarray
    class_id: np.ndarray
    deleted: np.ndarray
    area: BaseGeometry


def reviewed_image(cars: Sequence[LabelledCar], counted: np.ndarray | None, to_local: object,
                   footprint: BaseGeometry) -> ReviewedImage:
    """The cars of one image on its local grid, the counted boxes (local corners) no car
    overlaps, and the reviewed area: every car and deleted box with ``REVIEW_MARGIN_M`` around."""
    from railwatch.detect.obb import rotated_iou

    polys = [to_local(c.polygon) for c in cars]  # type: ignore[operator]
    here = [k for k, poly in enumerate(polys) if poly.intersects(footprint)]
    corners = np.array([np.asarray(polys[k].minimum_rotated_rectangle.exterior.coords)[:4]
                        for k in here]).reshape(-1, 4, 2)
    klass = np.array([_class_index(cars[k]) for k in here], dtype=np.int64)
    deleted = np.zeros((0, 4, 2))
    if counted is not None and len(counted):
        if len(corners):
            overlap = rotated_iou(counted, corners).max(axis=1)
            deleted = counted[overlap < DELETED_IOU]
        else:
            deleted = counted
    shapes = [shapely.Polygon(c) for c in (*corners, *deleted)]
    area = shapely.union_all([g.buffer(REVIEW_MARGIN_M) for g in shapes]) if shapes else shapely.Polygon()
    return ReviewedImage(corners, klass, deleted, area.intersection(footprint))


@dataclass(frozen=True, slots=True)
class ChipSettings:
    """How an analyst's images are cut: the model's ``gsd`` and ``chip`` side, the share of
    images held out when there are several, and the seed of that choice."""

    gsd: float = 0.3
    chip: int = 320
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.05 <= self.gsd <= 2.0 or self.chip < 32 or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("gsd in [0.05, 2] m, chip of at least 32 px, val_fraction in [0, 1)")


@dataclass(frozen=True, slots=True)
class _Chip:
    split: str
    stem: str
    rgb: np.ndarray
    lines: list[str]


def export_from_labels(
    images: Sequence[Path],
    labels: Path,
    out: Path,
    settings: ChipSettings | None = None,
    store: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write chips and labels under ``out`` (ultralytics layout) and return ``out/data.yaml``.

    Chips are cut around what the analyst looked at: each labelled car and, when ``store``
    (the SQLite store of the count that made the boxes) is given, each box counted on that
    image that no label overlaps any more (a deletion: a false box the finder must unlearn).
    Pixels farther than ``REVIEW_MARGIN_M`` from all of them are greyed out. Every image is
    warped onto a local UTM grid at the settings' ``gsd`` (resampled from its own resolution,
    as counting does). With several images, whole images go to validation; with one, every
    fifth chip with cars does. Cars of unknown kind are written with class
    :data:`UNKNOWN_KIND`; ``data.yaml`` says how many (key ``unknown_kind``), how many deleted
    boxes were found (``deleted``) and how many labelled cars named an image that was not given
    (``not_given``). Nothing is written unless the whole set can be.
    """
    s = settings or ChipSettings()
    say = log or (lambda m: None)
    skipped: list[str] = []
    cars = read_labels(labels, skipped)
    for line in skipped:
        say(line)
    if not cars:
        raise RailwatchError(f"{labels}: no labelled cars" + (f" ({len(skipped)} features skipped)"
                                                              if skipped else ""))
    rng = np.random.default_rng(s.seed)
    n_val_images = max(1, round(len(images) * s.val_fraction)) if len(images) > 1 else 0
    val_images = set(rng.permutation(len(images))[:n_val_images].tolist())
    given = {Path(p).name for p in images}
    staged: list[_Chip] = []
    totals = {"cars": 0, "unknown": 0, "unknown_chips": 0, "deleted": 0}
    for i, image in enumerate(images):
        say(f"image {i + 1}/{len(images)}: {Path(image).name} ({len(staged)} chips so far)")
        chips = _image_chips(Path(image), [cars[j] for j in _for_image(cars, Path(image).name, given)],
                             s, store, "val" if i in val_images else "train", totals)
        staged.extend(chips)
    if totals["cars"] == 0:
        raise RailwatchError(
            f"{labels}: none of the labelled cars lies on the images; are they in EPSG:4326, and "
            "does their `scene` property name one of the images?"
        )
    if len(images) == 1:
        staged = _hold_out_every_fifth(staged)
    written = {split: sum(c.split == split for c in staged) for split in ("train", "val")}
    if written["val"] == 0:
        raise RailwatchError("no validation chips were written; label more imagery")
    _write_chips(out, staged)
    totals["not_given"] = sum(1 for c in cars if c.scene is not None and c.scene not in given)
    totals["skipped"] = len(skipped)
    doc = _dataset_doc(out, images, labels, store, s, written, totals)
    (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out / "data.yaml"


def _dataset_doc(out: Path, images: Sequence[Path], labels: Path, store: Path | None, s: ChipSettings,
                 written: dict[str, int], totals: dict[str, int]) -> dict[str, object]:
    """The dataset's ``data.yaml``: the ultralytics layout, and what the analyst's file held."""
    return {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
        "gsd": s.gsd,
        "source": {"images": [str(p) for p in images], "labels": str(labels),
                   "store": None if store is None else str(store)},
        "analyst": True,
        "chips": written,
        "cars": totals["cars"],
        "deleted": totals["deleted"],
        "unknown_kind": {
            "class": UNKNOWN_KIND, "cars": totals["unknown"], "chips": totals["unknown_chips"],
            "note": "cars of unknown kind (class missing or rail_car) train a one-class finder "
                    "(ultralytics single_cls) only; a five-class training drops these chips and the "
                    "namer leaves these cars out",
        },
        "not_given": totals["not_given"],
        "skipped_features": totals["skipped"],
    }


def _image_chips(image: Path, cars: list[LabelledCar], s: ChipSettings, store: Path | None, split: str,
                 totals: dict[str, int]) -> list[_Chip]:
    """The chips of one image around what the analyst looked at (``totals`` counts what was seen)."""
    site = site_for_footprint(image.stem, footprint_lonlat(image))
    scene = open_scene(image, site.crs, site.aoi_local)
    grid = SiteGrid.covering(scene.footprint, site.crs, s.gsd)
    counted = _counted_boxes(store, image.name, site.crs) if store is not None else None
    review = reviewed_image(cars, counted, site.to_local, scene.footprint)
    totals["cars"] += len(review.corners)
    totals["deleted"] += len(review.deleted)
    totals["unknown"] += int((review.class_id == UNKNOWN_KIND).sum())
    if review.area.is_empty:
        return []
    chip = s.chip
    overlap = min(chip - 1, math.ceil(CAR_OVERLAP_M / s.gsd))
    windows = [
        GridWindow(PixelWindow(r, c, min(chip, grid.rows - r), min(chip, grid.cols - c)),
                   PixelWindow(0, 0, min(chip, grid.rows - r), min(chip, grid.cols - c)))
        for r in axis_starts(grid.rows, chip, overlap)
        for c in axis_starts(grid.cols, chip, overlap)
    ]
    shapely.prepare(review.area)
    chips = []
    for n, tile in enumerate(read_tiles(scene, grid, windows)):
        if not review.area.intersects(shapely.box(*tile.bounds)):
            continue
        looked = tile.mask(review.area, all_touched=False) & tile.valid
        if looked.mean() < 0.02:
            continue
        px = tile.map_to_pixels(review.corners) if len(review.corners) else review.corners
        lines = chip_labels(px, review.class_id, chip)
        totals["unknown_chips"] += any(line.split()[0] == str(UNKNOWN_KIND) for line in lines)
        rgb = np.full((chip, chip, 3), 114, np.uint8)
        rows, cols = tile.shape
        pixels = tile.array.transpose(1, 2, 0).copy()
        pixels[~looked] = 114  # what nobody looked at is not shown
        rgb[:rows, :cols] = pixels
        chips.append(_Chip(split, f"{image.stem}_{n:05d}", rgb, lines))
    return chips


def _hold_out_every_fifth(staged: list[_Chip]) -> list[_Chip]:
    """One image: every fifth chip with cars is held out (the last when there are fewer)."""
    with_cars = [k for k, c in enumerate(staged) if c.lines]
    held = set(with_cars[4::5] or with_cars[-1:]) if len(with_cars) > 1 else set()
    return [replace(c, split="val") if k in held else c for k, c in enumerate(staged)]


def _write_chips(out: Path, staged: Sequence[_Chip]) -> None:
    """The chips as PNG and YOLO-OBB label files (written only once all of them are known)."""
    import cv2

    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for c in staged:
        cv2.imwrite(str(out / "images" / c.split / f"{c.stem}.png"), c.rgb[:, :, ::-1])
        (out / "labels" / c.split / f"{c.stem}.txt").write_text(
            "\n".join(c.lines) + ("\n" if c.lines else ""))


def _counted_boxes(store: Path, name: str, crs: CRS) -> np.ndarray | None:
    """The corners (in ``crs``) of the boxes the store last counted on image ``name``."""
    from railwatch.store.database import Store

    with Store(store) as db:
        found = db.latest_detections(name)
    if found is None or not len(found):
        return None
    if found.crs == crs:
        return np.asarray(found.corners, dtype=np.float64)
    move = Transformer.from_crs(found.crs, crs, always_xy=True)
    flat = np.asarray(found.corners, dtype=np.float64).reshape(-1, 2)
    x, y = move.transform(flat[:, 0], flat[:, 1])
    return np.column_stack([x, y]).reshape(-1, 4, 2)


def _class_index(car: LabelledCar) -> int:
    return UNKNOWN_KIND if car.class_id is None else car.class_id
