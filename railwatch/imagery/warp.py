"""Reading a scene onto the site grid: each window warped from only the source pixels under it.

``read_tiles`` warps the windows around the counting areas onto the site grid: memory is bounded
by one window, not the scene, and a remote Cloud-Optimized GeoTIFF is read by byte ranges. A
north-up source on the grid's own CRS takes a fast bilinear path that gives GDAL's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import closing

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject
from rasterio.windows import Window

from railwatch.errors import SceneReadError
from railwatch.imagery.blank import blank_mask, blank_side_px
from railwatch.imagery.gdal import first_line, gdal_env, unreachable
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import Scene
from railwatch.imagery.tile import PixelWindow, Tile, map_to_pixels

__all__ = ["read_tiles", "resampling_for"]


def resampling_for(native_gsd: float, grid_gsd: float) -> Resampling:
    """Bilinear when up-sampling or near the native scale; averaging when shrinking by more
    than 1.5× (bilinear would alias fine texture into noise the model never saw)."""
    return Resampling.average if grid_gsd > 1.5 * native_gsd else Resampling.bilinear


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
            raise unreachable(scene.source, exc, "could not read pixels over the network",
                               "try again later, or check the server") from exc
        raise SceneReadError(
            scene.source.href, f"could not read pixels ({first_line(exc)}); the file may be truncated"
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
