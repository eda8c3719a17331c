"""Generic yard scenes: a georeferenced image of any freight yard, with exact truth.

Where :mod:`railwatch.simulate.scene` renders the bundled Tumangang–Khasan site from a
scenario, this renders a square of a made-up yard anywhere (a European marshalling yard by
default, or 1520 mm sidings) with every setting pinned or drawn from a seed: the yard's
style (:class:`~railwatch.simulate.yard.YardStyle`), season, sun, sensor and ground sample
distance. It serves tests of the pipeline on imagery unlike its training chips (the shift
suite in ``benchmarks/bench_shift.py``) and the correct-and-retrain round trip.

Output (:func:`write_yard_scene`): a tiled GeoTIFF in the place's UTM zone (lossless: the
sensor's own JPEG artefacts are in the pixels already) with its acquisition time in the
tags, and a truth GeoJSON (EPSG:4326 polygons of the cars' tops with ``class``, ``id``,
``length_m``, ``width_m``). Everything is SIMULATED.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry import Polygon, mapping
from shapely.geometry.polygon import orient

from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.fleet import Stock
from railwatch.simulate.ground import Season, palette_for
from railwatch.simulate.imaging import Sensor, View, expose, illuminate, random_sensor
from railwatch.simulate.stock import PlacedCar, roof_offset
from railwatch.simulate.sun import Sun
from railwatch.simulate.yard import YardStyle, random_yard
from railwatch.simulate.yardpaint import paint_yard
from railwatch.site import utm_crs_for

__all__ = [
    "EUROPEAN_YARD",
    "SIDINGS_1520",
    "TUMANGANG",
    "RenderedYard",
    "YardScene",
    "render_yard_scene",
    "truth_features",
    "write_yard_scene",
]

#: Metres rendered beyond the scene's edges, so that shadows and blur at the edge are right.
MARGIN_M = 15.0

#: A European marshalling yard of 15–25 tracks, 35 % of them occupied.
EUROPEAN_YARD = YardStyle(Stock.EUROPEAN, (15, 25), 0.35, None, 0.7, (0.0, 0.05), 1.0, 0.1, 0.0)
#: Sidings of 1520 mm stock like Tumangang's or Khasan's: 4–8 tracks, most occupied, no catenary
#: (use ``place=TUMANGANG`` for the site's UTM zone and latitude).
SIDINGS_1520 = YardStyle(Stock.RUSSIAN_1520, (4, 8), 0.6, None, 0.0, (0.0, 0.0), 1.0, 0.2, 0.0)
#: Lon, lat of Tumangang station (DOMAIN.md).
TUMANGANG = (130.6081, 42.4214)


@dataclass(frozen=True, slots=True)
class YardScene:
    """How a generic yard scene is made (all of it reproducible from these values).

    ``size_m``: side of the square; ``place``: lon, lat of its centre (sets the UTM zone);
    ``sun``: None for elevation 50° from 160°; ``sensor``: None for a random one drawn from
    the seed; ``ambient``: share of sky light (a shadow on ballast is about this bright
    relative to sunlit ballast); ``view``: off-nadir geometry.
    """

    seed: int
    gsd: float = 0.3
    size_m: float = 240.0
    style: YardStyle = EUROPEAN_YARD
    season: Season = Season.EARLY_AUTUMN
    sun: Sun | None = None
    sensor: Sensor | None = None
    ambient: float = 0.45
    view: View = field(default_factory=View)
    place: tuple[float, float] = (8.55, 47.40)
    acquired: datetime = datetime(2024, 9, 10, 9, 30, tzinfo=UTC)

    def __post_init__(self) -> None:
        if not 0.05 <= self.gsd <= 2.0:
            raise ValueError(f"gsd must be within 0.05–2 m, got {self.gsd}")
        if not 30.0 <= self.size_m <= 3000.0:
            raise ValueError(f"size_m must be within 30–3000 m, got {self.size_m}")
        if not 0.05 <= self.ambient <= 0.9:
            raise ValueError(f"ambient must be within 0.05–0.9, got {self.ambient}")
        if self.acquired.tzinfo is None:
            raise ValueError("acquired must be a UTC time")


@dataclass(frozen=True, slots=True)
class RenderedYard:
    """A rendered yard scene: RGB uint8 (rows, cols, 3), where it is, and the cars in it.

    ``cars`` are where their tops appear in the image (relief displacement included), in
    ``crs`` metres; only cars whose centre lies in the image are kept.
    """

    spec: YardScene
    image: np.ndarray
    transform: Affine
    crs: CRS
    cars: tuple[PlacedCar, ...]
    sun: Sun
    sensor: Sensor


def render_yard_scene(spec: YardScene) -> RenderedYard:
    """Render ``spec``: a deterministic function of its values."""
    rng = np.random.default_rng([spec.seed, 1313])
    n = max(16, round(spec.size_m / spec.gsd))
    half = n * spec.gsd / 2
    m = math.ceil(MARGIN_M / spec.gsd)
    window = RasterWindow(-half - m * spec.gsd, half + m * spec.gsd, spec.gsd, n + 2 * m, n + 2 * m)
    palette = palette_for(spec.season, rng)
    sun = spec.sun if spec.sun is not None else Sun(160.0, 50.0)
    layout = random_yard(rng, half, spec.season, spec.style)
    sensor = spec.sensor if spec.sensor is not None else random_sensor(rng)
    canvas = Canvas(window)
    lean = spec.view.lean
    paint_yard(canvas, layout, palette, sun, int(rng.integers(0, 2**31 - 1)), lean=lean)
    radiance = illuminate(canvas, sun, ambient=spec.ambient)
    image = expose(radiance, sensor, rng)[m : m + n, m : m + n]
    crs = utm_crs_for(*spec.place)
    east, north = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*spec.place)
    east, north = round(east), round(north)
    cars: list[PlacedCar] = []
    for c in layout.cars:
        ox, oy = roof_offset(c.car, lean)
        x, y = c.centre[0] + ox, c.centre[1] + oy
        if abs(x) < half and abs(y) < half:
            name = f"car-{len(cars) + 1:04d}"
            cars.append(PlacedCar(c.car, (east + x, north + y), c.heading, c.base, name))
    transform = Affine(spec.gsd, 0.0, east - half, 0.0, -spec.gsd, north + half)
    return RenderedYard(spec, np.ascontiguousarray(image), transform, crs, tuple(cars), sun, sensor)


def truth_features(scene: RenderedYard, name: str) -> list[dict[str, object]]:
    """The cars as GeoJSON features (EPSG:4326, counter-clockwise rings)."""
    to_ll = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    out: list[dict[str, object]] = []
    for c in scene.cars:
        xy = c.corners()
        lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
        ring = orient(Polygon(np.column_stack([lon, lat])), 1.0)
        out.append({
            "type": "Feature",
            "geometry": mapping(ring),
            "properties": {"id": c.car_id, "scene": name, "class": c.car.cls.value,
                           "length_m": round(c.car.length, 2), "width_m": round(c.car.width, 2)},
        })
    return out


def write_yard_scene(scene: RenderedYard, path: Path) -> tuple[Path, Path]:
    """Write the image as a tiled GeoTIFF and its truth as ``<stem>.truth.geojson`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = scene.image.shape[:2]
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 3, "dtype": "uint8",
        "crs": scene.crs, "transform": scene.transform, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "deflate", "photometric": "RGB",
    }
    when = scene.spec.acquired.astimezone(UTC)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(scene.image, -1, 0))
        dst.update_tags(
            ACQUISITION_DATETIME=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"),
            TIFFTAG_IMAGEDESCRIPTION="SIMULATED imagery (railwatch.simulate.yardscene), not a real image",
            RAILWATCH_SIMULATED="true",
        )
    truth = path.with_name(f"{path.stem}.truth.geojson")
    doc = {"type": "FeatureCollection", "features": truth_features(scene, path.name)}
    truth.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return path, truth
