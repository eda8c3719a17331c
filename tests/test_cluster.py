"""Counting on a local Dask cluster: the serial batch's results, and worker deaths survived."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeFactory
from shapely.geometry import Point

from railwatch.batch.cluster import ClusterSpec, run_batch_on_cluster
from railwatch.batch.job import BatchSettings, run_batch
from railwatch.cli import main
from railwatch.site import Site, load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

LON, LAT = 130.6081, 42.4214
SAMPLE = Path(__file__).resolve().parents[1] / "sample_tiles"
QUIET = BatchSettings(progress=False)


def yard_cars(site: Site, n: int = 6) -> tuple[tuple[float, float, str], ...]:
    c = site.to_local(Point(LON, LAT))
    return tuple((c.x - 60 + 20.2 * k, c.y, "covered_car") for k in range(n))


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Site, Path, list[Path]]:
    site = load_site(write_site(tmp_path / "site.geojson", LON, LAT))
    images = tmp_path / "images"
    images.mkdir()
    scenes = [write_scene(images / f"scene_2023100{i + 1}.tif", "EPSG:32652", LON, LAT, seed=i).path
              for i in range(4)]
    return tmp_path, site, images, scenes


def _rows(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every count and every detection in a store, by scene name (ids and times left out)."""
    with sqlite3.connect(db) as con:
        counts = con.execute(
            "SELECT s.name, s.acquired, s.content_sha256, c.zone, c.class, c.count, c.coverage "
            "FROM counts c JOIN scenes s ON s.id = c.scene_id ORDER BY s.name, c.zone, c.class"
        ).fetchall()
        dets = con.execute(
            "SELECT s.name, d.idx, d.class, d.confidence, d.zone, d.x0, d.y0, d.x2, d.y2 "
            "FROM detections d JOIN scenes s ON s.id = d.scene_id ORDER BY s.name, d.idx"
        ).fetchall()
    return counts, dets


def test_cluster_spec_parsing():
    assert ClusterSpec.parse("local:2") == ClusterSpec(workers=2)
    assert ClusterSpec.parse("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local", "10.0.0.5:8786", "http://x:1", "tcp://host"):
        with pytest.raises(ValueError, match=r"local:N|tcp://|at least one"):
            ClusterSpec.parse(bad)


def test_a_bad_cluster_option_is_a_usage_error(world):
    _, _, images, _ = world
    result = CliRunner().invoke(main, ["count", str(images), "--cluster", "8786"])
    assert result.exit_code == 2 and "local:N" in result.stderr


def test_a_local_cluster_counts_what_the_serial_batch_counts(world, allow_loopback):
    tmp, site, images, _ = world
    log = tmp / "loads.log"
    factory = FakeFactory(site.crs.to_wkt(), yard_cars(site), load_log=str(log))
    model = ModelRecord.unmeasured(factory.sha256, "fake")
    with Store(tmp / "serial.sqlite") as store:
        serial = run_batch([images], site, factory.load(), store, model, QUIET)
    log.unlink()
    lines: list[str] = []
    with Store(tmp / "cluster.sqlite") as store:
        spread = run_batch_on_cluster([images], site, factory, store, model, ClusterSpec(workers=2),
                                      QUIET, say=lines.append)
        assert sorted(s.name for s in spread.counted) == sorted(s.name for s in serial.counted)
        assert len(spread.counted) == 4 and not spread.rejected and not lines
        assert store.runs()[-1].parameters["cluster"] == "local:2"
    assert _rows(tmp / "cluster.sqlite") == _rows(tmp / "serial.sqlite")
    assert len(_rows(tmp / "cluster.sqlite")[1]) == 4 * 6
    pids = log.read_text().split()
    assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids)  # each worker loaded the model once
    # Scenes already counted with this model are never submitted: no worker loads a model.
    log.unlink()
    with Store(tmp / "cluster.sqlite") as store:
        again = run_batch_on_cluster([images], site, factory, store, model, ClusterSpec(workers=1),
                                     QUIET)
    assert len(again.skipped) == 4 and not again.counted and not log.exists()


@pytest.mark.slow
def test_a_worker_killed_mid_scene_loses_nothing_and_a_scene_killing_two_is_rejected(
    world, allow_loopback
):
    tmp, site, images, scenes = world
    once, always = scenes[0].name, scenes[2].name
    factory = FakeFactory(site.crs.to_wkt(), yard_cars(site), marker_dir=str(tmp),
                          kill_once=(once,), kill_always=(always,))
    model = ModelRecord.unmeasured(factory.sha256, "fake")
    lines: list[str] = []
    with Store(tmp / "s.sqlite") as store:
        summary = run_batch_on_cluster([images], site, factory, store, model,
                                       ClusterSpec(workers=2), QUIET, say=lines.append)
        assert (tmp / f"{once}.killed").exists()  # its first worker did die
        assert sorted(s.name for s in summary.counted) == sorted(
            p.name for p in scenes if p.name != always)
        assert [(r.source.name, r.reason) for r in summary.rejected] == [(always, "killed_worker")]
        assert len(lines) == 1 and lines[0].startswith(f"{scenes[2]}: killed_worker: killed 2 workers")
        assert [(r.name, r.reason) for r in store.rejections(model.sha256, site.name)] == [
            (always, "killed_worker")]
    counts, dets = _rows(tmp / "s.sqlite")
    assert len(counts) == 3 * 5 and len(dets) == 3 * 6  # three scenes, each counted once


@pytest.mark.slow
def test_count_cli_on_a_local_cluster_writes_the_serial_outputs(tmp_path, allow_loopback):
    """The shipped model on two sample scenes: --cluster local:2 writes the serial frames.csv
    and detections.geojson byte for byte."""
    scenes = [str(SAMPLE / f"tumangang_khasan_{t}.tif") for t in ("20231005T0215Z", "20231010T0205Z")]
    outs = {}
    for name, extra in (("serial", []), ("cluster", ["--cluster", "local:2"])):
        outs[name] = tmp_path / name
        result = CliRunner().invoke(main, ["count", *scenes, "--out", str(outs[name]),
                                           "--no-progress", *extra])
        assert result.exit_code == 0, result.output + result.stderr
        assert "counted 2, skipped 0" in result.stderr
    for output in ("frames.csv", "detections.geojson"):
        assert (outs["cluster"] / output).read_bytes() == (outs["serial"] / output).read_bytes()
