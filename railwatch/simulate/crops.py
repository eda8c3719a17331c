"""Training crops for the namer: simulated cars, each cut into its canonical frame, with exact truth.

Crops are cut from rendered training chips (:func:`~railwatch.simulate.chips.render_chip`: every
season, sun, haze, native resolution 0.25–0.8 m resampled to the chip's grid, every roof colour)
with :func:`~railwatch.detect.crops.canonical_crops`, the function the pipeline uses at run
time. The box of each car is jittered the way a finder's boxes err (a little long and wide,
off-centre, turned a degree or two), so the namer learns from boxes like those it will get.
Besides the cars, "not a car" crops: boxes of car size moved sideways off a car onto its shadow
band or the ballast beside it, and boxes dropped anywhere on the chip, kept when they overlap
no car. A crop set is a pure function of ``(seed, n_chips, spec)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon

from railwatch.classes import CLASSES, CarClass
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.simulate.chips import render_chip
from railwatch.simulate.stock import Load, PlacedCar

__all__ = [
    "HARD_CASES", "NOT_A_CAR", "CropSet", "chip_crops", "hard_case", "load_crop_set", "make_crop_set",
    "save_crop_set",
]

#: Label index of a "not a car" crop (after the car classes).
NOT_A_CAR = len(CLASSES)

#: Cars whose centre is nearer than this to the chip edge are left out (their margin is cut).
_EDGE_M = 15.0

#: The cars that fool people, each tagged so that the namer's accuracy on them can be reported
#: on its own (tag 0: none of these). Each is confused most with a covered car.
HARD_CASES: tuple[str, ...] = (
    "",
    "flat car carrying containers",
    "empty open car",
    "dark-roofed covered car",
    "locomotive",
    "tank car in low sun (elevation < 30°)",
)


@dataclass(frozen=True, slots=True)
class CropSet:
    """Crops ``(n, 3, rows, cols)`` uint8, labels ``(n,)`` (class index or :data:`NOT_A_CAR`),
    box length and width in metres ``(n, 2)`` float32, the chip each came from ``(n,)`` and its
    hard-case tag ``(n,)`` (index into :data:`HARD_CASES`)."""

    images: np.ndarray
    labels: np.ndarray
    size_m: np.ndarray
    chip: np.ndarray
    tag: np.ndarray
    spec: CropSpec

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[2:] != self.spec.shape:
            raise ValueError(f"images must be (n, 3, {self.spec.shape}), got {self.images.shape}")
        if self.labels.shape != (n,) or self.size_m.shape != (n, 2) or self.chip.shape != (n,):
            raise ValueError("labels (n,), size_m (n, 2) and chip (n,) must match the images")
        if self.tag.shape != (n,):
            raise ValueError("tag (n,) must match the images")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: np.ndarray | slice) -> CropSet:
        return CropSet(self.images[index], self.labels[index], self.size_m[index], self.chip[index],
                       self.tag[index], self.spec)


def _jittered(corners: np.ndarray, rng: np.random.Generator, gsd: float) -> np.ndarray:
    """The box as a finder might give it: off-centre, turned, a little long and wide."""
    centre, axis, length, width = box_axes(corners[None])
    c, a = centre[0], axis[0]
    turn = np.radians(rng.normal(0.0, 1.5))
    a = np.array([a[0] * np.cos(turn) - a[1] * np.sin(turn), a[0] * np.sin(turn) + a[1] * np.cos(turn)])
    p = np.array([-a[1], a[0]])
    c = c + rng.normal(0.0, 0.35 / gsd, 2)
    half_l = length[0] * rng.uniform(0.94, 1.12) / 2
    half_w = width[0] * rng.uniform(0.92, 1.22) / 2
    return np.array([c - half_l * a - half_w * p, c + half_l * a - half_w * p,
                     c + half_l * a + half_w * p, c - half_l * a + half_w * p])


def hard_case(car: PlacedCar, sun_elevation: float) -> int:
    """The car's index into :data:`HARD_CASES` (0: none of them), seen under a sun this high."""
    cls, look = car.car.cls, car.car.look
    if cls is CarClass.FLAT_CAR and look.load is Load.CONTAINERS:
        return 1
    if cls is CarClass.OPEN_CAR and look.load is Load.NONE:
        return 2
    if cls is CarClass.COVERED_CAR and float(np.mean(look.color)) < 0.2:
        return 3
    if cls is CarClass.LOCOMOTIVE:
        return 4
    if cls is CarClass.TANK_CAR and sun_elevation < 30.0:
        return 5
    return 0


def _overlaps_car(box: np.ndarray, cars: list[Polygon], limit: float) -> bool:
    poly = Polygon(box)
    return any(poly.intersection(c).area > limit * min(poly.area, c.area) for c in cars)


def chip_crops(
    seed: int, index: int, spec: CropSpec, *, gsd: float = 0.3, chip: int = 480, negatives: float = 0.35
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crops, labels, box sizes (m) and hard-case tags of the cars of chip ``index`` of ``seed``,
    plus "not a car" crops about ``negatives`` times as many as the cars."""
    rendered = render_chip(seed, index, gsd=gsd, chip=chip)
    rng = np.random.default_rng([seed, index, 1])
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    tags: list[int] = []
    metres = gsd * rendered.scale  # per chip pixel (the chip's scale jitter)
    half = chip * metres / 2
    placed = np.array([[(c.centre[0] + half) / metres, (half - c.centre[1]) / metres] for c in rendered.cars])
    cars_px = [lab.corners * chip for lab in rendered.labels]
    car_polys = [Polygon(c) for c in cars_px]
    edge = _EDGE_M / gsd
    for lab, px in zip(rendered.labels, cars_px, strict=True):
        centre = px.mean(axis=0)
        if (centre < edge).any() or (centre > chip - edge).any():
            continue
        _, _, length, width = box_axes(px[None])
        if length[0] * gsd < 0.9 * 9.0 or width[0] * gsd < 2.0:  # a car clipped by the chip edge
            continue
        boxes.append(_jittered(px, rng, gsd))
        labels.append(lab.cls.class_id)
        nearest = rendered.cars[int(np.argmin(np.linalg.norm(placed - centre, axis=1)))]
        tags.append(hard_case(nearest, rendered.sun.elevation_deg))
    n_neg = int(rng.poisson(negatives * max(len(boxes), 2)))
    tries = 0
    while n_neg > 0 and tries < 12 * (n_neg + 1):
        tries += 1
        if cars_px and rng.random() < 0.6:  # beside a car: its shadow band, the ballast, a gap
            px = cars_px[int(rng.integers(len(cars_px)))]
            centre, axis, length, width = box_axes(px[None])
            side = np.array([-axis[0, 1], axis[0, 0]]) * rng.choice([-1.0, 1.0])
            shift = side * (width[0] + rng.uniform(0.2, 2.5) / gsd)
            shift += axis[0] * rng.uniform(-0.5, 0.5) * length[0]
            box = px + shift
        else:  # anywhere, a car's size, along the chip's tracks or at random
            length_m, width_m = rng.uniform(10.0, 22.0), rng.uniform(2.8, 3.5)
            if cars_px and rng.random() < 0.7:
                _, axis, _, _ = box_axes(cars_px[int(rng.integers(len(cars_px)))][None])
                a = axis[0]
            else:
                t = rng.uniform(0, np.pi)
                a = np.array([np.cos(t), np.sin(t)])
            p = np.array([-a[1], a[0]])
            c = rng.uniform(edge, chip - edge, 2)
            hl, hw = length_m / gsd / 2, width_m / gsd / 2
            box = np.array([c - hl * a - hw * p, c + hl * a - hw * p,
                            c + hl * a + hw * p, c - hl * a + hw * p])
        centre = box.mean(axis=0)
        if (centre < edge).any() or (centre > chip - edge).any() or _overlaps_car(box, car_polys, 0.2):
            continue
        boxes.append(box)
        labels.append(NOT_A_CAR)
        tags.append(0)
        n_neg -= 1
    rows, cols = spec.shape
    if not boxes:
        empty = np.zeros(0, np.int64)
        return np.zeros((0, 3, rows, cols), np.uint8), empty, np.zeros((0, 2), np.float32), empty
    corners = np.stack(boxes)
    image = np.ascontiguousarray(rendered.image.transpose(2, 0, 1))
    crops = canonical_crops(image, corners, gsd, spec)
    _, _, length, width = box_axes(corners)
    size = np.column_stack([length * gsd, width * gsd]).astype(np.float32)
    return crops, np.asarray(labels, dtype=np.int64), size, np.asarray(tags, dtype=np.int64)


def _chip_job(
    args: tuple[int, int, CropSpec, float, int],
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    seed, index, spec, gsd, chip = args
    return (index, *chip_crops(seed, index, spec, gsd=gsd, chip=chip))


def make_crop_set(
    seed: int, n_chips: int, spec: CropSpec, *, gsd: float = 0.3, chip: int = 480, workers: int = 1
) -> CropSet:
    """Crops of every car (and "not a car" boxes) of ``n_chips`` simulated chips drawn with ``seed``."""
    if n_chips <= 0:
        raise ValueError(f"n_chips must be positive, got {n_chips}")
    jobs = [(seed, i, spec, gsd, chip) for i in range(n_chips)]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            parts = list(pool.imap(_chip_job, jobs, chunksize=4))
    else:
        parts = [_chip_job(j) for j in jobs]
    images = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    size = np.concatenate([p[3] for p in parts])
    tags = np.concatenate([p[4] for p in parts])
    chip_of = np.concatenate([np.full(len(p[2]), p[0], dtype=np.int64) for p in parts])
    return CropSet(images, labels, size, chip_of, tags, spec)


def save_crop_set(crops: CropSet, path: Path, **meta: object) -> Path:
    """Write ``crops`` as one compressed ``.npz`` with a JSON sidecar of how they were made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=crops.images, labels=crops.labels, size_m=crops.size_m, chip=crops.chip,
                        tag=crops.tag)
    info = {"spec": {"gsd": crops.spec.gsd, "length_m": crops.spec.length_m, "width_m": crops.spec.width_m},
            "n": len(crops), "per_label": np.bincount(crops.labels, minlength=NOT_A_CAR + 1).tolist(), **meta}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def load_crop_set(path: Path) -> CropSet:
    """A crop set written by :func:`save_crop_set`."""
    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    with np.load(path) as z:
        return CropSet(z["images"], z["labels"], z["size_m"], z["chip"], z["tag"], CropSpec(**info["spec"]))
