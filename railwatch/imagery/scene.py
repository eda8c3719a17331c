"""Opening a scene: any raster GDAL reads, checked before a pixel is counted.

``open_scene`` reads metadata and a small overview only (time, bands, ground sample distance,
footprint, stretch) and raises a :class:`~railwatch.errors.SceneError` subclass for anything
that makes the scene unusable. Reading it onto the site grid is :mod:`railwatch.imagery.warp`;
the GDAL settings both run under, :mod:`railwatch.imagery.gdal`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from shapely.geometry import Polygon

from railwatch.errors import (
    BlankSceneError,
    ImpossibleTimeError,
    NoAcquisitionTimeError,
    NoGeoreferenceError,
    NoOverlapError,
    ResolutionTooCoarseError,
    SceneReadError,
    UnsupportedBandsError,
)
from railwatch.imagery import acquisition
from railwatch.imagery.acquisition import Acquisition
from railwatch.imagery.gdal import first_line, gdal_env, in_gdal_env, unreachable
from railwatch.imagery.source import SceneSource
from railwatch.imagery.tile import pixels_to_map

__all__ = [
    "MAX_GSD_M",
    "SIMULATED_PROPERTY",
    "BandLayout",
    "Scene",
    "Stretch",
    "footprint_lonlat",
    "open_scene",
]

#: The STAC property by which railwatch's simulator marks its scenes (true: not real imagery).
SIMULATED_PROPERTY = "railwatch:simulated"

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Coarsest ground sample distance accepted: a 3.2 m wide car is ~3 px at 1 m.
MAX_GSD_M = 1.0

#: Percentiles of the per-scene stretch of non-8-bit data.
STRETCH_PERCENTILES = (0.5, 99.5)

#: Longest side of the overview read for the stretch and the integrity check.
OVERVIEW_SIDE = 1024

_RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
_DESCRIPTION_NAMES = {
    "red": 0, "r": 0, "green": 1, "g": 1, "blue": 2, "b": 2,
}


@dataclass(frozen=True, slots=True)
class BandLayout:
    """Which 1-based bands give red, green and blue (all three the same for panchromatic)."""

    rgb: tuple[int, int, int]
    alpha: int | None
    description: str

    @property
    def panchromatic(self) -> bool:
        return len(set(self.rgb)) == 1


@dataclass(frozen=True, slots=True)
class Stretch:
    """A linear map of each of the three output bands from [low, high] to [0, 255]."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        if any(h <= lo for lo, h in zip(self.low, self.high, strict=True)):
            raise ValueError(f"stretch needs high > low, got {self.low} {self.high}")

    @classmethod
    def identity(cls) -> Stretch:
        return cls((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(3, rows, cols)`` of any dtype to uint8."""
        if self == Stretch.identity() and data.dtype == np.uint8:
            return data
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        high = np.asarray(self.high, dtype=np.float32)[:, None, None]
        scaled = (data.astype(np.float32) - low) * (255.0 / (high - low))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Scene:
    """A checked scene: where its pixels are, when they were taken, and how to read them."""

    source: SceneSource
    crs: CRS
    native_gsd: float
    acquisition: Acquisition
    bands: BandLayout
    stretch: Stretch
    footprint: Polygon
    dtype: str
    nodata: float | None
    #: Rendered by railwatch's simulator, as its STAC item or sidecar says (``railwatch:simulated``).
    simulated: bool = False

    @property
    def name(self) -> str:
        """The scene's name in the outputs (a file name, or a STAC item id)."""
        return self.source.name

    @property
    def location(self) -> str:
        """Where the pixels are: the local file's absolute path, or the URL."""
        return self.source.location


@in_gdal_env
def footprint_lonlat(path: str | Path) -> Polygon:
    """The raster's outline in EPSG:4326, for work without a site (``railwatch detect`` on any
    image, training chips from labelled imagery)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                crs = _check_georeference(path, src)
                return _footprint(src, crs, CRS.from_epsg(4326))
    except RasterioError as exc:
        raise SceneReadError(
            path, f"not a raster GDAL can read ({first_line(exc)}); is it a GeoTIFF or COG?"
        ) from exc


def open_scene(
    path: str | Path | SceneSource,
    site_crs: CRS,
    aoi: Polygon,
    max_gsd: float = MAX_GSD_M,
    require_time: bool = True,
) -> Scene:
    """Open and check a scene; ``aoi`` is in ``site_crs``. Raises a ``SceneError`` subclass.

    ``path``: a local file, or a :class:`SceneSource` (a local file or a URL, perhaps with
    the acquisition time of its STAC item). ``require_time=False`` accepts a scene without
    acquisition time (source ``none``): for detection and evaluation, never for counting into
    a time series.
    """
    source = path if isinstance(path, SceneSource) else SceneSource.local(path)
    with gdal_env(source):
        return _open_checked(source, site_crs, aoi, max_gsd, require_time)


def _open_checked(
    source: SceneSource, site_crs: CRS, aoi: Polygon, max_gsd: float, require_time: bool
) -> Scene:
    local = source.path
    path: str | Path = local if local is not None else source.href  # as errors name it
    if local is not None and not local.is_file():
        raise SceneReadError(path, "no such file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(source.gdal_path)
    except RasterioError as exc:
        if source.remote:
            raise unreachable(source, exc, "cannot read it over the network", "check the URL, the "
                               "network and GDAL's credentials (AWS_*, GDAL_HTTP_*), and that it is a "
                               "GeoTIFF/COG") from exc
        raise SceneReadError(
            path, f"not a raster GDAL can read ({first_line(exc)}); is it a GeoTIFF or COG?"
        ) from exc
    with src:
        crs = _check_georeference(path, src)
        bands = _band_layout(path, src)
        footprint = _footprint(src, crs, site_crs)
        if not footprint.intersects(aoi):
            raise NoOverlapError(
                path,
                "does not overlap the site's area of interest; is it the right site (--site)?",
            )
        gsd = _native_gsd(src, crs, site_crs)
        if gsd > max_gsd:
            raise ResolutionTooCoarseError(
                path,
                f"ground sample distance {gsd:.2f} m is coarser than {max_gsd:.1f} m: individual cars "
                "cannot be resolved; PlanetScope's 3 m is too coarse. Use 0.3–0.8 m imagery "
                "(WorldView, SkySat, aerial)",
            )
        acq = _acquisition(source, src, require_time)
        stretch = _stretch(source, src, bands)
        return Scene(
            source=source,
            crs=crs,
            native_gsd=gsd,
            acquisition=acq,
            bands=bands,
            stretch=stretch,
            footprint=footprint,
            dtype=src.dtypes[0],
            nodata=src.nodata,
            simulated=source.simulated or (
                local is not None
                and acquisition.stac_sidecar_properties(local).get(SIMULATED_PROPERTY) is True
            ),
        )


def _check_georeference(path: str | Path, src: rasterio.io.DatasetReader) -> CRS:
    if src.crs is None or src.transform.is_identity:
        gcps, _ = src.gcps
        hint = (
            "it has only ground control points: orthorectify it first "
            "(gdalwarp -r bilinear in.tif out.tif)"
            if gcps
            else "it needs a CRS and a geotransform (a GeoTIFF, or a world file with a .prj)"
        )
        raise NoGeoreferenceError(path, f"has no georeferencing; {hint}")
    return CRS.from_user_input(src.crs)


def _band_layout(path: str | Path, src: rasterio.io.DatasetReader) -> BandLayout:
    interp = list(src.colorinterp)
    alpha = interp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in interp else None
    if all(c in interp for c in _RGB):
        rgb = tuple(interp.index(c) + 1 for c in _RGB)
        return BandLayout((rgb[0], rgb[1], rgb[2]), alpha, "colour interpretation")
    names = [(d or "").strip().lower() for d in src.descriptions]
    found: dict[int, int] = {}
    for i, name in enumerate(names):
        if name in _DESCRIPTION_NAMES and _DESCRIPTION_NAMES[name] not in found:
            found[_DESCRIPTION_NAMES[name]] = i + 1
    if len(found) == 3:
        return BandLayout((found[0], found[1], found[2]), alpha, "band descriptions")
    colour = [i for i, c in enumerate(interp) if c not in (ColorInterp.alpha, ColorInterp.undefined)]
    data_bands = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
    if len(data_bands) == 1 and ColorInterp.palette not in interp:
        b = data_bands[0]
        return BandLayout((b, b, b), alpha, "panchromatic")
    if src.count == 3 and ColorInterp.palette not in interp and len(colour) <= 1:
        return BandLayout((1, 2, 3), alpha, "3 bands without colour interpretation, read as RGB")
    raise UnsupportedBandsError(
        path,
        f"cannot tell red, green and blue among its {src.count} bands "
        f"(colour interpretation {[c.name for c in interp]}, descriptions {src.descriptions}); "
        "set the colour interpretation or band descriptions (gdal_edit.py -colorinterp_1 red ...), "
        "or give RGB, RGBA, RGBN/BGRN or single-band panchromatic imagery",
    )


def _footprint(src: rasterio.io.DatasetReader, crs: CRS, site_crs: CRS) -> Polygon:
    """The raster's outline in the site CRS, densified so that curved edges stay close."""
    w, h = src.width, src.height
    n = 16
    edge = np.linspace(0.0, 1.0, n, endpoint=False)
    cols = np.concatenate([edge * w, np.full(n, w), (1 - edge) * w, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), edge * h, np.full(n, h), (1 - edge) * h])
    xy = pixels_to_map(src.transform, np.column_stack([cols, rows]))
    tr = Transformer.from_crs(crs.to_wkt(), site_crs.to_wkt(), always_xy=True)
    px, py = tr.transform(xy[:, 0], xy[:, 1])
    return Polygon(np.column_stack([px, py]))


def _native_gsd(src: rasterio.io.DatasetReader, crs: CRS, site_crs: CRS) -> float:
    """Pixel size in metres at the scene centre, measured in the site's metric CRS."""
    c, r = src.width / 2.0, src.height / 2.0
    xy = pixels_to_map(src.transform, np.array([(c, r), (c + 1, r), (c, r + 1)]))
    tr = Transformer.from_crs(crs.to_wkt(), site_crs.to_wkt(), always_xy=True)
    px, py = tr.transform(xy[:, 0], xy[:, 1])
    dx = math.hypot(px[1] - px[0], py[1] - py[0])
    dy = math.hypot(px[2] - px[0], py[2] - py[0])
    return math.sqrt(dx * dy)


def _acquisition(
    source: SceneSource, src: rasterio.io.DatasetReader, require_time: bool = True
) -> Acquisition:
    """From the scene's STAC item, a STAC side-car beside a local file, the tags or the name."""
    found = source.acquisition
    local = source.path
    if found is None and local is not None:
        found = acquisition.from_stac_sidecar(local)
    if found is None:
        tags: dict[str, str] = {}
        for domain in [None, *(src.tag_namespaces() or [])]:
            if domain in ("IMAGE_STRUCTURE", "DERIVED_SUBDATASETS", "xml:XMP"):
                continue
            try:
                tags.update(src.tags(ns=domain) if domain else src.tags())
            except RasterioError:
                continue
        found = acquisition.from_tags(tags)
    if found is None:
        found = acquisition.from_file_name(Path(source.url_name))
    if found is None and not require_time:
        found = Acquisition(acquisition.NO_TIME, acquisition.TimeSource.NONE, "no acquisition time")
    if found is None:
        sidecar = acquisition.stac_sidecar(local) if local is not None else None
        stac = (f"the STAC item {sidecar.name} has no properties.datetime: add it"
                if sidecar is not None and sidecar.is_file()
                else "add a STAC item <stem>.json with properties.datetime")
        raise NoAcquisitionTimeError(
            local or source.href,
            f"no acquisition time: {stac}, set the ACQUISITION_DATETIME tag "
            "(gdal_edit.py -mo ACQUISITION_DATETIME=2023-10-05T02:15:00Z), "
            "or put the date in the file name (e.g. scene_20231005.tif)",
        )
    if found.source is not acquisition.TimeSource.NONE:
        _check_plausible(found, local or source.href)
    return found


#: The first image taken from orbit that was brought back (CORONA, mission 9009): an
#: acquisition time before it is an error in the metadata, not a scene.
FIRST_SATELLITE_IMAGE = datetime(1960, 8, 18, tzinfo=UTC)
#: Clocks and time zones differ: a time this far past the moment of the run is still accepted.
CLOCK_SLACK = timedelta(hours=14)


def _check_plausible(found: Acquisition, path: str | Path) -> None:
    """Refuse an acquisition time after the time of the run, or before any satellite image."""
    now = datetime.now(UTC)
    when = found.time.isoformat()
    if found.time > now + CLOCK_SLACK:
        raise ImpossibleTimeError(
            path, f"acquisition time {when} ({found.detail}) is after the time of this run "
            f"({now.isoformat(timespec='seconds')}): the metadata is wrong; correct it there")
    if found.time < FIRST_SATELLITE_IMAGE:
        raise ImpossibleTimeError(
            path, f"acquisition time {when} ({found.detail}) is before the first satellite image "
            f"({FIRST_SATELLITE_IMAGE.date()}): the metadata is wrong; correct it there")


def _stretch(source: SceneSource, src: rasterio.io.DatasetReader, bands: BandLayout) -> Stretch:
    """Robust per-scene stretch from an overview; also proves the file's pixels can be read,
    and that they hold an image (not one value throughout: an empty export or a file whose
    blocks were never written)."""
    path: str | Path = source.path or source.href
    scale = max(src.width, src.height) / OVERVIEW_SIDE
    shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale))) if scale > 1 else (
        src.height,
        src.width,
    )
    try:
        data = src.read(list(bands.rgb), out_shape=(3, *shape), masked=True)
    except RasterioError as exc:
        if source.remote:
            raise unreachable(source, exc, "could not read pixels over the network",
                               "try again later, or check the server") from exc
        raise SceneReadError(
            path, f"could not read pixels ({first_line(exc)}); the file may be truncated or corrupt"
        ) from exc
    values = []
    for band in data:
        v = band.compressed() if np.ma.isMaskedArray(band) else band.ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise SceneReadError(path, "holds no valid pixels (all nodata)")
        values.append(v)
    lows = [float(v.min()) for v in values]
    if all(float(v.max()) == lo for v, lo in zip(values, lows, strict=True)):
        what = f"{lows[0]:g}" if len(set(lows)) == 1 else "the same value"
        raise BlankSceneError(
            path,
            f"holds no image: every pixel is {what} in every band (an empty export, or a file "
            "whose blocks were never written); export the scene again",
        )
    if src.dtypes[0] == "uint8":
        return Stretch.identity()
    low, high = [], []
    for v in values:
        lo, hi = np.percentile(v, STRETCH_PERCENTILES)
        if hi <= lo:
            hi = lo + 1.0
        low.append(float(lo))
        high.append(float(hi))
    return Stretch((low[0], low[1], low[2]), (high[0], high[1], high[2]))
