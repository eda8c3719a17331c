"""Every bad input is recorded, with the exit code the contract gives it (docs/design.md):
0 when the batch ran, 1 when no scene could be used, 2 for a usage error."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from test_batch import LAT, LON, yard_cars

from railwatch.cli import main
from railwatch.errors import SceneError
from railwatch.imagery.scene import open_scene
from railwatch.report.reported import ReportedFiguresError, load_reported
from railwatch.site import load_site
from railwatch.store import identity


@pytest.fixture
def world(tmp_path, monkeypatch):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    images = tmp_path / "images"
    images.mkdir()
    write_scene(images / "scene_20231001.tif", "EPSG:32652", LON, LAT)
    det = FakeDetector(site.crs, yard_cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    return tmp_path, site_path, site, images


def _count(site_path, out, *inputs):
    return CliRunner().invoke(main, ["count", *map(str, inputs), "--site", str(site_path),
                                     "--out", str(out), "--no-progress"])


def _stderr_rejected(stderr: str) -> int:
    return int(re.search(r"rejected (\d+) of", stderr).group(1))


def test_a_scene_that_cannot_be_read_to_hash_is_a_row_in_rejected_csv(world, monkeypatch):
    tmp, site_path, _, images = world
    locked = images / "locked_20231002.tif"
    write_scene(locked, "EPSG:32652", LON, LAT, seed=3)
    # Tests run as root, where chmod 000 does not stop a read: refuse it where it is hashed.
    real = identity.sha256_file

    def no_permission(path):
        if path.name == locked.name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(identity, "sha256_file", no_permission)
    out = tmp / "out"
    result = _count(site_path, out, images)
    assert result.exit_code == 0, result.output + result.stderr
    assert "locked_20231002.tif: unreadable: cannot read the file (Permission denied)" in result.stderr
    rejected = pd.read_csv(out / "rejected.csv")
    assert rejected["scene"].tolist() == ["locked_20231002.tif"]
    assert rejected["reason"].tolist() == ["unreadable"]
    assert _stderr_rejected(result.stderr) == len(rejected)


def test_byte_identical_bad_files_are_each_listed(world):
    tmp, site_path, _, images = world
    for name in ("empty_20231002.tif", "empty_20231003.tif", "sub/empty_20231004.tif"):
        (images / name).parent.mkdir(exist_ok=True)
        (images / name).write_bytes(b"")
    (images / "junk_20231005.tif").write_text("not a tiff")
    (images / "junk_20231006.tif").write_text("not a tiff")
    out = tmp / "out"
    result = _count(site_path, out, images)
    assert result.exit_code == 0, result.output + result.stderr
    rejected = pd.read_csv(out / "rejected.csv")
    assert sorted(rejected["scene"]) == ["empty_20231002.tif", "empty_20231003.tif",
                                         "empty_20231004.tif", "junk_20231005.tif",
                                         "junk_20231006.tif"]
    assert _stderr_rejected(result.stderr) == len(rejected) == 5
    # A rerun lists each of them once still, and a file fixed since is no longer listed.
    write_scene(images / "junk_20231006.tif", "EPSG:32652", LON, LAT, seed=6)
    result = _count(site_path, out, images)
    assert result.exit_code == 0, result.output + result.stderr
    rejected = pd.read_csv(out / "rejected.csv")
    assert len(rejected) == 4 and "junk_20231006.tif" not in set(rejected["scene"])
    assert _stderr_rejected(result.stderr) == 4


def test_a_reported_row_with_extra_fields_is_a_usage_error_naming_file_and_line(world):
    tmp, site_path, _, images = world
    csv = tmp / "reported.csv"
    csv.write_text(
        "date,site,zone,class,count,qualifier,quantity,source,url\n"
        "2023-10-01,test,yard,any,6,approximately,snapshot,me,\n"
        "2023-10-02,test,yard,any,6,approximately,snapshot,me,,surplus,more\n"
    )
    with pytest.raises(ReportedFiguresError, match=r"reported\.csv: line 3: 11 fields"):
        load_reported(csv)
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path), "--out",
                                       str(tmp / "out"), "--reported", str(csv), "--no-progress"])
    assert result.exit_code == 2, result.output + result.stderr
    assert "reported.csv: line 3" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["count", "inspect"])
def test_an_unknown_site_or_one_without_aoi_is_a_usage_error(world, command):
    tmp, site_path, _, images = world
    no_aoi = tmp / "no_aoi.geojson"
    doc = json.loads(site_path.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["role"] != "aoi"]
    no_aoi.write_text(json.dumps(doc))
    for site, says in (("nosuchsite", "no such site file"), (str(no_aoi), "exactly one feature")):
        extra = ["--out", str(tmp / "out"), "--no-progress"] if command == "count" else []
        result = CliRunner().invoke(main, [command, str(images / "scene_20231001.tif"),
                                           "--site", site, *extra])
        assert result.exit_code == 2, (site, result.output, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("sidecar", "why"),
    [
        ("{not json", r"not valid JSON \(.*line 1 column 2"),
        ('{"type": "Feature", "properties": {"datetime": "not-a-date"}}',
         r"properties\.datetime 'not-a-date' is not an ISO 8601 date-time"),
        ('["a", "list"]', r"not a STAC item \(a JSON object with properties\)"),
        ('{"type": "Feature", "properties": {"datetime": null}}',
         r"properties\.datetime is null and no start_datetime is given"),
    ],
)
def test_a_malformed_stac_sidecar_is_named_with_why(world, sidecar, why):
    tmp, site_path, site, images = world
    scene = images / "scene_20231001.tif"
    scene.with_suffix(".json").write_text(sidecar)
    with pytest.raises(SceneError) as info:
        open_scene(scene, site.crs, site.aoi_local)
    assert info.value.reason == "bad_sidecar"
    assert re.search(r"scene_20231001\.json: malformed STAC item: " + why, info.value.message)
    result = _count(site_path, tmp / "out", images)
    assert result.exit_code == 1  # the only scene is refused
    assert "scene_20231001.tif: bad_sidecar: " in result.stderr
    assert pd.read_csv(tmp / "out" / "rejected.csv")["reason"].tolist() == ["bad_sidecar"]


def test_a_stac_item_without_a_time_is_named_not_asked_for(world):
    _, _, site, images = world
    scene = write_scene(images / "undated.tif", "EPSG:32652", LON, LAT).path
    scene.with_suffix(".json").write_text('{"type": "Feature", "properties": {"gsd": 0.4}}')
    with pytest.raises(SceneError, match=r"undated\.json has no properties\.datetime") as info:
        open_scene(scene, site.crs, site.aoi_local)
    assert "add a STAC item" not in str(info.value)


def test_a_schema_3_store_keeps_its_rejections(tmp_path):
    import sqlite3

    from railwatch.store.database import Store

    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as con:  # as schemas 1-3 kept them: in scenes, keyed by content
        con.execute("INSERT INTO scenes (content_sha256, model_sha256, site, name, path, status, "
                    "reason, message, recorded) VALUES ('e3b0', 'm', 's', 'a.tif', '/x/a.tif', "
                    "'rejected', 'unreadable', 'empty', '2023-10-05T00:00:00+00:00')")
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    with Store(path) as store:
        [r] = store.rejections("m", "s")
        assert (r.name, r.path, r.reason, r.message) == ("a.tif", "/x/a.tif", "unreadable", "empty")
        assert store.table_counts()["scenes"] == 0
