"""What a run touches besides its inputs: nothing outside --out and the store (no telemetry
database under the home folder), a bounded GDAL block cache, no environment changed at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from conftest import write_scene, write_site
from test_batch import LAT, LON

from railwatch.imagery import gdal as gdal_module
from railwatch.imagery import scene as scene_module
from railwatch.imagery.grid import SiteGrid, plan_windows
from railwatch.imagery.scene import open_scene
from railwatch.imagery.warp import read_tiles
from railwatch.site import load_site

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("cluster", [[], pytest.param(["--cluster", "local:1"], marks=pytest.mark.slow)])
def test_count_writes_nothing_outside_out_and_the_store(tmp_path, cluster):
    """The shipped ONNX model on a small scene, in a fresh process with an empty home folder and
    temp folder: nothing is left in either (matplotlib's font cache and Dask's scratch space
    live in temporary folders of the run's own, removed at the end)."""
    site = write_site(tmp_path / "site.geojson", LON, LAT)
    images = tmp_path / "images"
    images.mkdir()
    write_scene(images / "scene_20231005.tif", "EPSG:32652", LON, LAT)
    home, cwd, tmp = (tmp_path / n for n in ("home", "cwd", "tmp"))
    for d in (home, cwd, tmp):
        d.mkdir()
    before = _files(images)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "railwatch.cli", "count", str(images), "--site", str(site),
         "--out", str(tmp_path / "out"), "--db", str(tmp_path / "store.sqlite"), "--no-progress",
         *cluster],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _files(home) == [], "written under the home folder"
    assert _files(cwd) == [] and _files(tmp) == [] and _files(images) == before
    assert (tmp_path / "out" / "run.json").is_file() and (tmp_path / "store.sqlite").is_file()


def test_the_scene_loader_bounds_the_gdal_block_cache(tmp_path, monkeypatch):
    from rasterio.env import get_gdal_config

    site = load_site(write_site(tmp_path / "site.geojson", LON, LAT))
    path = write_scene(tmp_path / "scene_20231005.tif", "EPSG:32652", LON, LAT).path
    seen = []
    real_open = rasterio.open

    def spy(*args, **kwargs):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return real_open(*args, **kwargs)

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    outside = get_gdal_config("GDAL_CACHEMAX")  # GDAL's default: 5 % of the RAM
    monkeypatch.setattr(scene_module.rasterio, "open", spy)
    scene = open_scene(path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, 0.5)
    list(read_tiles(scene, grid, plan_windows(grid, site.counting_region())))
    bound = gdal_module.GDAL_CACHE_MB * 2**20
    assert len(seen) == 2 and all(v is not None and int(v) == bound for v in seen), seen
    assert get_gdal_config("GDAL_CACHEMAX") == outside != bound  # set for the loader only
    assert "GDAL_CACHEMAX" not in os.environ


def test_importing_railwatch_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); import railwatch.cli, railwatch.imagery.scene, "
            "railwatch.detect.detector, railwatch.batch.job, railwatch.report.outputs; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"
