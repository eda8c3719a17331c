"""``railwatch detect``: detections and a quicklook per scene, without the store or series."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from railwatch.cli.options import ModelChoice, model_options, observe_image
from railwatch.imagery.acquisition import TimeSource
from railwatch.report.outputset import file_slug
from railwatch.report.quicklook import QuicklookSettings, save_png, zone_quicklooks


@click.command("detect")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--site", "site_name", default=None,
              help="A bundled site or site GeoJSON; without it the whole image is searched.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("railwatch-detect"),
              show_default=True, help="Output folder.")
@model_options
def detect(images: tuple[Path, ...], site_name: str | None, out: Path,
           model_choice: ModelChoice) -> None:
    """Detect rail cars in IMAGES; write detections.geojson and, per scene and zone, a quicklook
    PNG of the zone and crops of its busiest parts at full resolution."""
    from railwatch.cli.options import build_detector

    detector = build_detector(model_choice)
    out.mkdir(parents=True, exist_ok=True)
    features: list[dict[str, object]] = []
    used = 0
    from tqdm.auto import tqdm

    bar = tqdm(images, unit="scene", desc="detect", disable=len(images) < 2, file=sys.stderr)
    for image in bar:
        observed = observe_image(site_name, image, detector)
        if observed is None:
            continue
        site, scene, obs = observed
        used += 1
        dets = obs.detections
        acq = scene.acquisition
        features.extend(dets.features(None if acq.source is TimeSource.NONE else acq.time.isoformat()))
        zones = site.zone_areas()
        outlines = {z.name: z.geometry for z in zones}
        for zone in zones:
            if obs.coverage.get(zone.name, 0.0) == 0.0:
                continue
            for look in zone_quicklooks(scene, site.crs, zone.name, zone.geometry, dets, outlines,
                                        QuicklookSettings(label=scene.name)):
                suffix = f"_{file_slug(look.suffix, 'part')}" if look.suffix else ""
                name = (f"quicklook_{file_slug(Path(scene.name).stem, 'scene')}_"
                        f"{file_slug(zone.name, 'zone')}")  # as `count` names them
                save_png(look.image, out / f"{name}{suffix}.png")
        counts = {z.name: int((dets.zone == z.name).sum()) for z in zones}
        bar.write(f"{scene.name}: {len(dets)} cars " + " ".join(f"{k}={v}" for k, v in counts.items()),
                  file=sys.stdout)
    (out / "detections.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}) + "\n"
    )
    if used == 0:
        raise SystemExit(1)

