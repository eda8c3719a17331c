"""``railwatch simulate``: render a simulated scenario (scenes, STAC sidecars, truth/)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["simulate"]


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder for the scenes, their .json sidecars and truth/.")
@click.option("--quality", type=click.IntRange(10, 100), default=75, show_default=True,
              help="JPEG quality of the GeoTIFFs.")
def simulate(scenario: Path, out: Path, quality: int) -> None:
    """Render the scenes of a SCENARIO file (TOML) as SIMULATED GeoTIFFs with ground truth."""
    from railwatch.simulate.export import SceneReport, render_scenario

    def show(r: SceneReport) -> None:
        click.echo(f"{r.image.name}: {r.n_cars} cars, rendered in {r.render_s:.1f} s, "
                   f"written in {r.write_s:.1f} s")

    reports = render_scenario(scenario, out, quality=quality, progress=show)
    click.echo(f"wrote {len(reports)} scenes and truth/ to {out}")
