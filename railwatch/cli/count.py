"""``railwatch count``: count a batch of scenes into the store and rebuild every output."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from railwatch.cli.options import ModelChoice, model_options, site_option


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
def count(
    images: tuple[Path, ...],
    site_name: str,
    out: Path,
    reported: Path | None,
    db: Path | None,
    force: bool,
    no_progress: bool,
    model_choice: ModelChoice,
) -> None:
    """Count rail cars in IMAGES_OR_DIRS (directories are walked for .tif/.tiff/.vrt/.jp2).

    Scenes already in the store for this model are skipped (by content, so renamed files are
    recognised); each scene is committed on its own, so an interrupted batch resumes. Rejected
    scenes are one line on stderr and a row in OUT/rejected.csv. Exit 0 when the batch ran,
    1 when no scene could be used, 2 for a usage error (a bad --site or --reported file too).
    """
    from railwatch.cli.options import build_detector
    from railwatch.report.outputs import ReportSettings, load_inputs, write_report
    from railwatch.report.reported import ReportedFiguresError, load_reported
    from railwatch.site import load_site
    from railwatch.store.batch import BatchSettings, run_batch
    from railwatch.store.database import DEFAULT_STORE_NAME, ModelRecord, Store

    try:
        figures = load_reported(reported)
    except ReportedFiguresError as exc:
        raise click.BadParameter(str(exc), param_hint="--reported") from exc
    site = load_site(site_name)
    detector = build_detector(model_choice)
    model = ModelRecord.describing(detector)
    with Store(db or out / DEFAULT_STORE_NAME) as store:
        summary = run_batch(
            list(images), site, detector, store, model,
            BatchSettings(force=force, progress=not no_progress),
        )
        click.echo(summary.text(), err=True)
        write_report(out, load_inputs(store, figures, model.sha256, site.name),
                     ReportSettings(quicklooks=True))
    click.echo(f"outputs in {out}/ (report.md, frames.csv, weekly.csv, comparison.csv, "
               f"detections.geojson, rejected.csv; run.json, written last, lists the set); "
               f"store {store.path}", err=True)
    if summary.usable == 0:
        why = ("no imagery (.tif, .tiff, .vrt, .jp2) found in the inputs" if summary.inputs == 0
               else "no scene could be used (see the rejections above)")
        click.echo(f"railwatch: {why}", err=True)
        sys.exit(1)
