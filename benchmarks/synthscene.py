"""Synthetic square scenes of any size, written block by block, for the scaling benchmark.

A scene is a north-up JPEG-compressed, tiled GeoTIFF in UTM zone 52N (as a delivered scene
of the Tumen crossing would be) with overviews: textured ground, and two parallel straight
tracks through its centre with ballast and cars on them. It is written in blocks, so a
20 000² px scene never exists in memory whole. Beside it, two site files: one counting the
first track, one counting both (the track length doubled). The site's AOI is the scene's
footprint; the content is for timing and memory, not accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry import LineString, Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

__all__ = ["ScalingLayout", "write_scene", "write_sites"]

#: UTM zone 52N, and the scene's top-left corner in it (near the crossing's latitude).
CRS = "EPSG:32652"
ORIGIN = (600_000.0, 4_710_000.0)
#: Bearing of the tracks, degrees counter-clockwise from east.
TRACK_ANGLE_DEG = 30.0
CAR_LENGTH_M = 19.2
CAR_WIDTH_M = 3.2
CAR_PITCH_M = 20.6
BLOCK = 1024
ACQUIRED = "2023-10-05T02:15:00Z"


@dataclass(frozen=True, slots=True)
class ScalingLayout:
    """A square scene of ``side`` px at ``gsd`` m with two tracks of ``track_m`` through its
    centre, ``separation_m`` apart."""

    side: int
    gsd: float
    track_m: float
    separation_m: float

    def __post_init__(self) -> None:
        inner = box(*self.bounds).buffer(-25.0)
        if inner.is_empty or not inner.contains(shapely.union_all(self.tracks())):
            raise ValueError(f"tracks of {self.track_m} m do not fit a {self.side} px scene at {self.gsd} m")

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y1 = ORIGIN
        extent = self.side * self.gsd
        return x0, y1 - extent, x0 + extent, y1

    @property
    def transform(self) -> Affine:
        return Affine(self.gsd, 0.0, ORIGIN[0], 0.0, -self.gsd, ORIGIN[1])

    def tracks(self) -> tuple[LineString, LineString]:
        """The two track centrelines (UTM metres)."""
        x0, y0, x1, y1 = self.bounds
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        a = math.radians(TRACK_ANGLE_DEG)
        d = np.array([math.cos(a), math.sin(a)])
        n = np.array([-d[1], d[0]])
        lines = []
        for s in (-0.5, 0.5):
            c = np.array([cx, cy]) + s * self.separation_m * n
            lines.append(LineString([c - d * self.track_m / 2, c + d * self.track_m / 2]))
        return lines[0], lines[1]


def _cars(line: LineString) -> list[Polygon]:
    a = math.radians(TRACK_ANGLE_DEG)
    hl, hw = CAR_LENGTH_M / 2, CAR_WIDTH_M / 2
    local = np.array([(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    out = []
    s = 10.0 + hl
    while s + hl <= line.length - 10.0:
        p = line.interpolate(s)
        out.append(Polygon(local @ rot.T + (p.x, p.y)))
        s += CAR_PITCH_M
    return out


def _block_pixels(layout: ScalingLayout, window: Window, noise: np.ndarray,
                  ballast: BaseGeometry, cars: BaseGeometry) -> np.ndarray:
    r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    transform = layout.transform @ Affine.translation(c0, r0)
    roll = (r0 * 7 + c0 * 13) % noise.shape[0]
    texture = np.roll(noise, roll, axis=(0, 1))[:h, :w]
    ground = np.array([96, 102, 78], dtype=np.int16)[:, None, None] + texture[None]
    x0, y1 = transform @ (0, 0)
    x1, y0 = transform @ (w, h)
    bounds = box(x0, y0, x1, y1)
    for geom, colour in ((ballast, (132, 126, 118)), (cars, (196, 188, 172))):
        part = geom.intersection(bounds)
        if part.is_empty:
            continue
        mask = rasterize([(part, 1)], out_shape=(h, w), transform=transform, dtype="uint8").astype(bool)
        ground[:, mask] = np.array(colour, dtype=np.int16)[:, None] + texture[mask][None] // 2
    return np.clip(ground, 0, 255).astype(np.uint8)


def write_scene(path: Path, layout: ScalingLayout, seed: int = 0) -> Path:
    """Write the scene block by block (JPEG YCbCr tiles of 512 px), then its overviews."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-14, 15, size=(BLOCK, BLOCK), dtype=np.int16)
    lines = layout.tracks()
    ballast = shapely.union_all([ln.buffer(2.6, cap_style="flat") for ln in lines])
    cars = shapely.union_all([c for ln in lines for c in _cars(ln)])
    profile = {
        "driver": "GTiff", "width": layout.side, "height": layout.side, "count": 3, "dtype": "uint8",
        "crs": CRS, "transform": layout.transform, "tiled": True, "blockxsize": 512, "blockysize": 512,
        "compress": "JPEG", "photometric": "YCBCR", "jpeg_quality": 90, "interleave": "pixel",
        "bigtiff": "IF_SAFER",
    }
    with rasterio.Env(COMPRESS_OVERVIEW="JPEG", PHOTOMETRIC_OVERVIEW="YCBCR", INTERLEAVE_OVERVIEW="PIXEL"):
        with rasterio.open(path, "w", **profile) as dst:
            for r0 in range(0, layout.side, BLOCK):
                for c0 in range(0, layout.side, BLOCK):
                    window = Window(c0, r0, min(BLOCK, layout.side - c0), min(BLOCK, layout.side - r0))
                    dst.write(_block_pixels(layout, window, noise, ballast, cars), window=window)
            dst.update_tags(ACQUISITION_DATETIME=ACQUIRED)
        with rasterio.open(path, "r+") as dst:
            factors = [2**k for k in range(1, 16) if layout.side // 2**k >= 256]
            if factors:
                dst.build_overviews(factors, Resampling.average)
    return path


def _lonlat(geom: BaseGeometry) -> BaseGeometry:
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def write_sites(folder: Path, layout: ScalingLayout, name: str) -> tuple[Path, Path]:
    """Site files counting the first track, and both tracks; the AOI is the scene footprint."""
    aoi = _lonlat(box(*layout.bounds))
    lines = [_lonlat(ln) for ln in layout.tracks()]
    paths = []
    for n in (1, 2):
        features = [{"type": "Feature", "properties": {"role": "aoi", "name": name},
                     "geometry": mapping(aoi)}]
        features += [{"type": "Feature", "properties": {"role": "track", "name": f"track_{k + 1}"},
                      "geometry": mapping(lines[k])} for k in range(n)]
        doc = {"type": "FeatureCollection", "name": f"{name}_{n}track", "features": features}
        path = folder / f"{name}_{n}track.geojson"
        path.write_text(json.dumps(doc), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]
