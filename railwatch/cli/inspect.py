"""``railwatch inspect``: check scenes against a site without counting."""

from __future__ import annotations

from pathlib import Path

import click

from railwatch.cli.options import site_option
from railwatch.detect.manifest import default_gsd
from railwatch.errors import SceneError
from railwatch.imagery.coverage import coverage, valid_area_pixels
from railwatch.imagery.grid import SiteGrid, plan_windows
from railwatch.imagery.scene import open_scene, read_tiles
from railwatch.site import load_site


@click.command("inspect")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@site_option
@click.option("--gsd", type=float, default=None, help="Grid ground sample distance in metres "
              "(default: the model's).")
def inspect(images: tuple[Path, ...], site_name: str, gsd: float | None) -> None:
    """Per scene: CRS, native ground sample distance, acquisition time and its source, overlap and
    coverage of each zone; or why the scene is refused. Exit 1 if no scene is usable."""
    site = load_site(site_name)
    gsd = gsd or default_gsd()
    grid = SiteGrid.covering(site.aoi_local, site.crs, gsd)
    zones = site.zone_areas()
    usable = 0
    for image in images:
        try:
            scene = open_scene(image, site.crs, site.aoi_local)
            windows = plan_windows(grid, site.counting_region().intersection(scene.footprint))
            tiles = read_tiles(scene, grid, windows)
            cov = coverage((valid_area_pixels(t, zones) for t in tiles), zones, gsd)
        except SceneError as exc:
            click.echo(f"{exc.path}: REFUSED ({exc.reason}): {exc.message}", err=True)
            continue
        usable += 1
        acq = scene.acquisition
        click.echo(f"{scene.path}")
        click.echo(f"  crs       {scene.crs.to_string()}  ({scene.dtype}, bands {scene.bands.description})")
        click.echo(f"  gsd       {scene.native_gsd:.2f} m native, read at {gsd:.2f} m on {site.crs}")
        click.echo(f"  acquired  {acq.time.isoformat()}  (from {acq.source.value}: {acq.detail})")
        for zone in zones:
            overlap = zone.geometry.intersection(scene.footprint).area / zone.geometry.area
            click.echo(
                f"  zone {zone.name:<20} overlap {overlap:6.1%}  coverage {cov[zone.name]:6.1%}"
            )
    if usable == 0:
        raise SystemExit(1)
