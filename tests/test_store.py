"""The SQLite store: round trips, rejected vs counted, refusals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from shapely.geometry import Point

from railwatch.classes import CLASSES
from railwatch.detect.manifest import ClassMetrics
from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord, StoreError

LON, LAT = 130.6081, 42.4214


@pytest.fixture
def observed(tmp_path):
    site = load_site(write_site(tmp_path / "site.geojson", LON, LAT))
    c = site.to_local(Point(LON, LAT))
    cars = [(c.x - 40, c.y, "covered_car"), (c.x - 20, c.y, "tank_car"),
            (c.x + 300, c.y, "open_car")]  # the last one in the corridor, outside the zone
    det = FakeDetector(site.crs, cars)
    scene = open_scene(write_scene(tmp_path / "a_20231005.tif", "EPSG:32652", LON, LAT).path,
                       site.crs, site.aoi_local)
    metrics = {c: ClassMetrics(0.9, 0.8) for c in CLASSES}
    return site, observe_scene(scene, site, det), ModelRecord(det.model_sha256, "fake", metrics)


def test_a_counted_scene_round_trips(tmp_path, observed):
    site, obs, model = observed
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run(model, site, {"force": False})
        assert store.record_scene(run, obs, "c" * 64, site)
        assert not store.record_scene(run, obs, "c" * 64, site)  # already there
        assert store.is_counted("c" * 64, model.sha256, site.name)
        [back] = store.counted_scenes(model.sha256, site)
        assert back.scene == "a_20231005.tif"
        assert back.acquired == datetime(2023, 10, 5, tzinfo=UTC)
        assert back.coverage == pytest.approx(obs.coverage)
        np.testing.assert_allclose(back.detections.corners, obs.detections.corners)
        assert list(back.detections.zone) == list(obs.detections.zone)
        # what chooses the error matrix of the scene's condition: its native gsd and the sun's
        # elevation at 00:00 UTC on 5 October over Tumangang (08:00 local, about 20° up)
        assert back.gsd == pytest.approx(0.4, rel=0.01)
        assert back.sun_elevation == pytest.approx(site.sun_elevation(back.acquired))
        assert 10 < back.sun_elevation < 30
        assert store.model(model.sha256).metrics["tank_car"] == ClassMetrics(0.9, 0.8)
        assert store.site(site.name).zone_names == site.zone_names
        [rec] = store.scenes(model.sha256, site.name)
        assert rec.crs == "EPSG:32652" and rec.gsd == pytest.approx(0.4, rel=0.01)
        assert rec.footprint_wkt.startswith("POLYGON")
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        counts = dict(con.execute("SELECT class, count FROM counts WHERE zone = 'yard'"))
        assert counts == {"covered_car": 1, "tank_car": 1, "open_car": 0, "flat_car": 0,
                          "locomotive": 0}


def test_a_rejection_never_overwrites_a_counted_scene(tmp_path, observed):
    site, obs, model = observed
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run(model, site, {})
        store.record_scene(run, obs, "c" * 64, site)
        store.record_rejection(run, obs.scene.source, "c" * 64, model.sha256, site.name, "x", "y")
        assert store.is_counted("c" * 64, model.sha256, site.name)
        assert store.rejections(model.sha256, site.name) == []


def test_counting_a_scene_clears_its_old_rejection(tmp_path, observed):
    site, obs, model = observed
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run(model, site, {})
        store.record_rejection(run, obs.scene.source, "old" * 8, model.sha256, site.name,
                               "unreadable", "truncated")
        store.record_scene(run, obs, "c" * 64, site)  # the file was replaced by a good copy
        assert store.rejections(model.sha256, site.name) == []


def test_not_a_store_is_refused_with_the_file_named(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite: not a railwatch store"):
        Store(junk)


def test_a_store_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="schema 99"):
        Store(path)
