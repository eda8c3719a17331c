"""Detections: one numpy array per field, filtered with boolean masks (after supervision).

Corners are a typed ``(n, 4, 2)`` field in map coordinates of ``crs`` (the site's local CRS),
not a string key in a side dictionary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from railwatch.classes import CLASSES
from railwatch.detect.obb import corners_to_xywhr, polygons

__all__ = ["Detections"]


@dataclass(frozen=True, slots=True)
class Detections:
    """Oriented car detections of one or more scenes.

    ``corners`` ``(n, 4, 2)`` float64 in ``crs``; ``class_id`` ``(n,)`` int (index into
    :data:`~railwatch.classes.CLASSES`); ``confidence`` ``(n,)`` float, the finder's belief that a
    car is there; ``zone`` ``(n,)`` object (zone name or ``None``); ``scene`` ``(n,)`` object (file
    name); ``class_confidence`` ``(n,)`` float, the namer's probability of ``class_id`` (NaN
    where no namer named the car: a one-stage model's class).
    """

    corners: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    zone: np.ndarray
    scene: np.ndarray
    crs: CRS
    class_confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.corners)
        if self.corners.shape != (n, 4, 2):
            raise ValueError(f"corners must be (n, 4, 2), got {self.corners.shape}")
        if self.class_confidence is None:
            object.__setattr__(self, "class_confidence", np.full(n, np.nan))
        for name in ("class_id", "confidence", "zone", "scene", "class_confidence"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if n and (self.class_id.min() < 0 or self.class_id.max() >= len(CLASSES)):
            raise ValueError("class_id out of range")

    @property
    def naming(self) -> np.ndarray:
        """``class_confidence`` as a plain ``(n,)`` float array."""
        return np.asarray(self.class_confidence, dtype=np.float64)

    @classmethod
    def empty(cls, crs: CRS) -> Detections:
        return cls(
            np.zeros((0, 4, 2)), np.zeros(0, dtype=np.int64), np.zeros(0),
            np.empty(0, dtype=object), np.empty(0, dtype=object), crs,
        )

    @classmethod
    def concat(cls, parts: Sequence[Detections], crs: CRS) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(crs)
        if any(p.crs != crs for p in parts):
            raise ValueError("cannot concatenate detections in different CRSs")
        return cls(
            np.concatenate([p.corners for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.zone for p in parts]),
            np.concatenate([p.scene for p in parts]),
            crs,
            np.concatenate([p.naming for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, index: Any) -> Detections:
        """Boolean mask, integer array or slice."""
        return Detections(
            self.corners[index], self.class_id[index], self.confidence[index],
            self.zone[index], self.scene[index], self.crs, self.naming[index],
        )

    @property
    def class_name(self) -> np.ndarray:
        names: np.ndarray = np.asarray(CLASSES, dtype=object)[self.class_id]
        return names

    def class_counts(self, zone: str) -> dict[str, int]:
        """How many detections of each class (every class, in index order) lie in ``zone``."""
        in_zone = np.equal(self.zone, zone) if len(self) else np.zeros(0, dtype=bool)
        found = np.bincount(self.class_id[in_zone], minlength=len(CLASSES))
        return {c: int(found[i]) for i, c in enumerate(CLASSES)}

    @property
    def centres(self) -> np.ndarray:
        centres: np.ndarray = self.corners.mean(axis=1)
        return centres

    @property
    def xywhr(self) -> np.ndarray:
        return corners_to_xywhr(self.corners)

    def polygons(self) -> np.ndarray:
        return polygons(self.corners)

    def with_zones(self, names: Sequence[str], geometries: Sequence[shapely.Geometry]) -> Detections:
        """Assign each detection the first zone that contains its centre (else ``None``)."""
        zone = np.full(len(self), None, dtype=object)
        if len(self):
            x, y = self.centres[:, 0], self.centres[:, 1]
            assigned = np.zeros(len(self), dtype=bool)
            for name, geom in zip(names, geometries, strict=True):
                first = shapely.contains_xy(geom, x, y) & ~assigned
                zone[first] = name
                assigned |= first
        return Detections(
            self.corners, self.class_id, self.confidence, zone, self.scene, self.crs, self.naming
        )

    def lonlat_corners(self) -> np.ndarray:
        """Corners in EPSG:4326 (lon, lat)."""
        if not len(self):
            return self.corners.copy()
        tr = Transformer.from_crs(self.crs.to_wkt(), "EPSG:4326", always_xy=True)
        flat = self.corners.reshape(-1, 2)
        lon, lat = tr.transform(flat[:, 0], flat[:, 1])
        return np.column_stack([lon, lat]).reshape(-1, 4, 2)

    def features(self, acquired: str | None) -> list[dict[str, object]]:
        """GeoJSON features in docs/design.md's detections format: EPSG:4326 polygons
        (counter-clockwise, RFC 7946) with ``scene, acquired, class, confidence, zone`` and
        ``class_confidence`` (the namer's probability of the class; null without a namer)."""
        lonlat = self.lonlat_corners()
        naming = self.naming
        out: list[dict[str, object]] = []
        for i in range(len(self)):
            ring = orient(Polygon(lonlat[i]), 1.0).exterior.coords
            out.append({
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[round(x, 8), round(y, 8)] for x, y in ring]],
                },
                "properties": {
                    "scene": str(self.scene[i]),
                    "acquired": acquired,
                    "class": str(self.class_name[i]),
                    "confidence": round(float(self.confidence[i]), 4),
                    "zone": None if self.zone[i] is None else str(self.zone[i]),
                    "class_confidence": None if math.isnan(naming[i]) else round(float(naming[i]), 4),
                },
            })
        return out

