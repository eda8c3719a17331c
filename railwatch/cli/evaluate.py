"""``railwatch evaluate``: precision, recall, F1 and count error against ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import click

from railwatch.cli.options import ModelChoice, build_detector, model_options


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
             model_choice: ModelChoice) -> None:
    """Score the detector on IMAGES at rotated IoU 0.5 and 0.3, per scene and overall."""
    from railwatch.training.evaluate import markdown_table, merge_evaluations
    from railwatch.training.scene_scores import score_images

    detector = build_detector(model_choice)
    per_scene = score_images(list(images), truth, detector, site_name, (0.5, 0.3),
                             say=lambda m: click.echo(m, err=True))
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


