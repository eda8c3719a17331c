"""Where an analyst's corrections teach the finder most: a ranked review layer.

Fifty corrections are worth most where the model was unsure or probably wrong. Three kinds of
place are listed, each with a score in (0, 1] (higher: look first):

- ``finder_unsure``: a box the finder kept with low or middling confidence (below
  ``UNSURE_BELOW``): often a shadow band or a platform, or a real car it nearly missed;
- ``namer_unsure``: a car the namer named with a split vote (its probability of the class
  below ``NAMER_UNSURE_BELOW``): the kind may be wrong, which moves the covered-car count;
- ``string_gap``: a gap the length of a car between two cars of one string (same track,
  nose to tail): a car the finder may have missed entirely, the error no box shows.

Pure functions over :class:`~railwatch.detect.detections.Detections`; the report writes the
places as ``review.geojson`` (EPSG:4326, ranked) beside ``detections.geojson``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.polygon import orient

from railwatch.classes import CLASSES
from railwatch.count.frames import CountedScene
from railwatch.detect.detections import Detections

__all__ = ["NAMER_UNSURE_BELOW", "UNSURE_BELOW", "PlaceKind", "ReviewPlace", "review_features",
           "review_places", "string_gaps"]

#: A box the finder kept with less confidence than this is worth a look.
UNSURE_BELOW = 0.5
#: A car the namer gave less than this probability of its class is worth a look.
NAMER_UNSURE_BELOW = 0.7
#: A gap between two cars of a string this long (metres) could hold a car nobody found.
GAP_M = (7.0, 25.0)
#: Two boxes are on one string when their axes differ by less than this (degrees) and their
#: centres lie this close (metres) to each other's axis line.
SAME_LINE_DEG = 10.0
SAME_LINE_M = 1.2
#: A missed car scores this: it is the error that no box shows.
GAP_SCORE = 0.8
#: At most this many places per output set.
MAX_PLACES = 500


class PlaceKind(enum.StrEnum):
    """Why a place is worth a look."""

    FINDER_UNSURE = "finder_unsure"
    NAMER_UNSURE = "namer_unsure"
    STRING_GAP = "string_gap"


@dataclass(frozen=True, slots=True)
class ReviewPlace:
    """One place to look at: an oriented box (map corners ``(4, 2)``), why, and how much."""

    corners: np.ndarray
    kind: PlaceKind
    score: float
    why: str
    detection: int | None  # index into the scene's detections; None for a gap

    def __post_init__(self) -> None:
        if np.asarray(self.corners).shape != (4, 2):
            raise ValueError("corners must be (4, 2)")
        if not 0.0 < self.score <= 1.0:
            raise ValueError(f"score must be in (0, 1], got {self.score}")


def _axes(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres, unit long axes, lengths and widths of oriented boxes ``(n, 4, 2)``."""
    side_a = corners[:, 1] - corners[:, 0]
    side_b = corners[:, 2] - corners[:, 1]
    la, lb = np.linalg.norm(side_a, axis=1), np.linalg.norm(side_b, axis=1)
    long_side = np.where((la >= lb)[:, None], side_a, side_b)
    length = np.maximum(la, lb)
    width = np.minimum(la, lb)
    axis = long_side / np.maximum(length, 1e-9)[:, None]
    return corners.mean(axis=1), axis, length, width


def string_gaps(corners: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Car-length gaps in strings of cars: for each car, its nearest neighbour ahead on the
    same line; where the free space between them is within :data:`GAP_M`, a box filling the
    gap (map corners) and the gap's length in metres."""
    if len(corners) < 2:
        return []
    centre, axis, length, width = _axes(np.asarray(corners, dtype=np.float64))
    delta = centre[None, :, :] - centre[:, None, :]  # from i to j
    along = np.einsum("ijk,ik->ij", delta, axis)
    normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
    across = np.abs(np.einsum("ijk,ik->ij", delta, normal))
    parallel = np.abs(axis @ axis.T) > np.cos(np.radians(SAME_LINE_DEG))
    ahead = parallel & (across < SAME_LINE_M) & (along > 0)
    gaps = []
    for i in range(len(corners)):
        candidates = np.flatnonzero(ahead[i])
        if not len(candidates):
            continue
        j = candidates[np.argmin(along[i, candidates])]
        free = along[i, j] - (length[i] + length[j]) / 2
        if not GAP_M[0] <= free <= GAP_M[1]:
            continue
        start = centre[i] + axis[i] * length[i] / 2
        mid = start + axis[i] * free / 2
        half_l, half_w = axis[i] * max(free - 1.0, 1.0) / 2, normal[i] * (width[i] + width[j]) / 4
        box = np.array([mid - half_l - half_w, mid + half_l - half_w, mid + half_l + half_w,
                        mid - half_l + half_w])
        gaps.append((box, float(free)))
    return gaps


def review_places(detections: Detections) -> list[ReviewPlace]:
    """The places of one scene's detections worth an analyst's look, best first."""
    places: list[ReviewPlace] = []
    corners = np.asarray(detections.corners, dtype=np.float64)
    naming = detections.naming
    for k in range(len(detections)):
        conf = float(detections.confidence[k])
        if conf < UNSURE_BELOW:
            places.append(ReviewPlace(corners[k], PlaceKind.FINDER_UNSURE,
                                      max(1e-3, 1.0 - conf / UNSURE_BELOW),
                                      f"the finder is {conf:.2f} sure a car is here", k))
        p = float(naming[k])
        if p == p and p < NAMER_UNSURE_BELOW:
            cls = CLASSES[int(detections.class_id[k])]
            places.append(ReviewPlace(corners[k], PlaceKind.NAMER_UNSURE,
                                      max(1e-3, 1.0 - p / NAMER_UNSURE_BELOW) * 0.9,
                                      f"named {cls} with probability {p:.2f}", k))
    for box, free in string_gaps(corners):
        places.append(ReviewPlace(box, PlaceKind.STRING_GAP, GAP_SCORE,
                                  f"a {free:.0f} m gap in a string of cars: a missed car?", None))
    return sorted(places, key=lambda place: -place.score)


def review_features(scenes: Sequence[CountedScene], limit: int = MAX_PLACES) -> list[dict[str, object]]:
    """GeoJSON features (EPSG:4326) of every scene's review places, ranked over all scenes:
    properties ``rank``, ``kind``, ``score``, ``why``, ``scene``, ``acquired`` and, for a
    detected car, its ``class``, ``confidence`` and ``class_confidence``."""
    ranked: list[tuple[float, CountedScene, ReviewPlace]] = []
    for scene in scenes:
        ranked += [(p.score, scene, p) for p in review_places(scene.detections)]
    ranked.sort(key=lambda item: (-item[0], item[1].scene))
    features: list[dict[str, object]] = []
    to_lonlat: dict[str, Transformer] = {}
    for rank, (_, scene, place) in enumerate(ranked[:limit], start=1):
        d = scene.detections
        crs = d.crs.to_wkt()
        to_lonlat.setdefault(crs, Transformer.from_crs(d.crs, "EPSG:4326", always_xy=True))
        lon, lat = to_lonlat[crs].transform(place.corners[:, 0], place.corners[:, 1])
        ring = orient(shapely.Polygon(np.column_stack([lon, lat])), 1.0).exterior.coords
        k = place.detection
        naming = None if k is None else float(d.naming[k])
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[list(xy) for xy in ring]]},
            "properties": {
                "rank": rank, "kind": place.kind.value, "score": round(place.score, 3), "why": place.why,
                "scene": scene.scene, "acquired": scene.acquired.isoformat(),
                "class": None if k is None else CLASSES[int(d.class_id[k])],
                "confidence": None if k is None else round(float(d.confidence[k]), 4),
                "class_confidence": None if naming is None or naming != naming else round(naming, 4),
            },
        })
    return features
