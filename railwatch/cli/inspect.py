"""``railwatch inspect``: check scenes against a site without counting."""

from __future__ import annotations

from pathlib import Path

import click

from railwatch.cli.options import site_option
from railwatch.detect.chipplan import chip_layout
from railwatch.detect.manifest import DEFAULT_GSD, ModelManifest, default_model_dir
from railwatch.detect.observation import FALLBACK_CHIP_PX, measure_coverage, plan_scene
from railwatch.errors import SceneError
from railwatch.imagery.scene import open_scene
from railwatch.site import load_site


@click.command("inspect")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@site_option
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder whose grid and chips `count` would use (default: as `count`).")
@click.option("--gsd", type=float, default=None, help="Grid ground sample distance in metres "
              "(default: the model's).")
def inspect(images: tuple[Path, ...], site_name: str, model: Path | None, gsd: float | None) -> None:
    """Per scene: CRS, native ground sample distance, acquisition time and its source, overlap and
    coverage of each zone (valid, cloud-free pixels, measured as `count` measures it); or why the
    scene is refused. Exit 1 if no scene is usable."""
    site = load_site(site_name)
    folder = model or default_model_dir()
    manifest = ModelManifest.load(folder) if (folder / "manifest.json").is_file() else None
    gsd = gsd or (manifest.gsd if manifest else DEFAULT_GSD)
    layout = chip_layout(manifest.chip if manifest else FALLBACK_CHIP_PX, gsd)
    usable = 0
    for image in images:
        try:
            scene = open_scene(image, site.crs, site.aoi_local)
            plan = plan_scene(scene, site, gsd, layout)
            cov = measure_coverage(scene, plan)
        except SceneError as exc:
            click.echo(f"{exc.path}: REFUSED ({exc.reason}): {exc.message}", err=True)
            continue
        usable += 1
        acq = scene.acquisition
        click.echo(f"{scene.source.href}")
        click.echo(f"  crs       {scene.crs.to_string()}  ({scene.dtype}, bands {scene.bands.description})")
        click.echo(f"  gsd       {scene.native_gsd:.2f} m native, read at {gsd:.2f} m on {site.crs}")
        click.echo(f"  acquired  {acq.time.isoformat()}  (from {acq.source.value}: {acq.detail})")
        for zone in plan.zones:
            overlap = zone.geometry.intersection(scene.footprint).area / zone.geometry.area
            click.echo(
                f"  zone {zone.name:<20} overlap {overlap:6.1%}  coverage {cov[zone.name]:6.1%}"
            )
    if usable == 0:
        raise SystemExit(1)
