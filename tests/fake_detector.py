"""A fake ``DetectorLike`` for the store, batch and CLI tests: boxes from a list, never a model."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.detections import Detections
from railwatch.manifest import CLASSES

CAR_LENGTH_M = 19.2
CAR_WIDTH_M = 3.24

#: (x, y, class name) in the site CRS.
Car = tuple[float, float, str]


def boxes(cars: Sequence[Car], crs: CRS, scene: str = "") -> Detections:
    """East-west oriented car boxes centred on the given points."""
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
    )


class FakeDetector:
    """Returns the cars listed for the scene (by file name), else ``default``, inside ``region``.

    Consumes the tiles (as a real detector does, so that coverage is measured) and can sleep per
    scene to let tests interrupt a batch.
    """

    def __init__(
        self,
        crs: CRS,
        default: Sequence[Car] = (),
        per_scene: Mapping[str, Sequence[Car]] | None = None,
        sleep_s: float = 0.0,
        sha256: str = "f" * 64,
    ) -> None:
        self.crs = crs
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

    def detect(self, tiles: Iterable[object], region: BaseGeometry) -> Detections:
        scene = ""
        for tile in tiles:
            scene = getattr(tile, "scene", scene)
        self.calls.append(scene)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        found = boxes(self.per_scene.get(scene, self.default), self.crs, scene)
        if not len(found):
            return found
        inside = shapely.contains_xy(region, found.centres[:, 0], found.centres[:, 1])
        return found[inside]
