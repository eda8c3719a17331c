"""Shared fixtures: tiny seeded GeoTIFFs and sites built in tmp_path, never downloaded."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

CAR_LENGTH_M = 19.2
CAR_WIDTH_M = 3.24


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that opens an internet socket or resolves a host name (unix sockets stay allowed)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"test tried to open a network connection to {address!r}")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_lookup(host: object, *args: object, **kwargs: object) -> object:
        if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    yield


#: The real ``connect``, taken when this file is imported (before any test patches it).
_REAL_CONNECT = socket.socket.connect
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture
def allow_loopback(no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loosen ``no_network`` for connections to this machine only (a local HTTP server, a
    local Dask cluster); every other address is still refused."""
    guarded = socket.socket.connect

    def loopback_only(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and host in LOOPBACK:
            return _REAL_CONNECT(self, address)  # type: ignore[arg-type]
        return guarded(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@dataclass(frozen=True)
class SyntheticScene:
    path: Path
    lon: float
    lat: float


def write_site(path: Path, lon: float, lat: float, half_m: float = 400.0, name: str = "test") -> Path:
    """A small site around (lon, lat): square AOI, an E-W track through the point, one zone."""
    dlat = half_m / 111_320.0
    dlon = half_m / (111_320.0 * math.cos(math.radians(lat)))

    def square(f: float) -> list[list[float]]:
        return [
            [lon - dlon * f, lat - dlat * f],
            [lon + dlon * f, lat - dlat * f],
            [lon + dlon * f, lat + dlat * f],
            [lon - dlon * f, lat + dlat * f],
            [lon - dlon * f, lat - dlat * f],
        ]

    doc = {
        "type": "FeatureCollection",
        "name": name,
        "features": [
            {"type": "Feature", "properties": {"role": "aoi", "name": name},
             "geometry": {"type": "Polygon", "coordinates": [square(1.0)]}},
            {"type": "Feature", "properties": {"role": "track", "name": "t1"},
             "geometry": {"type": "LineString",
                          "coordinates": [[lon - dlon * 0.9, lat], [lon + dlon * 0.9, lat]]}},
            {"type": "Feature", "properties": {"role": "zone", "name": "yard"},
             "geometry": {"type": "Polygon", "coordinates": [square(0.25)]}},
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def write_scene(
    path: Path,
    crs: str,
    lon: float,
    lat: float,
    *,
    gsd_m: float = 0.4,
    size: int = 600,
    dtype: str = "uint8",
    bands: int = 3,
    tags: dict[str, str] | None = None,
    nodata: float | None = None,
    seed: int = 0,
    colorinterp: list[str] | None = None,
    descriptions: list[str] | None = None,
) -> SyntheticScene:
    """A north-up raster in ``crs`` centred on (lon, lat), dark noisy ground, one bright car-sized
    rectangle (19.2 × 3.24 m, long axis east-west) centred exactly on (lon, lat)."""
    rng = np.random.default_rng(seed)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    cx, cy = tr.transform(lon, lat)
    # Pixel size in CRS units for ~gsd_m metres, measured by a small step east and north.
    ex, _ = tr.transform(lon + 1e-4, lat)
    _, ny = tr.transform(lon, lat + 1e-4)
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(lat)) * 1e-4
    m_per_deg_lat = 111_320.0 * 1e-4
    px = gsd_m * (ex - cx) / m_per_deg_lon
    py = gsd_m * (ny - cy) / m_per_deg_lat
    transform = Affine(px, 0, cx - px * size / 2, 0, -py, cy + py * size / 2)
    scale = {"uint8": 1.0, "uint16": 40.0, "float32": 1 / 255.0}[dtype]
    base = rng.normal(60, 6, size=(size, size))
    car = np.zeros((size, size), dtype=bool)
    half_len = CAR_LENGTH_M / 2 / gsd_m
    half_wid = CAR_WIDTH_M / 2 / gsd_m
    cols, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    car = (np.abs(cols - size / 2) <= half_len) & (np.abs(rows - size / 2) <= half_wid)
    base[car] = 230
    data = np.stack([base] * bands) * scale
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=bands, dtype=dtype,
        crs=crs, transform=transform, nodata=nodata,
    ) as ds:
        ds.write(data.astype(dtype))
        if tags:
            ds.update_tags(**tags)
        if colorinterp:
            ds.colorinterp = [getattr(rasterio.enums.ColorInterp, c) for c in colorinterp]
        for i, d in enumerate(descriptions or []):
            ds.set_band_description(i + 1, d)
    return SyntheticScene(path, lon, lat)


@pytest.fixture
def make_scene(tmp_path: Path) -> Callable[..., SyntheticScene]:
    def factory(name: str = "scene_20231005.tif", crs: str = "EPSG:32652", **kw: object) -> SyntheticScene:
        lon = float(kw.pop("lon", 130.6081))  # type: ignore[arg-type]
        lat = float(kw.pop("lat", 42.4214))  # type: ignore[arg-type]
        return write_scene(tmp_path / name, crs, lon, lat, **kw)  # type: ignore[arg-type]

    return factory
