"""Unknown is not zero: pixels with no signal (blank, constant, saturated) are not observed, and
a scene with no image at all is refused; none of it is ever counted as "no cars"."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from test_batch import LAT, LON

from railwatch.batch.job import BatchSettings, run_batch
from railwatch.detect.observation import observe_scene
from railwatch.errors import SceneError
from railwatch.imagery.scene import open_scene
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord


@pytest.fixture
def site(tmp_path):
    return load_site(write_site(tmp_path / "site.geojson", LON, LAT))


def _observe(site, path):
    scene = open_scene(path, site.crs, site.aoi_local)
    return observe_scene(scene, site, FakeDetector(site.crs))


def _overwrite(path, fill, rows=None, bands=None):
    """Set the pixels of ``rows`` (a slice; all by default) of the given bands to ``fill``."""
    with rasterio.open(path, "r+") as ds:
        data = ds.read()
        data[bands if bands is not None else slice(None), rows or slice(None)] = fill
        ds.write(data)


def test_a_normal_scene_is_wholly_observed(site, tmp_path):
    scene = write_scene(tmp_path / "scene_20231005.tif", "EPSG:32652", LON, LAT)
    assert _observe(site, scene.path).coverage == {"yard": pytest.approx(1.0, abs=1e-3)}


def test_an_all_zero_16_bit_rgbn_scene_is_refused_as_blank(site, tmp_path):
    path = write_scene(tmp_path / "scene_20231005.tif", "EPSG:32652", LON, LAT, dtype="uint16",
                       bands=4, colorinterp=["red", "green", "blue", "undefined"]).path
    _overwrite(path, 0)
    with pytest.raises(SceneError) as info:
        open_scene(path, site.crs, site.aoi_local)
    assert info.value.reason == "blank"
    assert "every pixel is 0" in info.value.message
    det = FakeDetector(site.crs)
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_batch([path], site, det, store, ModelRecord.unmeasured(det.model_sha256),
                            BatchSettings(progress=False))
        assert [r.reason for r in summary.rejected] == ["blank"]
        assert store.counted_scenes(det.model_sha256, site) == []


@pytest.mark.parametrize(("dtype", "fill"), [("uint8", 0), ("uint8", 255), ("uint16", 4095),
                                             ("float32", 0.5)])
def test_a_constant_half_of_the_zone_is_not_observed(site, tmp_path, dtype, fill):
    path = write_scene(tmp_path / "scene_20231005.tif", "EPSG:32652", LON, LAT, dtype=dtype).path
    _overwrite(path, fill, rows=slice(0, 300))  # the northern half: fill, saturation, a flat grey
    coverage = _observe(site, path).coverage["yard"]
    assert coverage == pytest.approx(0.5, abs=0.06)


def test_a_saturated_band_alone_still_shows_the_ground(site, tmp_path):
    path = write_scene(tmp_path / "scene_20231005.tif", "EPSG:32652", LON, LAT).path
    _overwrite(path, 255, bands=[0])  # red saturated, green and blue still vary
    assert _observe(site, path).coverage["yard"] == pytest.approx(1.0, abs=1e-3)


def test_a_huge_sparse_file_with_one_block_written_is_not_counted_as_empty(site, tmp_path):
    """A 40 000² px tiled GeoTIFF of which one 256² block holds data, far from the zone."""
    probe = write_scene(tmp_path / "probe.tif", "EPSG:32652", LON, LAT, size=16)
    with rasterio.open(probe.path) as src:
        t = src.transform
    size = 40_000
    from affine import Affine

    transform = Affine(t.a, 0, t.c + t.a * 8 - t.a * size / 2, 0, t.e,
                       t.f + t.e * 8 - t.e * size / 2)
    path = tmp_path / "sparse_20231005.tif"
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                   crs="EPSG:32652", transform=transform, tiled=True, blockxsize=256,
                   blockysize=256, sparse_ok=True)
    with rasterio.open(path, "w", **profile) as ds:
        block = np.random.default_rng(0).integers(0, 255, (3, 256, 256), dtype=np.uint8)
        ds.write(block, window=rasterio.windows.Window(0, 0, 256, 256))
    assert path.stat().st_size < 30_000_000  # sparse: almost nothing written
    try:
        obs = _observe(site, path)
    except SceneError as exc:
        assert exc.reason == "blank"
    else:
        assert obs.coverage["yard"] == 0.0


def test_blank_mask_marks_exactly_the_constant_squares():
    from railwatch.imagery.blank import blank_mask, blank_side_px

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 60, 80), dtype=np.uint8)
    img[:, 10:20, 30:40] = 0  # a 10 × 10 constant square
    img[:, 40:49, 5:75] = 200  # a bright "car" 9 px wide, 70 long: narrower than the square
    mask = blank_mask(img, 10)
    expected = np.zeros((60, 80), dtype=bool)
    expected[10:20, 30:40] = True
    np.testing.assert_array_equal(mask, expected)
    img[1, 12, 33] = 1  # one differing value in one band breaks the square
    assert not blank_mask(img, 10).any()
    assert blank_side_px(0.5) == 10 and blank_side_px(0.3) == 17 and blank_side_px(4.0) == 3
