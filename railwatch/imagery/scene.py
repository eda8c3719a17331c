"""The scene loader: open any raster GDAL reads, check it, and warp windows of it onto the site grid.

``open_scene`` reads metadata and a small overview only (time, bands, ground sample distance,
footprint, stretch) and raises a :class:`~railwatch.errors.SceneError` subclass for anything
that makes the scene unusable. ``read_tiles`` then warps only the windows around the counting
areas onto the site grid with a ``WarpedVRT``: memory is bounded by one window, not the scene.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.vrt import WarpedVRT
from shapely.geometry import Polygon

from railwatch.errors import (
    BlankSceneError,
    NoAcquisitionTimeError,
    NoGeoreferenceError,
    NoOverlapError,
    ResolutionTooCoarseError,
    SceneReadError,
    UnsupportedBandsError,
)
from railwatch.imagery import acquisition
from railwatch.imagery.acquisition import Acquisition
from railwatch.imagery.blank import blank_mask, blank_side_px
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.tile import Tile, pixels_to_map

__all__ = [
    "GDAL_CACHE_MB",
    "MAX_GSD_M",
    "SIMULATED_PROPERTY",
    "BandLayout",
    "Scene",
    "Stretch",
    "footprint_lonlat",
    "gdal_env",
    "open_scene",
    "read_tiles",
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

#: GDAL's block cache while railwatch reads a scene, in MiB: bounded, so that memory stays flat
#: whatever the scene (GDAL's default, 5 % of RAM, let a 200 000² px sparse file take 1.46 GB).
#: A ``GDAL_CACHEMAX`` environment variable or an enclosing ``rasterio.Env`` setting wins.
GDAL_CACHE_MB = 64

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

    path: Path
    crs: CRS
    native_gsd: float
    acquisition: Acquisition
    bands: BandLayout
    stretch: Stretch
    footprint: Polygon
    dtype: str
    nodata: float | None
    #: Rendered by railwatch's simulator, as its STAC sidecar says (``railwatch:simulated``).
    simulated: bool = False

    @property
    def name(self) -> str:
        return self.path.name


def gdal_env() -> rasterio.Env:
    """The GDAL settings railwatch reads scenes under: a block cache of :data:`GDAL_CACHE_MB`.

    Entered around each open and read (never left open across a ``yield``), so no setting
    leaks into the caller; ``os.environ`` is never changed.
    """
    if "GDAL_CACHEMAX" in os.environ or (
        rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()
    ):
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)  # rasterio takes bytes


def _in_gdal_env(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with gdal_env():
            return fn(*args, **kwargs)

    return wrapper


@_in_gdal_env
def open_scene(
    path: str | Path,
    site_crs: CRS,
    aoi: Polygon,
    max_gsd: float = MAX_GSD_M,
    require_time: bool = True,
) -> Scene:
    """Open and check a scene; ``aoi`` is in ``site_crs``. Raises a ``SceneError`` subclass.

    ``require_time=False`` accepts a scene without acquisition time (source ``none``): for
    detection and evaluation, never for counting into a time series.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneReadError(path, "no such file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioError as exc:
        raise SceneReadError(
            path, f"not a raster GDAL can read ({_first_line(exc)}); is it a GeoTIFF or COG?"
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
        acq = _acquisition(path, src, require_time)
        stretch = _stretch(path, src, bands)
        return Scene(
            path=path,
            crs=crs,
            native_gsd=gsd,
            acquisition=acq,
            bands=bands,
            stretch=stretch,
            footprint=footprint,
            dtype=src.dtypes[0],
            nodata=src.nodata,
            simulated=acquisition.stac_sidecar_properties(path).get(SIMULATED_PROPERTY) is True,
        )


def resampling_for(native_gsd: float, grid_gsd: float) -> Resampling:
    """Bilinear when up-sampling or near the native scale; averaging when shrinking by more
    than 1.5× (bilinear would alias fine texture into noise the model never saw)."""
    return Resampling.average if grid_gsd > 1.5 * native_gsd else Resampling.bilinear


@_in_gdal_env
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
            path, f"not a raster GDAL can read ({_first_line(exc)}); is it a GeoTIFF or COG?"
        ) from exc


def read_tiles(
    scene: Scene, grid: SiteGrid, windows: Sequence[GridWindow]
) -> Iterator[Tile]:
    """Warp ``windows`` of the scene onto ``grid`` (bilinear) and yield them as tiles.

    Pixels outside the scene, nodata pixels, pixels masked by the raster's alpha band or
    mask, and pixels with no signal (blank, constant or saturated over a square wider than a
    car, :mod:`railwatch.imagery.blank`) are not valid. Raises :class:`SceneReadError` if the
    file turns out truncated.
    """
    indexes = list(scene.bands.rgb)
    blank_side = blank_side_px(grid.gsd)
    try:
        # closing(), not the dataset's own context, which would hold a default rasterio.Env
        # open across the yields and keep gdal_env's setting in force for the caller.
        with gdal_env():
            src = rasterio.open(scene.path)
        with closing(src):
            options: dict[str, object] = {
                "crs": grid.crs,
                "transform": grid.transform,
                "width": grid.cols,
                "height": grid.rows,
                "resampling": resampling_for(scene.native_gsd, grid.gsd),
            }
            if scene.nodata is not None:
                options.update(src_nodata=scene.nodata, nodata=scene.nodata)
                alpha = None
            elif scene.bands.alpha is not None:
                alpha = scene.bands.alpha  # GDAL warps the source alpha (0 outside the scene)
            else:
                options.update(add_alpha=True)
                alpha = src.count + 1
            with gdal_env():
                vrt = WarpedVRT(src, **options)
            with closing(vrt):
                for gw in windows:
                    w = gw.window
                    win = w.as_rasterio()
                    with gdal_env():
                        data = vrt.read(indexes, window=win)
                        if alpha is not None:
                            valid = vrt.read(alpha, window=win) > 0
                        else:
                            valid = vrt.read_masks(indexes[0], window=win) > 0
                    array = scene.stretch.apply(data)
                    yield Tile(
                        array=array,
                        valid=valid & ~blank_mask(array, blank_side),
                        transform=grid.window_transform(w),
                        crs=grid.crs,
                        acquired=scene.acquisition.time,
                        scene=scene.name,
                        core=gw.core,
                    )
    except RasterioError as exc:
        raise SceneReadError(
            scene.path, f"could not read pixels ({_first_line(exc)}); the file may be truncated"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check_georeference(path: Path, src: rasterio.io.DatasetReader) -> CRS:
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


def _band_layout(path: Path, src: rasterio.io.DatasetReader) -> BandLayout:
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


def _acquisition(path: Path, src: rasterio.io.DatasetReader, require_time: bool = True) -> Acquisition:
    found = acquisition.from_stac_sidecar(path)
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
        found = acquisition.from_file_name(path)
    if found is None and not require_time:
        found = Acquisition(acquisition.NO_TIME, acquisition.TimeSource.NONE, "no acquisition time")
    if found is None:
        sidecar = acquisition.stac_sidecar(path)
        stac = (f"the STAC item {sidecar.name} has no properties.datetime: add it"
                if sidecar.is_file() else "add a STAC item <stem>.json with properties.datetime")
        raise NoAcquisitionTimeError(
            path,
            f"no acquisition time: {stac}, set the ACQUISITION_DATETIME tag "
            "(gdal_edit.py -mo ACQUISITION_DATETIME=2023-10-05T02:15:00Z), "
            "or put the date in the file name (e.g. scene_20231005.tif)",
        )
    return found


def _stretch(path: Path, src: rasterio.io.DatasetReader, bands: BandLayout) -> Stretch:
    """Robust per-scene stretch from an overview; also proves the file's pixels can be read,
    and that they hold an image (not one value throughout: an empty export or a file whose
    blocks were never written)."""
    scale = max(src.width, src.height) / OVERVIEW_SIDE
    shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale))) if scale > 1 else (
        src.height,
        src.width,
    )
    try:
        data = src.read(list(bands.rgb), out_shape=(3, *shape), masked=True)
    except RasterioError as exc:
        raise SceneReadError(
            path, f"could not read pixels ({_first_line(exc)}); the file may be truncated or corrupt"
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
