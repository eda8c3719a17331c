from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import CAR_LENGTH_M, write_site
from pyproj import Transformer

from railwatch.errors import (
    BadSidecarError,
    ImpossibleTimeError,
    NoAcquisitionTimeError,
    NoGeoreferenceError,
    NoOverlapError,
    ResolutionTooCoarseError,
    SceneError,
    SceneReadError,
    UnsupportedBandsError,
)
from railwatch.imagery.grid import SiteGrid, plan_windows
from railwatch.imagery.scene import open_scene
from railwatch.imagery.warp import read_tiles
from railwatch.site import load_site

GSD = 0.5
TUMANGANG = (130.6081, 42.4214)
ZURICH = (8.5403, 47.3779)


def _bright_centroid(scene_path: Path, site_path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    site = load_site(site_path)
    scene = open_scene(scene_path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, GSD)
    region = site.counting_region().intersection(scene.footprint)
    tiles = list(read_tiles(scene, grid, plan_windows(grid, region, block=512, halo=64)))
    assert tiles, "no window read"
    points = []
    for tile in tiles:
        rows, cols = np.nonzero((tile.array[0] > 145) & tile.valid)
        core = tile.core
        keep = (
            (rows >= core.row_off) & (rows < core.row_off + core.rows)
            & (cols >= core.col_off) & (cols < core.col_off + core.cols)
        )
        xy = np.column_stack([cols[keep] + 0.5, rows[keep] + 0.5])
        points.append(tile.pixels_to_map(xy))
    pts = np.concatenate(points)
    return pts.mean(axis=0), pts, len(tiles)


@pytest.mark.parametrize(
    ("crs", "where", "site_name"),
    [
        ("EPSG:32652", TUMANGANG, "tumangang_khasan"),
        ("EPSG:4326", TUMANGANG, "tumangang_khasan"),
        ("EPSG:3857", TUMANGANG, "tumangang_khasan"),
        ("EPSG:2056", ZURICH, None),
    ],
)
def test_car_lands_within_one_pixel_in_every_crs(make_scene, tmp_path, crs, where, site_name):
    lon, lat = where
    site_path = site_name or write_site(tmp_path / "zurich.geojson", lon, lat)
    scene = make_scene(crs=crs, lon=lon, lat=lat)
    centroid, pts, _ = _bright_centroid(scene.path, site_path)
    site = load_site(site_path)
    expected = Transformer.from_crs("EPSG:4326", site.crs.to_wkt(), always_xy=True).transform(lon, lat)
    error = np.hypot(*(centroid - np.asarray(expected)))
    assert error < GSD, f"{crs}: car centre off by {error:.2f} m"
    # And it is the right size: about 19.2 m long on the site grid.
    extent = pts.max(axis=0) - pts.min(axis=0)
    assert abs(max(extent) - CAR_LENGTH_M) < 2 * GSD


def test_only_windows_near_counting_areas_are_read(make_scene):
    scene = make_scene(size=3000, gsd_m=0.5)  # 1.5 km square around Tumangang
    site = load_site("tumangang_khasan")
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, GSD)
    region = site.counting_region().intersection(sc.footprint)
    windows = plan_windows(grid, region, block=256, halo=32)
    read = sum(w.window.rows * w.window.cols for w in windows)
    scene_px = 3000 * 3000
    assert read < 0.35 * scene_px
    assert max(w.window.rows * w.window.cols for w in windows) <= (256 + 2 * 32) ** 2
    for window, tile in zip(windows[:2], read_tiles(sc, grid, windows[:2]), strict=True):
        assert tile.shape == (window.window.rows, window.window.cols)
        assert tile.transform == grid.window_transform(window.window)


def test_uint16_and_float_are_stretched_to_uint8(make_scene):
    site = load_site("tumangang_khasan")
    for dtype in ("uint16", "float32"):
        scene = make_scene(name=f"s_{dtype}_20231005.tif", dtype=dtype)
        sc = open_scene(scene.path, site.crs, site.aoi_local)
        assert sc.stretch.high[0] > sc.stretch.low[0]
        grid = SiteGrid.covering(site.aoi_local, site.crs, GSD)
        windows = plan_windows(grid, site.counting_region().intersection(sc.footprint))
        tile = next(read_tiles(sc, grid, windows))
        values = tile.array[0][tile.valid]
        assert tile.array.dtype == np.uint8
        assert values.max() >= 250 and values.min() <= 10  # full range used


@pytest.mark.parametrize(
    ("bands", "colorinterp", "descriptions", "expected"),
    [
        (1, None, None, (1, 1, 1)),
        (3, None, None, (1, 2, 3)),
        (4, ["red", "green", "blue", "alpha"], None, (1, 2, 3)),
        (4, ["blue", "green", "red", "undefined"], None, (3, 2, 1)),
        (4, ["gray", "undefined", "undefined", "undefined"], ["Blue", "Green", "Red", "NIR"], (3, 2, 1)),
        (4, ["gray", "undefined", "undefined", "undefined"], ["red", "green", "blue", "nir"], (1, 2, 3)),
    ],
)
def test_band_layouts(make_scene, bands, colorinterp, descriptions, expected):
    site = load_site("tumangang_khasan")
    scene = make_scene(bands=bands, colorinterp=colorinterp, descriptions=descriptions, dtype="uint16")
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.bands.rgb == expected


def test_unsupported_band_layout(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(bands=2, colorinterp=["gray", "undefined"], dtype="uint16")
    with pytest.raises(UnsupportedBandsError, match=r"scene_20231005.tif.*red, green and blue"):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_nodata_and_footprint_make_the_valid_mask(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(nodata=0)
    with rasterio.open(scene.path, "r+") as ds:
        data = ds.read()
        data[:, :, :100] = 0
        ds.write(data)
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, GSD)
    tiles = list(read_tiles(sc, grid, plan_windows(grid, site.counting_region().intersection(sc.footprint))))
    valid = sum(int(t.valid[t.core.slices].sum()) for t in tiles)
    area = sum(t.core.rows * t.core.cols for t in tiles)
    # The scene is 240 m square, 200 m of it not nodata, inside windows much larger than it.
    assert 0 < valid < area
    expected = sc.footprint.intersection(site.aoi_local).area * (500 / 600) / GSD**2
    assert valid <= expected * 1.05


@pytest.mark.parametrize(("dtype", "nodata"), [("uint8", 0), ("uint16", None)])
def test_the_fast_bilinear_path_gives_gdal_warpers_pixels_and_mask(make_scene, monkeypatch, dtype, nodata):
    """Same CRS, north-up: OpenCV resampling stands in for GDAL's warper; same valid mask, same
    values but for a rare sample that floating point rounds to the next level."""
    import railwatch.imagery.warp as warp_module

    site = load_site("tumangang_khasan")
    scene = make_scene(nodata=nodata, dtype=dtype, gsd_m=0.4, size=700)
    if nodata is not None:
        with rasterio.open(scene.path, "r+") as ds:
            data = ds.read()
            data[:, 100:260, 50:333] = nodata  # a hole with edges inside the windows
            ds.write(data)
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, 0.3)
    windows = plan_windows(grid, sc.footprint.buffer(30).intersection(site.aoi_local), block=256,
                           halo=32)
    fast_calls = []
    real = warp_module._bilinear_north_up
    monkeypatch.setattr(warp_module, "_bilinear_north_up",
                        lambda *a: fast_calls.append(1) or real(*a))
    fast = list(read_tiles(sc, grid, windows))
    assert len(fast_calls) == len(windows) > 4
    assert all(t.array.flags.c_contiguous for t in fast)  # band by band, as GDAL reads give it
    monkeypatch.setattr(warp_module, "_north_up", lambda t: False)
    warped = list(read_tiles(sc, grid, windows))
    assert len(fast_calls) == len(windows)  # the second read went through GDAL
    valid = np.concatenate([t.valid.ravel() for t in fast])
    assert np.array_equal(valid, np.concatenate([t.valid.ravel() for t in warped]))
    assert 0 < valid.sum() < valid.size  # edges of the scene (and of the hole) are in the windows
    diff = np.concatenate([(a.array.astype(int) - b.array.astype(int))[:, a.valid].ravel()
                           for a, b in zip(fast, warped, strict=True)])
    assert np.abs(diff).max(initial=0) <= 1 and np.count_nonzero(diff) <= diff.size * 1e-3


# --- refusals: each names the file and says what to do -------------------------------------


def test_not_a_raster(tmp_path):
    site = load_site("tumangang_khasan")
    bad = tmp_path / "notes_20231005.tif"
    bad.write_text("this is not an image")
    with pytest.raises(SceneReadError, match=r"notes_20231005.tif: not a raster"):
        open_scene(bad, site.crs, site.aoi_local)


def test_truncated_file(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene()
    raw = scene.path.read_bytes()
    scene.path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(SceneReadError, match=r"scene_20231005.tif: .*(truncated|not a raster)"):
        sc = open_scene(scene.path, site.crs, site.aoi_local)
        grid = SiteGrid.covering(site.aoi_local, site.crs, GSD)
        list(read_tiles(sc, grid, plan_windows(grid, site.counting_region().intersection(sc.footprint))))


def test_no_georeference(tmp_path):
    site = load_site("tumangang_khasan")
    path = tmp_path / "plain_20231005.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=3, dtype="uint8") as ds:
        ds.write(np.zeros((3, 10, 10), np.uint8))
    with pytest.raises(NoGeoreferenceError, match=r"plain_20231005.tif: has no georeferencing"):
        open_scene(path, site.crs, site.aoi_local)


def test_no_overlap(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(lon=127.0, lat=37.5)  # Seoul
    with pytest.raises(NoOverlapError, match=r"does not overlap the site's area of interest"):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_no_acquisition_time(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="scene.tif")
    with pytest.raises(NoAcquisitionTimeError, match=r"scene.tif: no acquisition time: add a STAC"):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_an_impossible_acquisition_time_is_refused_with_the_time_found(make_scene):
    site = load_site("tumangang_khasan")
    future = make_scene(name="scene_20231005.tif")
    future.path.with_suffix(".json").write_text(
        json.dumps({"type": "Feature", "properties": {"datetime": "2031-06-01T02:15:00Z"}}))
    with pytest.raises(ImpossibleTimeError,
                       match=r"scene_20231005.tif: acquisition time 2031-06-01T02:15:00\+00:00 \(.*\) is "
                             r"after the time of this run"):
        open_scene(future.path, site.crs, site.aoi_local)
    past = make_scene(name="old.tif", tags={"ACQUISITION_DATETIME": "1959-05-01T00:00:00Z"})
    with pytest.raises(ImpossibleTimeError, match=r"1959-05-01T00:00:00\+00:00 .*before the first "
                                                  r"satellite image \(1960-08-18\)"):
        open_scene(past.path, site.crs, site.aoi_local)
    assert ImpossibleTimeError.reason == "impossible_time" and issubclass(ImpossibleTimeError, SceneError)


def test_too_coarse(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(gsd_m=3.0, size=200)
    with pytest.raises(ResolutionTooCoarseError, match=r"3.00 m .*cannot be resolved; PlanetScope"):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_every_refusal_is_a_scene_error_with_a_reason():
    for cls in (SceneReadError, NoGeoreferenceError, NoOverlapError, NoAcquisitionTimeError,
                ResolutionTooCoarseError, UnsupportedBandsError):
        assert issubclass(cls, SceneError)
        assert cls.reason != SceneError.reason


# --- acquisition time sources and their precedence ------------------------------------------


def test_time_from_stac_sidecar_beats_tags_and_name(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="scene_20230101.tif", tags={"ACQUISITION_DATETIME": "2023-02-02T00:00:00Z"})
    scene.path.with_suffix(".json").write_text(
        json.dumps({"type": "Feature", "properties": {"datetime": "2023-10-05T02:15:30Z"}})
    )
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.acquisition.time.isoformat() == "2023-10-05T02:15:30+00:00"
    assert sc.acquisition.source == "stac"


def test_time_from_tags_beats_name(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="scene_20230101.tif", tags={"TIFFTAG_DATETIME": "2023:10:05 02:15:00"})
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.acquisition.time.isoformat() == "2023-10-05T02:15:00+00:00"
    assert sc.acquisition.source == "tag"
    assert sc.acquisition.detail == "TIFFTAG_DATETIME"


def test_acquisition_tag_beats_tiff_datetime(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(
        name="scene.tif",
        tags={"TIFFTAG_DATETIME": "2024:01:01 00:00:00", "ACQUISITION_DATETIME": "2023-10-05T11:15:00+09:00"},
    )
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.acquisition.time.isoformat() == "2023-10-05T02:15:00+00:00"


@pytest.mark.parametrize(
    ("name", "iso"),
    [
        ("tumangang_20231005.tif", "2023-10-05T00:00:00+00:00"),
        ("SkySat_2023-10-05_x.tif", "2023-10-05T00:00:00+00:00"),
        ("scene_20231005T021500.tif", "2023-10-05T02:15:00+00:00"),
        ("scene_20231005_0215.tif", "2023-10-05T02:15:00+00:00"),
    ],
)
def test_time_from_file_name(make_scene, name, iso):
    site = load_site("tumangang_khasan")
    scene = make_scene(name=name)
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.acquisition.time.isoformat() == iso
    assert sc.acquisition.source == "file_name"


def test_bad_stac_sidecar_is_refused_not_skipped_for_the_next_source(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="scene_20231005.tif")
    scene.path.with_suffix(".json").write_text("{not json")
    with pytest.raises(BadSidecarError, match="malformed STAC item: not valid JSON"):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_a_json_without_a_time_beside_the_scene_falls_through_to_the_next_source(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="scene_20231005.tif")
    scene.path.with_suffix(".json").write_text('{"type": "Feature", "properties": {}}')
    sc = open_scene(scene.path, site.crs, site.aoi_local)
    assert sc.acquisition.source == "file_name"


def test_detection_may_go_without_a_time_but_counting_may_not(make_scene):
    site = load_site("tumangang_khasan")
    scene = make_scene(name="aerial.tif")
    sc = open_scene(scene.path, site.crs, site.aoi_local, require_time=False)
    assert sc.acquisition.source == "none"
    with pytest.raises(NoAcquisitionTimeError):
        open_scene(scene.path, site.crs, site.aoi_local)


def test_fine_imagery_is_averaged_not_aliased_when_shrunk(make_scene):
    from rasterio.enums import Resampling

    from railwatch.imagery.warp import resampling_for

    assert resampling_for(0.1, 0.3) is Resampling.average
    assert resampling_for(0.25, 0.3) is Resampling.bilinear
    assert resampling_for(0.5, 0.3) is Resampling.bilinear
    site = load_site("tumangang_khasan")
    fine = make_scene(gsd_m=0.1, size=1500)  # 150 m at 0.1 m, the bright car in the middle
    sc = open_scene(fine.path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, 0.3)
    tiles = list(read_tiles(sc, grid, plan_windows(grid, site.counting_region().intersection(sc.footprint))))
    ground = np.concatenate([t.array[0][t.valid & (t.array[0] < 150)] for t in tiles])
    assert ground.std() < 6 / np.sqrt(3)  # noise of σ=6 averaged over ~9 pixels, not sampled
