"""Fakes for the tests: a ``DetectorLike`` with boxes from a list (store, batch, CLI) and a
back-end that finds bright blobs in the chips' pixels (detector, benchmarks); never a model."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.classes import CLASSES
from railwatch.detect.detections import Detections
from railwatch.detect.detector import ChipBoxes

CAR_LENGTH_M = 19.2
CAR_WIDTH_M = 3.24

#: (x, y, class name) in the site CRS.
Car = tuple[float, float, str]


def boxes(cars: Sequence[Car], crs: CRS, scene: str = "", naming: float | None = None) -> Detections:
    """East-west oriented car boxes centred on the given points; ``naming``: the namer's
    probability each car is given (``None``: a finder without a namer)."""
    if not cars:
        return Detections.empty(crs)
    hx, hy = CAR_LENGTH_M / 2, CAR_WIDTH_M / 2
    offsets = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    xy = np.array([(x, y) for x, y, _ in cars], dtype=float)
    return Detections(
        corners=xy[:, None, :] + offsets[None, :, :],
        class_id=np.array([CLASSES.index(c) for _, _, c in cars]),
        confidence=np.full(len(cars), 0.9),
        zone=np.full(len(cars), None, dtype=object),
        scene=np.full(len(cars), scene, dtype=object),
        crs=crs,
        class_confidence=None if naming is None else np.full(len(cars), naming),
    )


class ScenePass:
    """A detection pass that notes the scene of the tiles it is given and, for its result,
    asks ``find(scene, region)``."""

    def __init__(self, find: Callable[[str, BaseGeometry], Detections], region: BaseGeometry) -> None:
        self.find = find
        self.region = region
        self.scene = ""

    def add(self, tile: object) -> None:
        self.scene = getattr(tile, "scene", self.scene)

    def result(self) -> Detections:
        return self.find(self.scene, self.region)


class FakeDetector:
    """Returns the cars listed for the scene (by file name), else ``default``, inside ``region``.

    Can sleep per scene to let tests interrupt a batch.
    """

    def __init__(
        self,
        crs: CRS,
        default: Sequence[Car] = (),
        per_scene: Mapping[str, Sequence[Car]] | None = None,
        sleep_s: float = 0.0,
        sha256: str = "f" * 64,
        naming: float | None = None,
    ) -> None:
        self.crs = crs
        self.naming = naming
        self.default = list(default)
        self.per_scene = dict(per_scene or {})
        self.sleep_s = sleep_s
        self._sha = sha256
        self.calls: list[str] = []

    @property
    def gsd(self) -> float:
        return 0.5

    @property
    def model_sha256(self) -> str:
        return self._sha

    def start(self, region: BaseGeometry) -> ScenePass:
        return ScenePass(self.find, region)

    def find(self, scene: str, region: BaseGeometry) -> Detections:
        self.calls.append(scene)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        found = boxes(self.per_scene.get(scene, self.default), self.crs, scene, self.naming)
        if not len(found):
            return found
        inside = shapely.contains_xy(region, found.centres[:, 0], found.centres[:, 1])
        return found[inside]


class BlobBackend:
    """A stand-in model that really looks at the chip's pixels: every blob brighter than
    ``threshold`` in the first band, of at least ``min_pixels``, is a car (class 0), its minimum
    rotated rectangle the box. A blob touching the chip border (a car cut by the chip edge) gets
    ``cut_confidence``, a whole one 0.9 — a real model is less sure of a cut car."""

    def __init__(self, threshold: int = 150, min_pixels: int = 30, cut_confidence: float = 0.5) -> None:
        self.threshold = threshold
        self.min_pixels = min_pixels
        self.cut_confidence = cut_confidence

    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        import cv2

        out = []
        for chip in chips:
            rows, cols = chip.shape[:2]
            mask = (chip[:, :, 0] > self.threshold).astype(np.uint8)
            n, labels = cv2.connectedComponents(mask, connectivity=4)
            xywhr, score = [], []
            for k in range(1, n):
                ys, xs = np.nonzero(labels == k)
                if len(xs) < self.min_pixels:
                    continue
                (cx, cy), (w, h), a = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
                xywhr.append([cx + 0.5, cy + 0.5, w + 1, h + 1, np.radians(a)])
                edge = xs.min() == 0 or ys.min() == 0 or xs.max() == cols - 1 or ys.max() == rows - 1
                score.append(self.cut_confidence if edge else 0.9)
            out.append(ChipBoxes(np.asarray(xywhr, float).reshape(-1, 5), np.asarray(score, float),
                                 np.zeros(len(score), dtype=np.int64)))
        return out


@dataclass(frozen=True)
class FakeFactory:
    """A worker's recipe for a :class:`FakeDetector` (picklable, hashable), for cluster tests.

    Each load appends the loading process's pid to ``load_log``. A scene named in
    ``kill_once`` kills the worker counting it the first time (a marker file in ``marker_dir``
    remembers), one in ``kill_always`` every time.
    """

    crs_wkt: str
    cars: tuple[Car, ...]
    sha256: str = "f" * 64
    load_log: str = ""
    marker_dir: str = ""
    kill_once: tuple[str, ...] = ()
    kill_always: tuple[str, ...] = ()

    def load(self) -> FakeDetector:
        if self.load_log:
            with open(self.load_log, "a") as f:
                f.write(f"{os.getpid()}\n")
        return _KillingDetector(self)


class _KillingDetector(FakeDetector):
    def __init__(self, factory: FakeFactory) -> None:
        super().__init__(CRS.from_wkt(factory.crs_wkt), factory.cars, sha256=factory.sha256)
        self.factory = factory

    def find(self, scene: str, region: BaseGeometry) -> Detections:
        found = super().find(scene, region)
        f = self.factory
        if scene in f.kill_always:
            os.kill(os.getpid(), signal.SIGKILL)
        if scene in f.kill_once:
            marker = Path(f.marker_dir) / f"{scene}.killed"
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return found
