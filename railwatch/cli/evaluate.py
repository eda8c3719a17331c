"""``railwatch evaluate``: precision, recall, F1 and count error against ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from shapely.geometry import shape

from railwatch.cli.options import build_detector, model_options, observe_image
from railwatch.errors import RailwatchError
from railwatch.manifest import CLASSES


def truth_for(image: Path, truth: Path) -> list[dict[str, object]]:
    """Truth features for one image: ``truth`` is a GeoJSON (features with a ``scene`` property
    are matched by file name; features without one apply to every image) or a folder of
    per-scene ``<stem>.geojson`` files (as the simulator writes)."""
    path = truth / f"{image.stem}.geojson" if truth.is_dir() else truth
    if not path.is_file():
        raise RailwatchError(f"{path}: no truth for {image.name}")
    try:
        features = json.loads(path.read_text())["features"]
    except (OSError, ValueError, KeyError) as exc:
        raise RailwatchError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from exc
    return [f for f in features if f.get("properties", {}).get("scene") in (None, image.name)]


@click.command("evaluate")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--truth", type=click.Path(exists=True, path_type=Path), required=True,
              help="Truth GeoJSON (car polygons in EPSG:4326 with property 'class') or a folder of "
                   "<scene-stem>.geojson files.")
@click.option("--site", "site_name", default=None,
              help="Score only the site's counting areas (default: the whole image).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the markdown table and a JSON of the numbers here (a folder).")
@model_options
def evaluate(images: tuple[Path, ...], truth: Path, site_name: str | None, out: Path | None,
             **model_kw: object) -> None:
    """Score the detector on IMAGES at rotated IoU 0.5 and 0.3, per scene and overall."""
    from railwatch.training.evaluate import Evaluation, evaluate_scene, markdown_table, merge_evaluations

    detector = build_detector(**model_kw)  # type: ignore[arg-type]
    per_scene: dict[float, list[Evaluation]] = {0.5: [], 0.3: []}
    for image in images:
        observed = observe_image(site_name, image, detector)
        if observed is None:
            continue
        site, scene, obs = observed
        region = site.counting_region().intersection(scene.footprint)
        corners, classes = [], []
        for f in truth_for(image, truth):
            props = f.get("properties", {})
            if props.get("under_cloud") or props.get("class") not in CLASSES:
                continue
            poly = site.to_local(shape(f["geometry"]))
            if not region.contains(poly.centroid):
                continue
            corners.append(np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4])
            classes.append(CLASSES.index(props["class"]))
        tc = np.asarray(corners).reshape(-1, 4, 2)
        tk = np.asarray(classes, dtype=np.int64)
        d = obs.detections
        for iou, found in per_scene.items():
            found.append(
                evaluate_scene(scene.name, d.corners, d.class_id, d.confidence, tc, tk, iou)
            )
    if not per_scene[0.5]:
        raise SystemExit(1)
    tables = []
    for evs in per_scene.values():
        tables.append(merge_evaluations("all scenes", evs))
        tables.extend(evs)
    text = markdown_table(tables)
    click.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.md").write_text(text + "\n")
        (out / "evaluation.json").write_text(json.dumps(
            {f"{ev.name}@{ev.iou}": ev.as_dict() for ev in tables}, indent=1) + "\n")


