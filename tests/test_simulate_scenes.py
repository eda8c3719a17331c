"""Site scenes from scenarios: parsing errors, geolocation shift, truth matches what is drawn."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import shape

from railwatch.simulate.export import render_scenario
from railwatch.simulate.scenario import ScenarioError, load_scenario, parse_scenario
from railwatch.simulate.scene import build_train_book, cars_at, render_scene
from railwatch.simulate.truth import weekly_rows
from railwatch.simulate.world import build_world
from railwatch.site import load_site

X0, Y0 = 632000.0, 4697800.0  # UTM 52N, near Tumangang
TO_LONLAT = Transformer.from_crs("EPSG:32652", "EPSG:4326", always_xy=True)


def _ll(pts):
    return [list(TO_LONLAT.transform(X0 + x, Y0 + y)) for x, y in pts]


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    """A 260 × 160 m site: one straight mainline, a parallel siding, a yard zone."""
    aoi = [(0, 0), (260, 0), (260, 160), (0, 160), (0, 0)]
    feats = [
        {"type": "Feature", "properties": {"role": "aoi", "name": "aoi"},
         "geometry": {"type": "Polygon", "coordinates": [_ll(aoi)]}},
        {"type": "Feature", "properties": {"role": "track", "name": "mainline"},
         "geometry": {"type": "LineString", "coordinates": _ll([(5, 80), (255, 80)])}},
        {"type": "Feature", "properties": {"role": "track", "name": "siding"},
         "geometry": {"type": "LineString", "coordinates": _ll([(5, 84.8), (255, 84.8)])}},
        {"type": "Feature", "properties": {"role": "zone", "name": "yard"},
         "geometry": {"type": "Polygon", "coordinates": [_ll([(10, 60), (250, 60), (250, 105),
                                                              (10, 105), (10, 60)])]}},
    ]
    path = tmp_path / "tiny.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _scenario(site: Path, shift=(0.0, 0.0), extra: str = "") -> str:
    return f"""
site = "{site}"
name = "tiny"
seed = 5
start = 2023-10-02T00:00:00Z
end = 2023-10-15T00:00:00Z

[[trains]]
id = "A"
cars = [["locomotive", 1], ["covered_car", 5], ["tank_car", 2]]

[[trains]]
id = "B"
cars = [["open_car", 4]]

[[events]]
train = "A"
at = 2023-10-02T01:00:00Z
action = "arrive"
track = "mainline"
offset_m = 20.0

[[events]]
train = "B"
at = 2023-10-03T01:00:00Z
action = "arrive"
track = "siding"
offset_m = 60.0
dwell_h = 30

[[events]]
train = "A"
at = 2023-10-10T00:00:00Z
action = "leave"

[[scenes]]
at = 2023-10-04T02:15:00Z
gsd = 0.5
shift_m = [{shift[0]}, {shift[1]}]
noise = 2.0
{extra}
"""


def test_truth_counts_equal_cars_drawn_and_shift_is_recorded(tiny_site, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_scenario(tiny_site, shift=(6.0, -4.0)))
    out = tmp_path / "out"
    reports = render_scenario(path, out, quality=90)
    assert len(reports) == 1
    tif = reports[0].image
    assert tif.name == "tiny_20231004T0215Z.tif"
    stac = json.loads(tif.with_suffix(".json").read_text())
    props = stac["properties"]
    assert props["datetime"] == "2023-10-04T02:15:00Z"
    assert props["railwatch:geolocation_shift_m"] == [6.0, -4.0]
    assert props["railwatch:simulated"] is True and props["gsd"] == 0.5
    truth = json.loads((out / "truth" / f"{tif.stem}.geojson").read_text())["features"]
    assert len(truth) == 8 + 4  # trains A and B are both there on 2023-10-04
    # frames.csv counts are exactly the truth cars in the zone and not under cloud
    with (out / "truth" / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["scene", "acquired", "zone", "class", "count", "coverage"]
    counts = {r["class"]: int(r["count"]) for r in rows if r["zone"] == "yard"}
    expected = {c: 0 for c in counts}
    for feat in truth:
        if feat["properties"]["zone"] == "yard" and not feat["properties"]["under_cloud"]:
            expected[feat["properties"]["class"]] += 1
    assert counts == expected
    assert counts["covered_car"] == 5 and counts["open_car"] == 4 and counts["tank_car"] == 2
    with rasterio.open(tif) as src:
        assert src.crs.to_epsg() == 32652 and src.res == (0.5, 0.5)
        img = src.read()
        # each truth car covers pixels that differ from bare ballast: the car is drawn there
        to_local = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
        for feat in truth:
            lon, lat = shape(feat["geometry"]).centroid.coords[0]
            x, y = to_local.transform(lon, lat)
            r, c = src.index(x, y)
            assert img[:, r, c].astype(int).sum() > 0


def test_geolocation_shift_moves_the_content(tiny_site, tmp_path):
    images = []
    for shift in ((0.0, 0.0), (6.0, -4.0)):
        path = tmp_path / f"s{shift[0]}.toml"
        path.write_text(_scenario(tiny_site, shift=shift))
        sc = load_scenario(path)
        world = build_world(load_site(sc.site), sc.seed)
        book = build_train_book(sc)
        spec = sc.scenes[0]
        scene = render_scene(world, spec, cars_at(sc, world, book, spec.at))
        images.append(scene.image.mean(axis=-1).astype(np.float32))
        if shift != (0.0, 0.0):
            for true, seen in zip(scene.cars, scene.apparent, strict=True):
                assert seen.centre[0] - true.centre[0] == pytest.approx(6.0)
                assert seen.centre[1] - true.centre[1] == pytest.approx(-4.0)
    a, b = images
    core = (slice(40, -40), slice(40, -40))
    best = min(
        (np.abs(np.roll(a, (dr, dc), axis=(0, 1))[core] - b[core]).mean(), (dr, dc))
         for dr in range(0, 14) for dc in range(6, 18)
    )
    assert best[1] == (8, 12)  # 4 m south = 8 rows down, 6 m east = 12 columns right


def test_weekly_truth_counts_unique_cars(tiny_site, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_scenario(tiny_site))
    sc = load_scenario(path)
    world = build_world(load_site(sc.site), sc.seed)
    rows = weekly_rows(sc, world, build_train_book(sc))
    get = {(r.week, r.zone, r.cls): r for r in rows}
    assert get[("2023-W40", "yard", "covered_car")].unique_cars == 5
    assert get[("2023-W40", "yard", "open_car")].unique_cars == 4
    assert get[("2023-W40", "yard", "open_car")].arrivals == 4
    assert get[("2023-W41", "yard", "covered_car")].unique_cars == 5  # leaves on 2023-10-10
    assert get[("2023-W41", "yard", "open_car")].unique_cars == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('start = 2023-10-01T00:00:00Z\nend = 2023-10-02T00:00:00Z\n', "missing `site`"),
        ('site = "x"\nstart = 2023-10-01T00:00:00\nend = 2023-10-02T00:00:00Z\n', "no time zone"),
        ('site = "x"\nstart = 2023-10-01T00:00:00Z\nend = 2023-10-02T00:00:00Z\n'
         '[[trains]]\nid = "A"\ncars = [["boxcar", 3]]\n', "unknown car class 'boxcar'"),
        ('site = "x"\nstart = 2023-10-01T00:00:00Z\nend = 2023-10-02T00:00:00Z\n'
         '[[events]]\ntrain = "Z"\nat = 2023-10-01T01:00:00Z\naction = "arrive"\n', "not defined"),
        ('site = "x"\nstart = 2023-10-01T00:00:00Z\nend = 2023-10-02T00:00:00Z\n'
         '[[trains]]\nid = "A"\ncars = [["open_car", 3]]\n'
         '[[events]]\ntrain = "A"\nat = 2023-10-01T01:00:00Z\naction = "leave"\n', "not at the site"),
        ('site = "x"\nstart = 2023-10-01T00:00:00Z\nend = 2023-10-02T00:00:00Z\n'
         '[[scenes]]\nat = 2023-10-01T01:00:00Z\ncloud_fraction = 2.0\n', "cloud_fraction"),
        ('site = "x"\nstart = 2023-10-01T00:00:00Z\nend = [\n', "not valid TOML"),
    ],
)
def test_scenario_errors_name_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"bad\.toml") as err:
        load_scenario(path)
    assert message in str(err.value)


def test_train_too_long_for_its_track_is_refused(tiny_site, tmp_path):
    text = _scenario(tiny_site).replace('offset_m = 20.0', 'offset_m = 200.0')
    path = tmp_path / "long.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"does not fit on mainline"):
        render_scenario(path, tmp_path / "out")


def test_scene_times_are_utc_and_sorted():
    doc = {
        "site": "x",
        "start": datetime(2023, 10, 1, tzinfo=UTC),
        "end": datetime(2023, 10, 9, tzinfo=UTC),
        "scenes": [
            {"at": datetime(2023, 10, 5, 2, tzinfo=UTC)},
            {"at": datetime(2023, 10, 3, 2, tzinfo=UTC)},
        ],
    }
    sc = parse_scenario(doc)
    assert [s.stamp for s in sc.scenes] == ["20231003T0200Z", "20231005T0200Z"]


def test_every_truth_car_is_drawn_where_truth_says(tiny_site, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_scenario(tiny_site, shift=(3.0, 2.0)))
    sc = load_scenario(path)
    world = build_world(load_site(sc.site), sc.seed)
    spec = sc.scenes[0]
    with_cars = render_scene(world, spec, cars_at(sc, world, build_train_book(sc), spec.at))
    empty = render_scene(world, spec, [])
    diff = np.abs(with_cars.image.astype(int) - empty.image.astype(int)).sum(axis=-1)
    inv = ~with_cars.grid.transform
    for car in with_cars.apparent:
        col, row = inv @ car.centre
        r, c = int(row), int(col)
        assert diff[r - 1 : r + 2, c - 1 : c + 2].mean() > 15, car.car_id
    # far from every car (and its shadow) nothing changed: same ground, same sensor noise
    assert diff[:30].max() == 0
