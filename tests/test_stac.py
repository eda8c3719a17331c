"""Scenes from STAC Items and ItemCollections, read locally and over HTTP (a test server on
127.0.0.1 answering range requests, as a COG host does)."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest
import rasterio.shutil
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from rangeserver import serve
from shapely.geometry import Point

from railwatch.batch.job import BatchSettings, run_batch
from railwatch.cli import main
from railwatch.imagery.source import SceneSource
from railwatch.imagery.stac import StacItemError, read_stac
from railwatch.site import Site, load_site
from railwatch.store.database import Store
from railwatch.store.identity import scene_identity
from railwatch.store.records import ModelRecord

LON, LAT = 130.6081, 42.4214
QUIET = BatchSettings(progress=False)


def item(item_id: str, assets: dict[str, dict[str, object]], when: str = "2023-10-03T01:02:03Z") -> dict:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id,
        "geometry": {"type": "Point", "coordinates": [LON, LAT]}, "bbox": [LON, LAT, LON, LAT],
        "properties": {"datetime": when}, "links": [], "assets": assets,
    }


def tif(href: str, **extra: object) -> dict[str, object]:
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized", **extra}


def collection(*items: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(items)}


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cars(site: Site) -> list[tuple[float, float, str]]:
    c = site.to_local(Point(LON, LAT))
    return [(c.x - 60 + 20.2 * k, c.y, "covered_car") for k in range(6)]


def test_asset_choice_relative_hrefs_checksums_and_time(tmp_path):
    doc = collection(
        item("a", {"thumbnail": {"href": "a.png", "type": "image/png"}, "analytic": tif("a.tif"),
                   "visual": tif("sub/a_visual.tif", **{"file:checksum": "1220abcd"})}),
        item("b", {"data": tif("https://example.com/b.tif")}, "2023-10-04T00:00:00+09:00"),
        item("c", {"notes": {"href": "c.txt", "type": "text/plain"}}),
    )
    path = tmp_path / "items.json"
    path.write_text(json.dumps(doc))
    found = read_stac(path)
    a, b = found.sources
    assert a.href == str(tmp_path / "sub" / "a_visual.tif") and a.name == "a.tif"
    assert a.checksum == "1220abcd" and a.item_id == "a" and not a.remote
    assert a.acquisition is not None and a.acquisition.time.isoformat() == "2023-10-03T01:02:03+00:00"
    assert b.remote and b.gdal_path == "/vsicurl/https://example.com/b.tif" and b.name == "b.tif"
    assert b.acquisition is not None and b.acquisition.time.isoformat() == "2023-10-03T15:00:00+00:00"
    [problem] = found.problems
    assert problem.reason == "bad_stac_item" and "--asset" in problem.message and "#c" in problem.path
    # --asset picks another asset; an item without it is a problem, not a crash.
    chosen = read_stac(path, asset="analytic")
    assert [s.href for s in chosen.sources] == [str(tmp_path / "a.tif")]
    assert len(chosen.problems) == 2
    s3 = SceneSource("s3://bucket/key/scene.tif", "scene.tif", item_id="x")
    assert s3.gdal_path == "/vsis3/bucket/key/scene.tif"
    # A remote scene with a checksum is identified without asking the server.
    ident = scene_identity(SceneSource("http://192.0.2.1/x.tif", "x.tif", item_id="x",
                                       checksum="1220ab"))
    assert len(ident) == 64


def test_not_stac_json_is_refused(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"type": "Topology"}))
    with pytest.raises(StacItemError, match="not a STAC Item"):
        read_stac(path)


def test_an_item_collection_mixing_a_local_file_an_http_cog_and_an_unreachable_url(
    tmp_path, allow_loopback
):
    site = load_site(write_site(tmp_path / "site.geojson", LON, LAT))
    (tmp_path / "local").mkdir()
    local = write_scene(tmp_path / "local" / "a.tif", "EPSG:32652", LON, LAT, seed=1).path
    plain = write_scene(tmp_path / "b_plain.tif", "EPSG:32652", LON, LAT, seed=2, size=900).path
    (tmp_path / "www").mkdir()
    rasterio.shutil.copy(plain, tmp_path / "www" / "b.tif", driver="COG", blocksize=256)
    dead = f"http://127.0.0.1:{closed_port()}/c.tif"
    det = FakeDetector(site.crs, cars(site))
    model = ModelRecord.unmeasured(det.model_sha256, "fake")
    lines: list[str] = []
    with serve(tmp_path / "www") as http, Store(tmp_path / "s.sqlite") as store:
        items = tmp_path / "items.json"
        items.write_text(json.dumps(collection(
            item("item-a", {"visual": tif("local/a.tif")}),
            item("item-b", {"visual": tif(f"{http.url}/b.tif")}, "2023-10-04T02:00:00Z"),
            item("item-c", {"visual": tif(dead)}),
            # With a checksum the server is not asked for an ETag: GDAL finds it unreachable.
            item("item-d", {"visual": tif(f"{dead}?d", **{"file:checksum": "1220ab"})}),
        )))
        summary = run_batch([items], site, det, store, model, QUIET, say=lines.append)
        assert sorted(s.name for s in summary.counted) == ["item-a.tif", "item-b.tif"]
        assert [(r.source.name, r.reason) for r in summary.rejected] == [
            ("item-c.tif", "unreachable"), ("item-d.tif", "unreachable")]
        assert len(lines) == 2 and lines[0].startswith(f"{dead}: unreachable: cannot reach")
        assert lines[1].startswith(f"{dead}?d: unreachable: cannot read it over the network"), lines
        # Only windows were read: range requests, never the whole file.
        gets = [status for method, path, status in http.requests if method == "GET"]
        assert gets and set(gets) == {206}
        assert not any(status == 200 and m == "GET" for m, _, status in http.requests)
        records = {r.name: r for r in store.scenes(model.sha256, site.name)}
        assert records["item-b.tif"].path == f"{http.url}/b.tif"
        assert records["item-a.tif"].path == str(local.resolve())
        assert records["item-a.tif"].acquired.isoformat() == "2023-10-03T01:02:03+00:00"
        assert records["item-b.tif"].acquired.isoformat() == "2023-10-04T02:00:00+00:00"
        rejected = {r.name: r for r in store.rejections(model.sha256, site.name)}
        assert sorted(rejected) == ["item-c.tif", "item-d.tif"]
        assert rejected["item-c.tif"].path == dead and rejected["item-c.tif"].reason == "unreachable"
        assert len(det.calls) == 2
        # Rerun: both counted scenes are recognised (content sha256; item id + ETag), no pixel read.
        before = len(http.requests)
        again = run_batch([items], site, det, store, model, QUIET, say=lines.append)
        assert len(again.skipped) == 2 and not again.counted and len(again.rejected) == 2
        assert [m for m, _, _ in http.requests[before:]] == ["HEAD"]
        assert len(det.calls) == 2 and len(store.scenes(model.sha256, site.name)) == 2
        assert len(store.rejections(model.sha256, site.name)) == 2


def test_count_cli_reads_a_stac_item_with_asset(tmp_path, monkeypatch):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    write_scene(tmp_path / "pan.tif", "EPSG:32652", LON, LAT)
    path = tmp_path / "one.json"
    path.write_text(json.dumps(item("one", {"visual": tif("missing.tif"), "pan": tif("pan.tif")})))
    det = FakeDetector(site.crs, cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["count", str(path), "--asset", "pan", "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    frames = pd.read_csv(out / "frames.csv")
    assert set(frames["scene"]) == {"one.tif"}
    assert frames[frames["class"] == "covered_car"]["count"].tolist() == [6]
    assert frames["acquired"].iloc[0] == "2023-10-03T01:02:03Z"
