"""Score a detector on whole scenes against truth polygons (the I/O side of ``evaluate``).

Truth is car polygons in EPSG:4326 with a ``class`` property: one GeoJSON for all images
(features with a ``scene`` property apply to that file name only) or a folder of per-scene
``<stem>.geojson`` files, as the simulator writes them. Only cars whose centre lies in the
scored region (the site's counting areas, or the whole footprint) count; cars marked
``under_cloud`` are left out on both sides.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from shapely.geometry import shape

from railwatch.classes import CLASSES
from railwatch.detect.observation import DetectorLike, observe_file
from railwatch.errors import RailwatchError, SceneError
from railwatch.site import Site
from railwatch.training.evaluate import Evaluation, evaluate_scene

__all__ = ["score_images", "truth_for"]


def truth_for(image: Path, truth: Path) -> list[dict[str, object]]:
    """Truth features for one image from ``truth`` (a GeoJSON file or a folder of them)."""
    path = truth / f"{image.stem}.geojson" if truth.is_dir() else truth
    if not path.is_file():
        raise RailwatchError(f"{path}: no truth for {image.name}")
    try:
        features = json.loads(path.read_text())["features"]
    except (OSError, ValueError, KeyError) as exc:
        raise RailwatchError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from exc
    return [f for f in features if f.get("properties", {}).get("scene") in (None, image.name)]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def score_images(
    images: Sequence[Path],
    truth: Path,
    detector: DetectorLike,
    site: str | Site | None = None,
    ious: Sequence[float] = (0.5, 0.3),
    say: Callable[[str], None] = _stderr,
) -> dict[float, list[Evaluation]]:
    """Per IoU threshold, one :class:`Evaluation` per image that could be scored.

    ``site`` limits scoring to its counting areas (default: each image's whole footprint). A
    refused image is one line to ``say`` and is skipped.
    """
    scores: dict[float, list[Evaluation]] = {iou: [] for iou in ious}
    for image in images:
        try:
            s, scene, obs = observe_file(image, detector, site)
        except SceneError as exc:
            say(f"{exc.path}: {exc.reason}: {exc.message}")
            continue
        region = s.counting_region().intersection(scene.footprint)
        corners, classes = [], []
        for f in truth_for(image, truth):
            props = f.get("properties", {})
            if not isinstance(props, dict) or props.get("under_cloud") or props.get("class") not in CLASSES:
                continue
            poly = s.to_local(shape(f["geometry"]))
            if not region.contains(poly.centroid):
                continue
            corners.append(np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4])
            classes.append(CLASSES.index(str(props["class"])))
        tc = np.asarray(corners).reshape(-1, 4, 2)
        tk = np.asarray(classes, dtype=np.int64)
        d = obs.detections
        for iou, found in scores.items():
            found.append(evaluate_scene(scene.name, d.corners, d.class_id, d.confidence, tc, tk, iou))
    return scores
