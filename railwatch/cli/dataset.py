"""``railwatch dataset``: build training datasets (simulated chips for now)."""

from __future__ import annotations

import time
from pathlib import Path

import click

__all__ = ["dataset"]


@click.group()
def dataset() -> None:
    """Build training datasets for the detector."""


@dataset.command("simulate")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Number of chips.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (images/, labels/, data.yaml).")
@click.option("--gsd", type=click.FloatRange(min=0.05, max=2.0), default=0.3, show_default=True,
              help="The model's ground sample distance, metres per pixel.")
@click.option("--chip", type=click.IntRange(min=32), default=320, show_default=True,
              help="Chip side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--val-fraction", type=click.FloatRange(min=0.0, max=0.9), default=0.1,
              show_default=True, help="Share of chips for validation.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes to render with.")
def simulate(n: int, out: Path, gsd: float, chip: int, seed: int, val_fraction: float,
             workers: int) -> None:
    """Write N simulated training chips with YOLO-OBB labels and a data.yaml.

    The chips are SIMULATED yards (see docs/simulator.md), rendered at random native
    resolutions and resampled to --gsd.
    """
    from railwatch.simulate.chips import export_yolo_obb

    t0 = time.perf_counter()
    yaml_path = export_yolo_obb(out, n, gsd=gsd, chip=chip, seed=seed,
                                val_fraction=val_fraction, workers=workers)
    dt = time.perf_counter() - t0
    click.echo(f"wrote {n} chips in {dt:.1f} s ({dt / n:.3f} s/chip): {yaml_path}")


@dataset.command("from-labels")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Car polygons (GeoJSON, EPSG:4326): a detections.geojson written by `railwatch "
                   "count`/`detect` and corrected in QGIS, or polygons digitised from scratch. "
                   "Property 'class' (missing or 'rail_car': kind unknown) and 'scene' (the image "
                   "the car belongs to) are read.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset folder (ultralytics layout + data.yaml).")
@click.option("--gsd", type=click.FloatRange(min=0.05, max=2.0), default=0.3, show_default=True,
              help="Ground sample distance (m) of the chips: the model's.")
@click.option("--chip", type=click.IntRange(min=32), default=320, show_default=True,
              help="Chip side in pixels: the model's.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--db", "store", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The store of the count whose boxes you corrected (railwatch.sqlite in its --out): "
                   "boxes you deleted are found there and become places the finder learns to leave alone.")
def from_labels(images: tuple[Path, ...], labels: Path, out: Path, gsd: float, chip: int, seed: int,
                store: Path | None) -> None:
    """Training chips from labelled GeoTIFFs: IMAGES plus car polygons, e.g. corrected in QGIS.

    Feed back the corrected detections.geojson as it is: delete the false boxes, draw the
    missed cars (a class if you know it; leave it empty otherwise). Cars of unknown kind are
    written with class index 5: a one-class finder trains on them, a class dataset skips them.
    """
    import yaml

    from railwatch.detect.manifest import default_model_dir
    from railwatch.training.labels import ChipSettings, export_from_labels

    yml = export_from_labels(list(images), labels, out, ChipSettings(gsd=gsd, chip=chip, seed=seed),
                             store=store, log=lambda m: click.echo(m, err=True))
    doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
    chips, unknown = doc["chips"], doc["unknown_kind"]
    click.echo(f"wrote {chips['train']} training and {chips['val']} validation chips: {yml}")
    if unknown["cars"]:
        click.echo(
            f"{unknown['cars']} cars of unknown kind (class missing or rail_car) are class "
            f"{unknown['class']} in {unknown['chips']} chips: they train the finder only (`railwatch "
            "train` then trains a one-class finder, ultralytics single_cls, by itself); the namer "
            "leaves those cars out"
        )
    if doc["not_given"]:
        click.echo(f"{doc['not_given']} labelled cars name an image that was not given; they were not used")
    if store is not None:
        click.echo(f"{doc['deleted']} boxes counted on these images are not in {labels.name} (deleted): "
                   "their places are in the chips as negatives")
    click.echo(f"train with: railwatch train --stage finder --data {out} --from {default_model_dir()} "
               "--out NEW_MODEL")
