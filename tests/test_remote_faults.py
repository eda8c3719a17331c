"""Remote scenes whose server misbehaves (a server of the tests' own on 127.0.0.1): the batch
always ends, within a bound each test states, and the scene is rejected as `unreachable` with
its URL and what went wrong; the other scenes are counted."""

from __future__ import annotations

import json
import time

import pytest
import rasterio.shutil
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from rangeserver import serve
from test_stac import LAT, LON, QUIET, cars, collection, item, tif

from railwatch.batch.job import run_batch
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord


def _batch(tmp_path, **misbehave):
    site = load_site(write_site(tmp_path / "site.geojson", LON, LAT))
    good = write_scene(tmp_path / "a_20231003.tif", "EPSG:32652", LON, LAT, seed=1).path
    plain = write_scene(tmp_path / "b_plain.tif", "EPSG:32652", LON, LAT, seed=2, size=900).path
    (tmp_path / "www").mkdir()
    rasterio.shutil.copy(plain, tmp_path / "www" / "b.tif", driver="COG", blocksize=256)
    det = FakeDetector(site.crs, cars(site))
    model = ModelRecord.unmeasured(det.model_sha256, "fake")
    lines: list[str] = []
    with serve(tmp_path / "www", **misbehave) as http, Store(tmp_path / "s.sqlite") as store:
        items = tmp_path / "items.json"
        items.write_text(json.dumps(collection(
            item("item-a", {"visual": tif(str(good))}),
            item("item-b", {"visual": tif(f"{http.url}/b.tif")}, "2023-10-04T02:00:00Z"),
        )))
        started = time.monotonic()
        summary = run_batch([items], site, det, store, model, QUIET, say=lines.append)
        took = time.monotonic() - started
    return summary, lines, took, http


@pytest.mark.slow  # each waits out GDAL's low-speed limit (3 tries of 15 s) and the probe (10 s)
@pytest.mark.parametrize(("misbehave", "says"), [
    ({"stall_after": 1}, "timed out"),  # answers the header, then goes silent
    ({"stall_after": 0}, "timed out"),  # silent from the first range read
])
def test_a_server_that_goes_silent_never_hangs_the_batch(tmp_path, allow_loopback, misbehave, says):
    summary, lines, took, http = _batch(tmp_path, **misbehave)
    assert took < 120, f"the batch took {took:.0f} s"  # GDAL's default would wait for ever
    assert [s.name for s in summary.counted] == ["item-a.tif"]
    assert [(r.source.name, r.reason) for r in summary.rejected] == [("item-b.tif", "unreachable")]
    (line,) = lines
    assert line.startswith(f"{http.url}/b.tif: unreachable:") and says in line.lower(), line
    assert "see previous exception" not in line.lower()


@pytest.mark.parametrize(("misbehave", "says"), [
    ({"fail_after": 0}, "500"),  # on the header read
    ({"fail_after": 1}, "500"),  # on a later range
    ({"cut_after": 1}, "broke off"),  # the connection closed mid-body
])
def test_remote_read_failures_are_unreachable_with_the_http_status_or_network_error(
        tmp_path, allow_loopback, misbehave, says):
    summary, lines, took, http = _batch(tmp_path, **misbehave)
    assert took < 120, f"the batch took {took:.0f} s"
    assert [(r.source.name, r.reason) for r in summary.rejected] == [("item-b.tif", "unreachable")]
    (line,) = lines
    assert line.startswith(f"{http.url}/b.tif: unreachable:") and says in line, line
    assert "see previous exception" not in line.lower() and "supported file format" not in line
