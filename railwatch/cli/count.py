"""``railwatch count``: count a batch of scenes into the store and rebuild every output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from railwatch.cli.options import ModelChoice, model_options, site_option

if TYPE_CHECKING:
    from railwatch.batch.cluster import ClusterSpec, ModelLoader


def _cluster_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> ClusterSpec | None:
    if value is None:
        return None
    from railwatch.batch.cluster import ClusterSpec

    try:
        return ClusterSpec.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("count")
@click.argument("images", nargs=-1, required=True, metavar="IMAGES_OR_DIRS...",
                type=click.Path(exists=True, path_type=Path))
@site_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("railwatch-out"), show_default=True, help="Output folder.")
@model_options
@click.option("--reported", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reported-figures CSV (default: the bundled, sourced table).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store file (default: OUT/railwatch.sqlite).")
@click.option("--force", is_flag=True,
              help="Recount scenes already in the store (e.g. after changing --conf).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--asset", default=None, metavar="KEY",
              help="Asset of STAC items to read (default: visual, analytic, else the first GeoTIFF).")
@click.option("--cluster", default=None, metavar="local:N|tcp://HOST:PORT", callback=_cluster_spec,
              help="Count on a Dask cluster: N local worker processes, or a running scheduler.")
def count(
    images: tuple[Path, ...],
    site_name: str,
    out: Path,
    reported: Path | None,
    db: Path | None,
    force: bool,
    no_progress: bool,
    asset: str | None,
    cluster: ClusterSpec | None,
    model_choice: ModelChoice,
) -> None:
    """Count rail cars in IMAGES_OR_DIRS (directories are walked for .tif/.tiff/.vrt/.jp2).

    STAC Items and ItemCollections given as .json files are read too: one scene per item, its
    asset a local file or an http(s):// or s3:// URL (credentials through GDAL's environment
    variables). Scenes already in the store for this model are skipped (by content, so renamed
    files are recognised); each scene is committed on its own, so an interrupted batch
    resumes. Rejected scenes are one line on stderr and a row in OUT/rejected.csv. Exit 0 when
    the batch ran, 1 when no scene could be used, 2 for a usage error (a bad --site or
    --reported file too).
    """
    from railwatch.batch.job import BatchSettings, run_batch
    from railwatch.cli.options import build_detector
    from railwatch.report.inputs import ReportSettings, load_inputs
    from railwatch.report.outputs import write_report
    from railwatch.report.reported import ReportedFiguresError, load_reported
    from railwatch.site import load_site
    from railwatch.store.database import DEFAULT_STORE_NAME, Store
    from railwatch.store.records import ModelRecord

    try:
        figures = load_reported(reported)
    except ReportedFiguresError as exc:
        raise click.BadParameter(str(exc), param_hint="--reported") from exc
    site = load_site(site_name)
    detector = build_detector(model_choice)
    model = ModelRecord.describing(detector)
    settings = BatchSettings(force=force, progress=not no_progress, asset=asset)
    with Store(db or out / DEFAULT_STORE_NAME) as store:
        if cluster is None:
            summary = run_batch(list(images), site, detector, store, model, settings)
        else:
            from railwatch.batch.cluster import run_batch_on_cluster

            loader = _loader(detector.model_sha256, cluster, model_choice)
            summary = run_batch_on_cluster(list(images), site, loader, store, model, cluster,
                                           settings, gsd=detector.gsd)
        click.echo(summary.text(), err=True)
        if summary.inputs == 0:  # nothing was given to count: no output set to write
            click.echo("railwatch: no imagery (.tif, .tiff, .vrt, .jp2) or STAC item found in the "
                       "inputs; nothing written", err=True)
            sys.exit(1)
        write_report(out, load_inputs(store, figures, model.sha256, site.name),
                     ReportSettings(quicklooks=True))
    click.echo(f"outputs in {out}/ (report.md, frames.csv, weekly.csv, comparison.csv, "
               f"detections.geojson, rejected.csv; run.json, written last, lists the set); "
               f"store {store.path}", err=True)
    if summary.usable == 0:
        click.echo("railwatch: no scene could be used (see the rejections above)", err=True)
        sys.exit(1)


def _loader(sha256: str, cluster: ClusterSpec, choice: ModelChoice) -> ModelLoader:
    """How workers load the driver's model; local workers share this machine's cores."""
    from railwatch.batch.cluster import ModelLoader
    from railwatch.detect.detector import DetectorSettings, Runtime

    model = choice.model.resolve() if choice.model is not None else None
    return ModelLoader(sha256, model, choice.trust_model,
                       DetectorSettings(runtime=Runtime(choice.runtime), conf=choice.conf,
                                        threads=cluster.threads_per_worker()))
