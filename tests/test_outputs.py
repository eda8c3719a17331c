"""The output folder as a set: each file written atomically, ``run.json`` last, names that stay
inside ``--out`` whatever a zone is called."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeDetector
from test_batch import LAT, LON, yard_cars

from railwatch.cli import main
from railwatch.report import inputs, outputs, outputset
from railwatch.report.inputs import build_tables, load_inputs
from railwatch.site import load_site
from railwatch.store.database import Store

#: Every data file a count with rejections and quicklooks writes (run.json aside).
DATA_FILES = ("detections.geojson", "frames.csv", "weekly.csv", "comparison.csv",
              "rejected.csv", "report.md", "weekly.png", "snapshots.png")


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A store counted from 3 scenes, and a function that (re)writes the outputs from it."""
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        write_scene(images / f"scene_2023100{i + 1}.tif", "EPSG:32652", LON, LAT, seed=i)
    (images / "broken_20231004.tif").write_text("nope")
    det = FakeDetector(site.crs, yard_cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "out"

    def count() -> object:
        return CliRunner().invoke(main, ["count", str(images), "--site", str(site_path),
                                         "--out", str(out), "--no-progress"])

    return out, count


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_json_is_written_last_and_names_every_file_with_its_sha256(counted):
    out, count = counted
    result = count()
    assert result.exit_code == 0, result.output + result.stderr
    run = json.loads((out / outputset.RUN_FILE).read_text())
    assert run["complete"] is True
    assert run["run_id"] >= 1 and len(run["model_sha256"]) == 64 and run["site"] == "test"
    listed = {f["path"]: f["sha256"] for f in run["files"]}
    assert set(DATA_FILES) <= set(listed)
    on_disk = {p.name for p in out.iterdir() if p.is_file()} - {outputset.RUN_FILE, "railwatch.sqlite",
                                                               "railwatch.sqlite-wal",
                                                               "railwatch.sqlite-shm"}
    assert set(listed) == on_disk  # every output is listed, nothing else
    assert all(_sha(out / name) == sha for name, sha in listed.items())
    assert outputset.check_outputs(out) == []
    # A changed file is found out.
    (out / "frames.csv").write_text("scene\n")
    assert outputset.check_outputs(out) == ["frames.csv: sha256 differs from run.json"]


def test_a_failure_while_writing_leaves_every_file_whole_and_no_run_json(counted, monkeypatch):
    out, count = counted
    assert count().exit_code == 0
    before = {name: (out / name).read_bytes() for name in DATA_FILES}
    real_to_csv = pd.DataFrame.to_csv

    def disk_full(self, path=None, *args, **kwargs):
        if path is not None and "weekly" in Path(str(path)).name:
            Path(path).write_text("week,week_start\n2023-W4")  # half a file, then the disk fills
            raise OSError(28, "No space left on device")
        return real_to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    from railwatch.report.reported import load_reported
    from railwatch.store.database import Store

    with Store(out / "railwatch.sqlite") as store, pytest.raises(OSError, match="No space left"):
        outputs.write_report(out, inputs.load_inputs(store, load_reported()),
                             inputs.ReportSettings(quicklooks=False))
    # No file was truncated or half written: each is its old self (or the new whole one).
    assert (out / "weekly.csv").read_bytes() == before["weekly.csv"]
    for name in DATA_FILES:
        assert (out / name).stat().st_size > 0, name
    # ... no temporary file is left behind, and the set says it is not complete.
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert not (out / outputset.RUN_FILE).exists()
    assert outputset.check_outputs(out) == [
        f"{outputset.RUN_FILE}: missing; the outputs are incomplete (a run was interrupted while "
        "writing them): rebuild them with `railwatch series`"]



@pytest.mark.parametrize(
    ("name", "expected"),
    [("tumangang_yard", "tumangang_yard"), ("a/b", "a-b-"), ("x/../../name", "x-name-"),
     ("..", "zone-"), ("", "zone-"), ("yard #2 (north)", "yard-2-north-")],
)
def test_file_slug_is_a_safe_single_path_component(name, expected):
    slug = outputset.file_slug(name, fallback="zone")
    assert slug.startswith(expected)
    assert "/" not in slug and "\\" not in slug and slug not in (".", "..") and slug
    if slug != name:  # a changed name carries a hash of the original: no two names collide
        assert outputset.file_slug(name, fallback="zone") != outputset.file_slug(name + "!", fallback="zone")


def test_zone_names_with_slashes_stay_inside_out(tmp_path, monkeypatch):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    doc = json.loads(site_path.read_text())
    zone = doc["features"][2]
    zone["properties"]["name"] = "x/../../name"
    other = json.loads(json.dumps(zone))
    other["properties"]["name"] = "a/b"
    doc["features"].append(other)
    site_path.write_text(json.dumps(doc))
    site = load_site(site_path)
    images = tmp_path / "images"
    images.mkdir()
    write_scene(images / "scene_20231001.tif", "EPSG:32652", LON, LAT)
    reported = tmp_path / "reported.csv"
    reported.write_text(
        "date,site,zone,class,count,qualifier,quantity,source,url\n"
        "2023-10-01,test,x/../../name,any,6,approximately,snapshot,test,\n"
        "2023-10-01,test,a/b,any,6,approximately,snapshot,test,\n"
    )
    det = FakeDetector(site.crs, yard_cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "deep" / "er" / "out"
    result = CliRunner().invoke(main, ["count", str(images), "--site", str(site_path), "--out",
                                       str(out), "--reported", str(reported), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.stderr
    pngs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    assert all(p.parts[:3] == ("deep", "er", "out") and len(p.parts) == 4 for p in pngs), pngs
    quicklooks = [p.name for p in pngs if p.name.startswith("quicklook_")]
    assert len([q for q in quicklooks if "_crop" not in q]) == 2, pngs  # one view per zone
    report = (out / "report.md").read_text()
    assert all(f"]({q})" in report for q in quicklooks)
    assert outputset.check_outputs(out) == [] and outputset.check_outputs(str(out)) == []  # str too


def test_temporaries_of_killed_writers_are_removed_those_of_live_ones_kept(counted):
    import os
    import subprocess
    import sys

    out, count = counted
    assert count().exit_code == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = out / f".frames.csv.{dead}.tmp"  # a writer killed by kill -9 mid-write
    live = out / f".weekly.csv.{os.getppid()}.tmp"  # another writer, still at work
    orphan.write_text("scene,acq")
    live.write_text("week")
    assert count().exit_code == 0
    assert not orphan.exists() and live.exists()
    assert outputset.check_outputs(out) == []


def test_detect_keeps_zone_named_files_inside_out(tmp_path, monkeypatch):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    doc = json.loads(site_path.read_text())
    doc["features"][2]["properties"]["name"] = "x/../../name"
    site_path.write_text(json.dumps(doc))
    site = load_site(site_path)
    image = write_scene(tmp_path / "scene_20231001.tif", "EPSG:32652", LON, LAT).path
    det = FakeDetector(site.crs, yard_cars(site))
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "a" / "b" / "out"
    result = CliRunner().invoke(main, ["detect", str(image), "--site", str(site_path),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    pngs = sorted(p.relative_to(tmp_path).parts for p in tmp_path.rglob("*.png"))
    assert pngs and all(p[:3] == ("a", "b", "out") and len(p) == 4 for p in pngs), pngs
    # named as `count` names its quicklooks
    assert [p[3] for p in pngs if "_crop" not in p[3]] == ["quicklook_scene_20231001_x-name-88492aef.png"]


def test_count_on_a_folder_without_imagery_says_so_and_writes_nothing(tmp_path, monkeypatch):
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    monkeypatch.setattr("railwatch.cli.options.build_detector",
                        lambda choice: FakeDetector(site.crs, yard_cars(site)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no imagery here")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["count", str(tmp_path / "empty"), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "no imagery" in result.stderr and "nothing written" in result.stderr
    assert not (out / "run.json").exists() and not list(out.glob("*.csv"))


def test_report_md_says_what_to_look_at_next(tmp_path, monkeypatch):
    """Which image to request next: the weeks whose intervals are widest for want of scenes,
    and a reported figure near the batch that no scene could test."""
    from datetime import date

    from railwatch.report.outputs import what_next
    from railwatch.report.reported import Qualifier, Quantity, ReportedFigure

    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    images = tmp_path / "images"
    images.mkdir()
    for day in ("20231002", "20231009"):
        write_scene(images / f"scene_{day}.tif", "EPSG:32652", LON, LAT)
    monkeypatch.setattr("railwatch.cli.options.build_detector",
                        lambda choice: FakeDetector(site.crs, yard_cars(site)))
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["count", str(images), "--site", str(site_path), "--out", str(out),
                                     "--no-progress"]).exit_code == 0
    report = (out / "report.md").read_text()
    section = report.split("## What to look at next")[1].split("##")[0]
    assert "the widest interval" in section and "another scene of that week narrows it most" in section
    with Store(out / "railwatch.sqlite") as store:
        zone = site.zone_names[0]
        missing = ReportedFigure(date(2023, 10, 16), date(2023, 10, 16), site.name, zone, "covered_car", 9,
                                 Qualifier.AT_LEAST, Quantity.SNAPSHOT, "an outlet")
        tables = build_tables(load_inputs(store, [missing]))
    (line, *_) = what_next(tables, site.name)
    assert line.startswith("the 2023-10-16 figure (at least 9") and "within 3 days of 2023-10-16" in line
