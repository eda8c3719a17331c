"""The scene loader: open any raster GDAL reads, check it, and warp windows of it onto the site grid.

``open_scene`` reads metadata and a small overview only (time, bands, ground sample distance,
footprint, stretch) and raises a :class:`~railwatch.errors.SceneError` subclass for anything
that makes the scene unusable. ``read_tiles`` then warps only the windows around the counting
areas onto the site grid, each from just the source pixels under it: memory is bounded by one
window, not the scene, and a remote Cloud-Optimized GeoTIFF is read by byte ranges.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely.geometry import Polygon

from railwatch.errors import (
    BlankSceneError,
    ImpossibleTimeError,
    NoAcquisitionTimeError,
    NoGeoreferenceError,
    NoOverlapError,
    ResolutionTooCoarseError,
    SceneReadError,
    SceneUnreachableError,
    UnsupportedBandsError,
)
from railwatch.imagery import acquisition
from railwatch.imagery.acquisition import Acquisition
from railwatch.imagery.blank import blank_mask, blank_side_px
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.source import SceneSource
from railwatch.imagery.tile import PixelWindow, Tile, map_to_pixels, pixels_to_map

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


#: GDAL settings for remote reads, unless the environment sets them: do not list the remote
#: "directory" looking for side-car files (one request saved per scene, and many servers
#: refuse listings).
REMOTE_GDAL_DEFAULTS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # GDAL waits for ever on a server that stops answering: bound every request. A connection
    # takes at most 10 s; a transfer slower than 1 byte/s for 15 s is abandoned, as is one
    # request longer than 120 s (a window is a few MB at most); failed requests are retried twice.
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_TIME": "15",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_TIMEOUT": "120",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def gdal_env(source: SceneSource | None = None) -> rasterio.Env:
    """The GDAL settings railwatch reads scenes under: a block cache of :data:`GDAL_CACHE_MB`,
    and for a remote ``source`` :data:`REMOTE_GDAL_DEFAULTS`.

    Entered around each open and read (never left open across a ``yield``), so no setting
    leaks into the caller; ``os.environ`` is never changed, and a setting the environment or
    an enclosing ``rasterio.Env`` makes wins.
    """
    outer = rasterio.env.getenv() if rasterio.env.hasenv() else {}
    options: dict[str, object] = {}
    if "GDAL_CACHEMAX" not in os.environ and "GDAL_CACHEMAX" not in outer:
        options["GDAL_CACHEMAX"] = GDAL_CACHE_MB * 2**20  # rasterio takes bytes
    if source is not None and source.remote:
        options.update({k: v for k, v in REMOTE_GDAL_DEFAULTS.items()
                        if k not in os.environ and k not in outer})
    return rasterio.Env(**options)


def _in_gdal_env(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with gdal_env():
            return fn(*args, **kwargs)

    return wrapper


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
            raise _unreachable(source, exc, "cannot read it over the network", "check the URL, the "
                               "network and GDAL's credentials (AWS_*, GDAL_HTTP_*), and that it is a "
                               "GeoTIFF/COG") from exc
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
    """Warp ``windows`` of the scene onto ``grid`` and yield them as tiles.

    Each window is warped (:func:`rasterio.warp.reproject`, bilinear or averaging, see
    :func:`resampling_for`) from only the source pixels under it, read in one request with the
    source's validity (nodata, alpha band or mask) as an alpha band: a pixel is valid, as GDAL's
    warper decides, where the source pixel under it is, and invalid outside the scene. Pixels
    with no signal (blank, constant or saturated over a square wider than a car,
    :mod:`railwatch.imagery.blank`) are not valid either. Raises :class:`SceneReadError` if the
    file turns out truncated, or a remote scene stops answering.
    """
    blank_side = blank_side_px(grid.gsd)
    try:
        # closing(), not the dataset's own context, which would hold a default rasterio.Env
        # open across the yields and keep gdal_env's setting in force for the caller.
        with gdal_env(scene.source):
            src = rasterio.open(scene.source.gdal_path)
        with closing(src):
            same_crs = CRS.from_user_input(src.crs) == grid.crs
            to_source = None if same_crs else Transformer.from_crs(
                grid.crs.to_wkt(), src.crs.to_wkt(), always_xy=True)
            for gw in windows:
                with gdal_env(scene.source):
                    data, valid = _warp_window(scene, src, grid, gw.window, to_source)
                array = scene.stretch.apply(data)
                yield Tile(
                    array=array,
                    valid=valid & ~blank_mask(array, blank_side),
                    transform=grid.window_transform(gw.window),
                    crs=grid.crs,
                    acquired=scene.acquisition.time,
                    scene=scene.name,
                    core=gw.core,
                )
    except RasterioError as exc:
        if scene.source.remote:
            raise _unreachable(scene.source, exc, "could not read pixels over the network",
                               "try again later, or check the server") from exc
        raise SceneReadError(
            scene.source.href, f"could not read pixels ({_first_line(exc)}); the file may be truncated"
        ) from exc


def _warp_window(
    scene: Scene, src: rasterio.io.DatasetReader, grid: SiteGrid, window: PixelWindow,
    to_source: Transformer | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One window of the grid: ``(3, rows, cols)`` pixels (the scene's dtype where it holds 0-255)
    and the valid mask.

    Pixels no valid source pixel reaches hold the scene's nodata value (0 without one).
    ``to_source`` maps the grid's CRS to the scene's (None: the same CRS).
    """
    # The alpha band travels in the pixels' array: a type that holds 0-255 (float32 if not).
    dtype = np.dtype(scene.dtype) if np.can_cast(np.uint8, scene.dtype) else np.dtype(np.float32)
    fill = scene.nodata if scene.nodata is not None and np.isfinite(scene.nodata) else 0
    source_window = _source_window(src, grid, window, scene.native_gsd, to_source)
    if source_window is None:
        return (np.full((3, window.rows, window.cols), fill, dtype=dtype),
                np.zeros((window.rows, window.cols), dtype=bool))
    indexes = list(scene.bands.rgb)
    pixels = np.empty((4, int(source_window.height), int(source_window.width)), dtype=dtype)
    pixels[:3] = src.read(indexes, window=source_window)
    # GDAL's mask of the first colour band: the alpha band, the internal mask or nodata.
    pixels[3] = src.read_masks(indexes[0], window=source_window)
    src_transform = src.transform @ Affine.translation(source_window.col_off, source_window.row_off)
    dst_transform = grid.window_transform(window)
    resampling = resampling_for(scene.native_gsd, grid.gsd)
    if (resampling is Resampling.bilinear and to_source is None
            and _north_up(src_transform) and _north_up(dst_transform)):
        return _bilinear_north_up(pixels, ~src_transform @ dst_transform, window, fill)
    out = np.empty((4, window.rows, window.cols), dtype=dtype)
    out[:3] = fill
    out[3] = 0
    reproject(
        pixels, out,
        src_transform=src_transform, src_crs=src.crs,
        dst_transform=dst_transform, dst_crs=grid.crs,
        resampling=resampling, src_alpha=4, dst_alpha=4, init_dest_nodata=False,
    )
    return out[:3], out[3] > 0


def _north_up(t: Affine) -> bool:
    return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0


def _bilinear_north_up(
    pixels: np.ndarray, to_source: Affine, window: PixelWindow, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear resampling where the grid maps onto the source by a scale and a shift (same CRS,
    both north-up), as GDAL's warper does it, at about a third of its cost.

    ``pixels`` is ``(4, h, w)``, band 4 the source's validity (0-255); ``to_source`` maps grid
    window pixels to source pixels. OpenCV's ``warpAffine`` interpolates alpha-premultiplied
    float pixels and the alpha itself; their ratio is GDAL's value (invalid source pixels take
    no part, the valid ones' weights are renormalised), rounded as GDAL rounds. A pixel is
    valid, as in GDAL, where the source pixel under its centre is valid.
    """
    import cv2

    rows, cols = window.rows, window.cols
    # OpenCV puts pixel centres on integer coordinates, GDAL pixel corners.
    m = Affine.translation(-0.5, -0.5) @ to_source @ Affine.translation(0.5, 0.5)
    matrix = np.array([[m.a, m.b, m.c], [m.d, m.e, m.f]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    def warp(band: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.warpAffine(band, matrix, (cols, rows), flags=flags,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0),
                          dtype=np.float32)

    alpha = pixels[3].astype(np.float32) * np.float32(1 / 255)
    all_valid = bool((pixels[3] == 255).all())  # then premultiplying changes nothing
    density = warp(alpha)
    # GDAL's rule: a pixel is valid where the source pixel under its centre is valid.
    h, w = pixels.shape[1:]
    x = np.floor(to_source.a * (np.arange(cols) + 0.5) + to_source.c).astype(np.int64)
    y = np.floor(to_source.e * (np.arange(rows) + 0.5) + to_source.f).astype(np.int64)
    inside = ((y >= 0) & (y < h))[:, None] & ((x >= 0) & (x < w))[None, :]
    under = pixels[3][np.ix_(np.clip(y, 0, h - 1), np.clip(x, 0, w - 1))] > 0
    valid = inside & under & (density > 0)
    scale = np.zeros_like(density)
    np.divide(1.0, density, out=scale, where=valid)
    dtype = pixels.dtype
    out = np.empty((3, rows, cols), dtype=dtype)  # band by band, as GDAL's reads give it
    for b in range(3):
        band = pixels[b].astype(np.float32)
        if not all_valid:
            band *= alpha
        value = warp(band)
        value *= scale  # 0 where not valid
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value += 0.5
            np.floor(value, out=value)
            np.clip(value, info.min, info.max, out=value)
        out[b] = value
    if fill != 0 and not valid.all():
        out[:, ~valid] = np.asarray(fill).astype(dtype)
    return out, valid


def _source_window(
    src: rasterio.io.DatasetReader, grid: SiteGrid, window: PixelWindow, native_gsd: float,
    to_source: Transformer | None,
) -> Window | None:
    """The source pixels under a grid window (its outline, densified, taken into the source's
    pixels: any CRS, rotation or flip), grown by the resampling kernel's reach; None if the
    window lies outside the scene. ``to_source`` maps the grid's CRS to the source's (None: same)."""
    x0, y0, x1, y1 = grid.window_bounds(window)
    t = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    if to_source is not None:
        xs, ys = to_source.transform(xs, ys)
    pixels = map_to_pixels(src.transform, np.column_stack([xs, ys]))
    cols, rows = pixels[:, 0], pixels[:, 1]
    ok = np.isfinite(cols) & np.isfinite(rows)
    if not ok.any():
        return None
    pad = 2 + math.ceil(grid.gsd / native_gsd)  # bilinear reach, or the averaging footprint
    c0 = max(0, math.floor(cols[ok].min()) - pad)
    r0 = max(0, math.floor(rows[ok].min()) - pad)
    c1 = min(src.width, math.ceil(cols[ok].max()) + pad)
    r1 = min(src.height, math.ceil(rows[ok].max()) + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _unreachable(source: SceneSource, exc: BaseException, what: str, then: str) -> SceneUnreachableError:
    """A remote read failure as ``unreachable``, saying what the server or the network did (GDAL
    says only "Read failed" or "not recognized as a supported format": a probe asks)."""
    from railwatch.imagery.network import probe

    answer = probe(source.href)
    gdal = _gdal_reason(exc)
    if answer is None:
        answer = ("the transfer broke off (the connection was closed or stalled mid-read; the "
                  f"server answers again now): {gdal}")
    return SceneUnreachableError(source.href, f"{what}: {answer}; {then}")


def _gdal_reason(exc: BaseException) -> str:
    """The most telling line of a GDAL error and those chained to it (rasterio's "See previous
    exception for details" names one that is never shown)."""
    lines: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(lines) < 6:
        line = _first_line(seen)
        if "see previous exception" not in line.lower():
            lines.append(line)
        seen = seen.__cause__ or seen.__context__
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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
            raise _unreachable(source, exc, "could not read pixels over the network",
                               "try again later, or check the server") from exc
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
