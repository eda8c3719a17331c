"""Rendering a scenario to disk: Cloud-Optimized GeoTIFFs, STAC sidecars and truth/.

Per scene ``<name>_<YYYYMMDDTHHMMZ>.tif`` (COG in the site's UTM CRS, JPEG with an internal
mask for pixels outside the AOI, overviews), ``<stem>.json`` (a STAC item) and
``truth/<stem>.geojson``; for the whole scenario ``truth/frames.csv`` and
``truth/weekly.csv`` (see :mod:`railwatch.simulate.truth`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from shapely.geometry import mapping

from railwatch.imagery.scene import SIMULATED_PROPERTY
from railwatch.simulate.scenario import Scenario, load_scenario
from railwatch.simulate.scene import (
    RenderedScene,
    build_train_book,
    cars_at,
    check_fits,
    check_no_overlap,
    render_scene,
)
from railwatch.simulate.truth import (
    FRAMES_COLUMNS,
    WEEKLY_COLUMNS,
    FrameRow,
    frame_rows,
    iso_utc,
    scene_features,
    weekly_rows,
    write_csv,
)
from railwatch.simulate.world import SiteWorld, build_world
from railwatch.site import load_site

__all__ = ["SceneReport", "render_scenario", "write_cog", "write_stac"]


@dataclass(frozen=True, slots=True)
class SceneReport:
    """What was written for one scene, and how long rendering and writing took (s)."""

    image: Path
    n_cars: int
    render_s: float
    write_s: float


def write_cog(path: Path, scene: RenderedScene, quality: int = 75) -> None:
    """Write the scene as a JPEG-compressed COG with an internal mask and overviews."""
    rows, cols = scene.valid.shape
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 3, "dtype": "uint8",
        "crs": scene.grid.crs, "transform": scene.grid.transform, "tiled": True,
        "blockxsize": 512, "blockysize": 512, "photometric": "RGB",
    }
    tags = {
        "ACQUISITION_DATETIME": iso_utc(scene.spec.at),
        "TIFFTAG_DATETIME": scene.spec.at.strftime("%Y:%m:%d %H:%M:%S"),
        "TIFFTAG_IMAGEDESCRIPTION": "SIMULATED imagery (railwatch.simulate), not a real acquisition",
        "RAILWATCH_SIMULATED": "true",
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.moveaxis(scene.image, -1, 0))
            dst.write_mask(scene.valid.astype(np.uint8) * 255)
            dst.update_tags(**tags)
        with mem.open() as src:
            rasterio.shutil.copy(
                src, path, driver="COG", COMPRESS="JPEG", QUALITY=str(quality),
                BLOCKSIZE="512", OVERVIEWS="AUTO", OVERVIEW_RESAMPLING="AVERAGE",
            )


def write_stac(path: Path, scene: RenderedScene, world: SiteWorld, image_name: str) -> None:
    """A STAC item sidecar describing the scene (and saying it is simulated)."""
    aoi = world.site.aoi
    west, south, east, north = aoi.bounds
    spec = scene.spec
    cloudy = scene.cloud[scene.valid] >= 128
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "id": Path(image_name).stem,
        "geometry": mapping(aoi),
        "bbox": [west, south, east, north],
        "properties": {
            "datetime": iso_utc(spec.at),
            "gsd": spec.gsd,
            "view:sun_azimuth": round(scene.sun.azimuth_deg, 3),
            "view:sun_elevation": round(scene.sun.elevation_deg, 3),
            "view:off_nadir": spec.off_nadir_deg,
            "view:azimuth": spec.view_azimuth_deg,
            "proj:epsg": world.site.crs.to_epsg(),
            "eo:cloud_cover": round(100.0 * float(cloudy.mean()) if cloudy.size else 0.0, 2),
            SIMULATED_PROPERTY: True,
            "railwatch:geolocation_shift_m": [spec.shift_m[0], spec.shift_m[1]],
            "railwatch:season": str(spec.season),
            "railwatch:haze": spec.haze,
            "railwatch:site": world.site.name,
            "platform": "railwatch-simulator",
        },
        "links": [],
        "assets": {
            "image": {
                "href": f"./{image_name}",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            },
            "truth": {"href": f"./truth/{Path(image_name).stem}.geojson",
                      "type": "application/geo+json", "roles": ["metadata"]},
        },
    }
    path.write_text(json.dumps(item, indent=2) + "\n", encoding="utf-8")


def render_scenario(
    scenario: Scenario | str | Path,
    out: Path,
    *,
    quality: int = 75,
    progress: Callable[[SceneReport], None] | None = None,
) -> list[SceneReport]:
    """Render every scene of a scenario into ``out`` with its STAC sidecar and truth/."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    site = load_site(sc.site)
    world = build_world(site, sc.seed)
    book = build_train_book(sc)
    check_fits(sc, world, book)
    check_no_overlap(sc, world, book)
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    reports: list[SceneReport] = []
    frames: list[FrameRow] = []
    for spec in sc.scenes:
        t0 = time.perf_counter()
        cars = cars_at(sc, world, book, spec.at)
        scene = render_scene(world, spec, cars)
        t1 = time.perf_counter()
        stem = f"{sc.name}_{spec.stamp}"
        image = out / f"{stem}.tif"
        write_cog(image, scene, quality)
        write_stac(out / f"{stem}.json", scene, world, image.name)
        collection = {"type": "FeatureCollection", "features": scene_features(world, scene)}
        (out / "truth" / f"{stem}.geojson").write_text(json.dumps(collection) + "\n", encoding="utf-8")
        frames += frame_rows(world, scene, image.name)
        report = SceneReport(image, len(cars), t1 - t0, time.perf_counter() - t1)
        reports.append(report)
        if progress is not None:
            progress(report)
    write_csv(out / "truth" / "frames.csv", FRAMES_COLUMNS, frames)
    write_csv(out / "truth" / "weekly.csv", WEEKLY_COLUMNS, weekly_rows(sc, world, book))
    return reports
