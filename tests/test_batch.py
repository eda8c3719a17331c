"""The batch job and `railwatch count` / `railwatch series` with a fake detector."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from shapely.geometry import Point

from railwatch.batch.job import BatchSettings, find_images, run_batch
from railwatch.cli import main
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

LON, LAT = 130.6081, 42.4214
TESTS = Path(__file__).parent


def yard_cars(site, n: int = 6, dy: float = 0.0):
    c = site.to_local(Point(LON, LAT))
    return [(c.x - 60 + 20.2 * k, c.y + dy, "covered_car") for k in range(n)]


@pytest.fixture
def world(tmp_path):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    scenes = [
        write_scene(images / ("sub" if i % 2 else "") / f"scene_2023100{i + 1}.tif",
                    "EPSG:32652", LON, LAT, seed=i).path
        for i in range(4)
    ]
    return tmp_path, site_path, site, images, scenes


def model_for(detector) -> ModelRecord:
    return ModelRecord.unmeasured(detector.model_sha256, "fake")


def test_find_images_walks_directories_and_drops_duplicates(world):
    _, _, _, images, scenes = world
    (images / "notes.txt").write_text("x")
    found = find_images([images, scenes[0]])
    assert sorted(found) == sorted(scenes)


def test_rerunning_a_batch_adds_nothing_and_a_renamed_file_is_recognised(world):
    tmp, _, site, images, scenes = world
    det = FakeDetector(site.crs, yard_cars(site))
    quiet = BatchSettings(progress=False)
    with Store(tmp / "s.sqlite") as store:
        first = run_batch([images], site, det, store, model_for(det), quiet)
        assert len(first.counted) == 4 and not first.skipped and not first.rejected
        before = store.table_counts()
        second = run_batch([images], site, det, store, model_for(det), quiet)
        assert not second.counted and len(second.skipped) == 4
        renamed = scenes[0].with_name("renamed_20231001.tif")
        scenes[0].rename(renamed)
        third = run_batch([renamed], site, det, store, model_for(det), quiet)
        assert [s.path for s in third.skipped] == [renamed] and not third.counted
        after = store.table_counts()
        assert {k: v for k, v in after.items() if k != "runs"} == {
            k: v for k, v in before.items() if k != "runs"
        }
        assert after["detections"] == 4 * 6
        # The store follows the file to its new name.
        names = {r.name for r in store.scenes(det.model_sha256, site.name)}
        assert "renamed_20231001.tif" in names
        assert len(det.calls) == 4  # the detector ran once per scene, ever
        forced = run_batch([images], site, det, store, model_for(det),
                           BatchSettings(force=True, progress=False))
        assert len(forced.counted) == 4
        assert store.table_counts()["detections"] == 4 * 6  # replaced, not duplicated


def test_a_new_model_counts_the_same_scenes_again(world):
    tmp, _, site, images, _ = world
    a = FakeDetector(site.crs, yard_cars(site), sha256="a" * 64)
    b = FakeDetector(site.crs, yard_cars(site, 3), sha256="b" * 64)
    with Store(tmp / "s.sqlite") as store:
        run_batch([images], site, a, store, model_for(a), BatchSettings(progress=False))
        summary = run_batch([images], site, b, store, model_for(b), BatchSettings(progress=False))
        assert len(summary.counted) == 4
        assert len(store.scenes("a" * 64, site.name)) == len(store.scenes("b" * 64, site.name)) == 4


def test_a_batch_mixing_good_and_bad_scenes_goes_on(world):
    tmp, _, site, images, _scenes = world
    bad = images / "bad"
    bad.mkdir()
    (bad / "garbage_20231005.tif").write_text("not a tiff")
    write_scene(bad / "coarse_20231005.tif", "EPSG:32652", LON, LAT, gsd_m=3.0, size=100)
    write_scene(bad / "elsewhere_20231005.tif", "EPSG:32652", LON + 1.0, LAT)
    write_scene(bad / "undated.tif", "EPSG:32652", LON, LAT, seed=42)
    det = FakeDetector(site.crs, yard_cars(site))
    lines: list[str] = []
    with Store(tmp / "s.sqlite") as store:
        summary = run_batch([images], site, det, store, model_for(det),
                            BatchSettings(progress=False), say=lines.append)
        assert len(summary.counted) == 4
        reasons = {r.source.name: r.reason for r in summary.rejected}
        assert reasons == {
            "garbage_20231005.tif": "unreadable",
            "coarse_20231005.tif": "too_coarse",
            "elsewhere_20231005.tif": "no_overlap",
            "undated.tif": "no_acquisition_time",
        }
        assert len(lines) == 4 and all(": " in line and "\n" not in line for line in lines)
        assert "rejected, too_coarse: 1" in summary.text()
        stored = {r.name: r.reason for r in store.rejections(det.model_sha256, site.name)}
        assert stored == reasons
        # Rerunning retries the rejected scenes but adds no rows.
        n = store.table_counts()["scenes"]
        run_batch([images], site, det, store, model_for(det), BatchSettings(progress=False),
                  say=lines.append)
        assert store.table_counts()["scenes"] == n


_BATCH_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from fake_detector import FakeDetector
from test_batch import yard_cars
from railwatch.batch.job import BatchSettings, run_batch
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

site = load_site({site!r})
det = FakeDetector(site.crs, yard_cars(site), sleep_s={sleep})
with Store({db!r}) as store:
    s = run_batch([Path({images!r})], site, det, store, ModelRecord.unmeasured(det.model_sha256),
                  BatchSettings(progress=False))
print(len(s.counted), len(s.skipped), len(s.rejected))
"""


def _script(tmp: Path, site_path: Path, images: Path, db: Path, sleep: float) -> Path:
    script = tmp / f"batch_{sleep}.py"
    script.write_text(textwrap.dedent(_BATCH_SCRIPT).format(
        tests=str(TESTS), site=str(site_path), images=str(images), db=str(db), sleep=sleep))
    return script


def _counted(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM scenes WHERE status='counted'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_a_batch_killed_mid_way_resumes_and_counts_every_scene_once(world):
    tmp, site_path, site, images, _scenes = world
    for i in range(4, 8):
        write_scene(images / f"scene_2023101{i}.tif", "EPSG:32652", LON, LAT, seed=i)
    db = tmp / "s.sqlite"
    proc = subprocess.Popen([sys.executable, str(_script(tmp, site_path, images, db, 0.4))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while _counted(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _counted(db)
    assert 2 <= done_before < 8, "the batch should have been killed mid-way"
    resumed = subprocess.run(
        [sys.executable, str(_script(tmp, site_path, images, db, 0.0))],
        capture_output=True, text=True, check=True,
    )
    counted, skipped, rejected = map(int, resumed.stdout.split())
    assert (counted, skipped, rejected) == (8 - done_before, done_before, 0)
    with Store(db) as store:
        records = store.scenes("f" * 64, site.name)
        assert len(records) == 8 and all(r.status == "counted" for r in records)
        assert store.table_counts()["detections"] == 8 * 6
        assert store.table_counts()["counts"] == 8 * 1 * 5  # 1 zone × 5 classes, no half scene
        runs = store.runs()
        assert runs[0].finished is None and runs[-1].finished is not None
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_counting_into_one_store(world):
    tmp, site_path, _site, images, _ = world
    for i in range(4, 8):
        write_scene(images / f"scene_2023101{i}.tif", "EPSG:32652", LON, LAT, seed=i)
    db = tmp / "s.sqlite"
    script = _script(tmp, site_path, images, db, 0.1)
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [tuple(map(int, o[0].split())) for o in outs]
    assert sum(r[0] for r in results) == 8  # every scene counted by exactly one of them
    assert all(r[0] + r[1] == 8 for r in results)
    with Store(db) as store:
        assert store.table_counts()["scenes"] == 8
        assert store.table_counts()["detections"] == 8 * 6
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def fake_cli(monkeypatch, world):
    _, _, site, _, _ = world
    det = FakeDetector(site.crs, yard_cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    return det


def test_count_cli_writes_every_output_and_exits_0_with_rejections(world, fake_cli):
    tmp, site_path, _, images, _ = world
    (images / "broken_20231003.tif").write_text("nope")
    out = tmp / "out"
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "broken_20231003.tif: unreadable:" in result.stderr
    assert "Traceback" not in result.stderr
    for name in ("detections.geojson", "frames.csv", "weekly.csv", "comparison.csv",
                 "rejected.csv", "report.md", "railwatch.sqlite", "weekly.png", "snapshots.png"):
        assert (out / name).is_file(), name
    geo = json.loads((out / "detections.geojson").read_text())
    assert len(geo["features"]) == 4 * 6
    feature = geo["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 5
    assert abs(ring[0][0] - LON) < 0.01 and abs(ring[0][1] - LAT) < 0.01  # EPSG:4326
    props = feature["properties"]
    assert set(props) == {"scene", "acquired", "class", "confidence", "zone", "class_confidence"}
    assert props["acquired"].startswith("2023-10-0") and props["acquired"].endswith("Z")
    assert props["class"] == "covered_car" and props["zone"] == "yard"
    frames = pd.read_csv(out / "frames.csv")
    assert list(frames.columns) == ["scene", "acquired", "zone", "class", "count", "coverage"]
    covered = frames[frames["class"] == "covered_car"]
    assert covered["count"].tolist() == [6] * 4
    weekly = pd.read_csv(out / "weekly.csv")
    assert list(weekly.columns) == ["week", "week_start", "zone", "class", "n_scenes", "peak",
                                    "mean", "arrivals", "estimate", "low", "high", "coverage"]
    rejected = pd.read_csv(out / "rejected.csv")
    assert rejected["scene"].tolist() == ["broken_20231003.tif"]
    assert "simulat" not in (out / "report.md").read_text().lower()  # real imagery: no banner
    # The outputs can be rebuilt from the store alone, without the imagery.
    shutil.rmtree(images)
    again = tmp / "again"
    result = CliRunner().invoke(main, ["series", "--db", str(out / "railwatch.sqlite"),
                                       "--out", str(again)])
    assert result.exit_code == 0, result.output + result.stderr
    pd.testing.assert_frame_equal(pd.read_csv(again / "frames.csv"), frames)
    pd.testing.assert_frame_equal(pd.read_csv(again / "weekly.csv"), weekly)


def test_the_report_draws_the_zone_and_its_busiest_part_for_a_compared_scene(world, fake_cli):
    from PIL import Image

    tmp, site_path, _, images, _ = world
    reported = tmp / "reported.csv"
    reported.write_text("date,site,zone,class,count,qualifier,quantity,source,url\n"
                        "2023-10-02,test,yard,covered_car,6,approximately,snapshot,a test,\n")
    out = tmp / "out"
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path), "--out",
                                       str(out), "--reported", str(reported), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    zone_png = out / "quicklook_scene_20231002_yard.png"
    crop_png = out / "quicklook_scene_20231002_yard_crop1.png"
    assert zone_png.is_file() and crop_png.is_file()
    assert not (out / "quicklook_scene_20231002_yard_crop2.png").exists()  # one string of cars
    report = (out / "report.md").read_text()
    assert f"]({zone_png.name})" in report and f"]({crop_png.name})" in report
    with Image.open(crop_png) as crop:  # 150 m at the scene's native 0.4 m, each pixel 2×2
        assert abs(crop.width - 2 * 150 / 0.4) <= 4


def test_the_namers_probability_reaches_detections_geojson_and_the_store(world, monkeypatch):
    """A detector whose namer gives each car a probability: every car of detections.geojson and
    of the store carries it (observe_scene once rebuilt the detections and dropped it)."""
    tmp, site_path, site, images, _ = world
    det = FakeDetector(site.crs, yard_cars(site), naming=0.83)
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp / "out"
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    features = json.loads((out / "detections.geojson").read_text())["features"]
    assert features and {f["properties"]["class_confidence"] for f in features} == {0.83}
    stored = sqlite3.connect(out / "railwatch.sqlite").execute(
        "SELECT DISTINCT class_confidence FROM detections").fetchall()
    assert stored == [(0.83,)]


def test_the_report_names_the_simulated_scenes_read_from_their_stac_sidecars(world, fake_cli):
    tmp, site_path, _, images, scenes = world
    for path in scenes[:2]:  # the simulator's mark; the folder name says nothing
        path.with_suffix(".json").write_text(json.dumps(
            {"type": "Feature", "properties": {"railwatch:simulated": True}}))
    scenes[2].with_suffix(".json").write_text(json.dumps(
        {"type": "Feature", "properties": {"railwatch:simulated": False}}))
    out = tmp / "out"
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    report = (out / "report.md").read_text()
    assert "**Simulated imagery.** 2 of the 4 scenes counted here are **SIMULATED**" in report
    with Store(out / "railwatch.sqlite") as store:
        run = store.latest_run()
        flags = {r.name: r.simulated for r in store.scenes(run.model_sha256, run.site)}
    assert flags == {p.name: i < 2 for i, p in enumerate(scenes)}
    # Rebuilt from the store alone, the report still knows.
    again = tmp / "again"
    CliRunner().invoke(main, ["series", "--db", str(out / "railwatch.sqlite"), "--out", str(again)])
    assert "2 of the 4 scenes counted here are **SIMULATED**" in (again / "report.md").read_text()


def test_a_store_of_schema_1_is_migrated_and_its_scenes_origin_is_unknown(world, fake_cli):
    tmp, site_path, _, images, _ = world
    out = tmp / "out"
    args = ["count", str(images), "--site", str(site_path), "--out", str(out), "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    db = sqlite3.connect(out / "railwatch.sqlite")  # back to what schema 1 held
    db.execute("ALTER TABLE scenes DROP COLUMN simulated")
    db.execute("ALTER TABLE detections DROP COLUMN class_confidence")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.commit()
    db.close()
    result = CliRunner().invoke(main, ["series", "--db", str(out / "railwatch.sqlite"),
                                       "--out", str(tmp / "again")])
    assert result.exit_code == 0, result.output + result.stderr
    with Store(out / "railwatch.sqlite") as store:  # migrated through schema 2 to 3
        assert store.table_counts()["detections"] == 4 * 6
    report = (tmp / "again" / "report.md").read_text()
    assert "4 of the 4 scenes were counted before the store recorded whether imagery is " \
           "simulated" in report and "Simulated imagery" not in report


def test_count_cli_exits_1_when_no_scene_is_usable(world, fake_cli):
    tmp, site_path, _, _, _ = world
    bad = tmp / "x_20231005.tif"
    bad.write_text("nope")
    result = CliRunner().invoke(main, ["count", str(bad), "--site", str(site_path),
                                       "--out", str(tmp / "out"), "--no-progress"])
    assert result.exit_code == 1
    assert "x_20231005.tif: unreadable:" in result.stderr
    assert pd.read_csv(tmp / "out" / "rejected.csv")["reason"].tolist() == ["unreadable"]


def test_count_cli_usage_errors_exit_2(world, fake_cli, tmp_path):
    _, site_path, _, images, _ = world
    missing = CliRunner().invoke(main, ["count", str(tmp_path / "nope.tif")])
    assert missing.exit_code == 2
    bad_csv = tmp_path / "reported.csv"
    bad_csv.write_text("date,site\n2023-10-05,x\n")
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path),
                                       "--reported", str(bad_csv), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "reported.csv: missing column(s)" in result.stderr


@pytest.mark.parametrize("where", ["store", "outputs"])
def test_a_full_disk_is_one_line_and_keeps_what_was_committed(world, fake_cli, monkeypatch, where):
    import errno

    tmp, site_path, _, images, _ = world
    out = tmp / "out"
    if where == "store":
        calls = {"n": 0}
        real = Store.record_scene

        def record(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise sqlite3.OperationalError("database or disk is full")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Store, "record_scene", record)
    else:
        def full(out_dir, name, write):
            raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / name))

        monkeypatch.setattr("railwatch.report.outputset.write_atomic", full)
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path), "--out", str(out),
                                       "--no-progress"])
    assert result.exit_code == 1
    assert ("Traceback" not in result.stderr and result.exception is None) or isinstance(
        result.exception, SystemExit)
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("railwatch: the disk is full")]
    assert "run the same command again" in line
    assert not (out / "run.json").exists()
    with Store(out / "railwatch.sqlite") as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counted = store.table_counts()["scenes"]
    assert counted == (2 if where == "store" else 4)
