"""``railwatch series``: rebuild every output from the store, without the imagery."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("series")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="A store written by `railwatch count`.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("railwatch-out"), show_default=True, help="Output folder.")
@click.option("--reported", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reported-figures CSV (default: the bundled, sourced table).")
def series(db: Path, out: Path, reported: Path | None) -> None:
    """Rebuild every output from the store; no imagery is read.

    Writes frames.csv, weekly.csv, comparison.csv, detections.geojson, the plots and report.md
    for the model and site of the store's latest run.
    """
    from railwatch.report.inputs import ReportSettings, load_inputs
    from railwatch.report.outputs import write_report
    from railwatch.report.reported import ReportedFiguresError, load_reported
    from railwatch.store.database import Store

    try:
        figures = load_reported(reported)
    except ReportedFiguresError as exc:
        raise click.BadParameter(str(exc), param_hint="--reported") from exc
    with Store(db) as store:
        inputs = load_inputs(store, figures)
        tables = write_report(out, inputs, ReportSettings(quicklooks=False))
    click.echo(
        f"{len(inputs.scenes)} scene(s), {len(tables.weekly)} weekly row(s), "
        f"{len(tables.comparisons)} comparison(s) written to {out}/", err=True,
    )
