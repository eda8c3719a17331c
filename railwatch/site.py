"""Sites: the area of interest, track centrelines and named counting zones of a crossing.

A site is a GeoJSON FeatureCollection in EPSG:4326 (see docs/design.md); each feature has
``properties.role`` (``aoi``, ``track`` or ``zone``) and ``properties.name``. It is loaded
into a frozen :class:`Site` that knows its local metric CRS (the UTM zone of the AOI's
centroid) and gives the counting areas in that CRS.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry import LineString, MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from railwatch.errors import BadSiteError
from railwatch.sun import solar_position

__all__ = [
    "AreaKind",
    "CountingArea",
    "Site",
    "Track",
    "Zone",
    "bundled_sites",
    "load_site",
    "site_for_footprint",
    "utm_crs_for",
]

#: Half-width of a counting corridor around a track centreline, in metres: half a car
#: (1.7 m), a margin for the centreline's own error, and the ~15 m geolocation error of
#: SkySat-class orthoimagery (DOMAIN.md), so that a shifted scene still has its cars inside.
DEFAULT_CORRIDOR_HALF_WIDTH_M = 20.0

_T = TypeVar("_T")


class AreaKind(enum.StrEnum):
    """Where a counting area comes from."""

    ZONE = "zone"
    CORRIDOR = "corridor"


@dataclass(frozen=True, slots=True)
class Track:
    """A track centreline (EPSG:4326)."""

    name: str
    line: LineString

    def __post_init__(self) -> None:
        if not isinstance(self.line, LineString) or self.line.is_empty or self.line.length == 0:
            raise BadSiteError(f"track {self.name!r} must be a non-empty LineString")


@dataclass(frozen=True, slots=True)
class Zone:
    """A named counting area (EPSG:4326). Counts are reported per zone."""

    name: str
    polygon: Polygon | MultiPolygon

    def __post_init__(self) -> None:
        if not isinstance(self.polygon, (Polygon, MultiPolygon)) or self.polygon.is_empty:
            raise BadSiteError(f"zone {self.name!r} must be a non-empty Polygon")
        if not self.polygon.is_valid:
            raise BadSiteError(
                f"zone {self.name!r} has invalid geometry ({shapely.is_valid_reason(self.polygon)}); "
                "fix it in QGIS (Vector > Geometry Tools > Fix Geometries)"
            )


@dataclass(frozen=True, slots=True)
class CountingArea:
    """A zone or a track corridor in the site's local CRS (metres)."""

    name: str
    kind: AreaKind
    geometry: Polygon | MultiPolygon


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS that contains (lon, lat)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"not a WGS84 lon/lat: ({lon}, {lat})")
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _reproject(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fn)


@dataclass(frozen=True, slots=True)
class Site:
    """A crossing: AOI, tracks and zones in EPSG:4326, and their local metric versions."""

    name: str
    aoi: Polygon
    tracks: tuple[Track, ...] = ()
    zones: tuple[Zone, ...] = ()
    description: str = ""
    crs: CRS = field(init=False)
    aoi_local: Polygon = field(init=False)
    tracks_local: tuple[LineString, ...] = field(init=False)
    zones_local: tuple[Polygon | MultiPolygon, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.aoi, Polygon) or self.aoi.is_empty:
            raise BadSiteError(f"site {self.name!r}: the aoi must be a non-empty Polygon")
        if not self.aoi.is_valid:
            raise BadSiteError(
                f"site {self.name!r}: the aoi has invalid geometry ({shapely.is_valid_reason(self.aoi)})"
            )
        if not self.tracks and not self.zones:
            raise BadSiteError(
                f"site {self.name!r} has neither tracks nor zones: add at least one feature with "
                "role 'track' (LineString) or 'zone' (Polygon)"
            )
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise BadSiteError(f"site {self.name!r}: zone names must be unique, got {names}")
        tolerant_aoi = self.aoi.buffer(1e-6)
        for zone in self.zones:
            if not tolerant_aoi.covers(zone.polygon):
                raise BadSiteError(
                    f"site {self.name!r}: zone {zone.name!r} lies (partly) outside the aoi; "
                    "enlarge the aoi or shrink the zone"
                )
        for track in self.tracks:
            if not self.aoi.intersects(track.line):
                raise BadSiteError(f"site {self.name!r}: track {track.name!r} lies outside the aoi")
        c = self.aoi.centroid
        crs = utm_crs_for(c.x, c.y)
        to_local = Transformer.from_crs("EPSG:4326", crs.to_wkt(), always_xy=True)
        object.__setattr__(self, "crs", crs)
        object.__setattr__(self, "aoi_local", _reproject(self.aoi, to_local))
        object.__setattr__(
            self, "tracks_local", tuple(_reproject(t.line, to_local) for t in self.tracks)
        )
        object.__setattr__(
            self, "zones_local", tuple(_reproject(z.polygon, to_local) for z in self.zones)
        )

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.name for z in self.zones)

    def zone_areas(self) -> tuple[CountingArea, ...]:
        """The zones as counting areas (clipped to the AOI, local CRS), in the site's order:
        what counts and coverage are reported for."""
        return tuple(
            CountingArea(z.name, AreaKind.ZONE, g.intersection(self.aoi_local))
            for z, g in zip(self.zones, self.zones_local, strict=True)
        )

    def counting_areas(
        self, corridor_half_width_m: float = DEFAULT_CORRIDOR_HALF_WIDTH_M
    ) -> tuple[CountingArea, ...]:
        """Zones and track corridors, clipped to the AOI, in the local CRS.

        A site without tracks counts in its zones alone.
        """
        if corridor_half_width_m <= 0:
            raise ValueError("corridor_half_width_m must be positive")
        areas = list(self.zone_areas())
        for track, line in zip(self.tracks, self.tracks_local, strict=True):
            corridor = line.buffer(corridor_half_width_m, cap_style="flat").intersection(self.aoi_local)
            if not corridor.is_empty:
                areas.append(CountingArea(track.name, AreaKind.CORRIDOR, corridor))
        return tuple(areas)

    def counting_region(
        self, corridor_half_width_m: float = DEFAULT_CORRIDOR_HALF_WIDTH_M
    ) -> Polygon | MultiPolygon:
        """The union of all counting areas (local CRS): the only place pixels are read."""
        return shapely.union_all([a.geometry for a in self.counting_areas(corridor_half_width_m)])

    def to_local(self, geom: BaseGeometry) -> BaseGeometry:
        """Reproject an EPSG:4326 geometry into the site's local CRS."""
        return _reproject(geom, Transformer.from_crs("EPSG:4326", self.crs.to_wkt(), always_xy=True))

    def sun_elevation(self, when: datetime) -> float:
        """The sun's elevation (°) over the centre of the aoi at ``when`` (timezone-aware)."""
        c = self.aoi.centroid
        return solar_position(c.y, c.x, when).elevation_deg

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        """Reproject a local-CRS geometry into EPSG:4326."""
        return _reproject(geom, Transformer.from_crs(self.crs.to_wkt(), "EPSG:4326", always_xy=True))


def site_for_footprint(name: str, footprint_lonlat: Polygon) -> Site:
    """A site that is one image's whole footprint: the AOI and a single zone named ``name``.

    For work on imagery of a place without a site file; every pixel is a counting area.
    """
    aoi = footprint_lonlat.buffer(0)
    return Site(name=name, aoi=aoi, zones=(Zone(name, aoi),), description="whole image footprint")


def bundled_sites() -> dict[str, Path]:
    """Names of the sites shipped with railwatch, and their files."""
    folder = resources.files("railwatch") / "sites"
    return {
        Path(str(p)).stem: Path(str(p))
        for p in folder.iterdir()
        if str(p).endswith(".geojson")
    }


def load_site(name_or_path: str | Path) -> Site:
    """Load a bundled site by name, or a site GeoJSON by path."""
    bundled = bundled_sites()
    if str(name_or_path) in bundled:
        path = bundled[str(name_or_path)]
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise BadSiteError(
                f"{path}: no such site file, and not a bundled site "
                f"(bundled: {', '.join(sorted(bundled)) or 'none'}); see `railwatch sites`"
            )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadSiteError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    return site_from_geojson(doc, default_name=path.stem, source=str(path))


def site_from_geojson(doc: object, default_name: str = "site", source: str = "site") -> Site:
    """Build a :class:`Site` from a parsed GeoJSON FeatureCollection."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise BadSiteError(f"{source}: a site must be a GeoJSON FeatureCollection")
    aois: list[Polygon] = []
    tracks: list[Track] = []
    zones: list[Zone] = []
    features = doc.get("features") or []
    if not isinstance(features, list):
        raise BadSiteError(f"{source}: 'features' must be a list of GeoJSON Features")
    for i, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            raise BadSiteError(
                f"{source}: feature {i} is not a GeoJSON Feature with properties role and name"
            )
        role, name = props.get("role"), props.get("name")
        if role not in ("aoi", "track", "zone"):
            raise BadSiteError(
                f"{source}: feature {i} has role {role!r}; use 'aoi', 'track' or 'zone'"
            )
        if not isinstance(name, str) or not name:
            raise BadSiteError(f"{source}: feature {i} ({role}) has no properties.name")
        try:
            geom = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
            raise BadSiteError(f"{source}: feature {name!r} has no readable geometry ({exc})") from exc
        _check_lonlat(geom, f"{source}: feature {name!r}")
        if role == "aoi":
            if not isinstance(geom, Polygon):
                raise BadSiteError(f"{source}: the aoi {name!r} must be a Polygon, not {geom.geom_type}")
            aois.append(geom)
        elif role == "track":
            tracks.append(_wrap(source, partial(Track, name, geom)))
        else:
            zones.append(_wrap(source, partial(Zone, name, geom)))
    if len(aois) != 1:
        raise BadSiteError(
            f"{source}: a site needs exactly one feature with role 'aoi' (found {len(aois)})"
        )
    name_in_file = doc.get("name")
    site_name = name_in_file if isinstance(name_in_file, str) else default_name
    return _wrap(
        source,
        lambda: Site(
            name=site_name,
            aoi=aois[0],
            tracks=tuple(tracks),
            zones=tuple(zones),
            description=str(doc.get("description", "")),
        ),
    )


def _wrap(source: str, build: Callable[[], _T]) -> _T:
    try:
        return build()
    except BadSiteError as exc:
        if str(exc).startswith(source):
            raise
        raise BadSiteError(f"{source}: {exc}") from exc


def _check_lonlat(geom: BaseGeometry, where: str) -> None:
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadSiteError(
            f"{where} has coordinates outside lon/lat range ({geom.bounds}); "
            "site files are in EPSG:4326 (longitude, latitude)"
        )
