"""The review layer: places worth an analyst's look, ranked; and the QGIS styles."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import shapely
from rasterio.crs import CRS

from railwatch.classes import CLASSES
from railwatch.detect.detections import Detections
from railwatch.report.qgis import detections_style, review_style
from railwatch.report.review import PlaceKind, review_places, string_gaps

UTM = CRS.from_epsg(32652)


def _string(xs: list[float], y: float = 0.0, length: float = 15.0, width: float = 3.0) -> np.ndarray:
    """Cars nose to tail along x, centred at ``xs``."""
    return np.array([[[x - length / 2, y - width / 2], [x + length / 2, y - width / 2],
                      [x + length / 2, y + width / 2], [x - length / 2, y + width / 2]] for x in xs])


def _detections(corners, conf, naming=None, classes=None):
    n = len(corners)
    return Detections(corners, np.zeros(n, np.int64) if classes is None else np.asarray(classes),
                      np.asarray(conf, float), np.full(n, None, object), np.full(n, "s.tif", object), UTM,
                      None if naming is None else np.asarray(naming, float))


def test_a_car_sized_gap_in_a_string_is_found_and_a_coupler_gap_is_not():
    # 1.5 m coupler gaps, then a 16.5 m hole where one car is missing, then two more cars
    cars = _string([0.0, 16.5, 33.0, 66.0, 82.5])
    (gap,) = string_gaps(cars)
    box, free = gap
    assert abs(free - 18.0) < 1e-6
    assert abs(box.mean(axis=0)[0] - 49.5) < 1e-6 and abs(box.mean(axis=0)[1]) < 1e-6
    # a neighbouring track 4.5 m away is another string, not a neighbour
    assert string_gaps(np.concatenate([_string([0.0]), _string([20.0], y=4.5)])) == []
    # turned 37°: the same gap is found
    turn = np.array([[np.cos(0.65), -np.sin(0.65)], [np.sin(0.65), np.cos(0.65)]])
    assert len(string_gaps(cars @ turn.T)) == 1


def test_places_are_ranked_unsure_boxes_split_votes_and_gaps():
    cars = _string([0.0, 16.5, 33.0, 66.0])
    d = _detections(cars, [0.9, 0.22, 0.8, 0.95], naming=[0.99, 0.97, 0.4, 0.9],
                    classes=[CLASSES.index("covered_car")] * 4)
    places = review_places(d)
    kinds = [p.kind for p in places]
    assert sorted(kinds) == sorted([PlaceKind.FINDER_UNSURE, PlaceKind.NAMER_UNSURE, PlaceKind.STRING_GAP])
    assert [p.score for p in places] == sorted((p.score for p in places), reverse=True)
    unsure = next(p for p in places if p.kind is PlaceKind.FINDER_UNSURE)
    assert unsure.detection == 1 and "0.22" in unsure.why
    split = next(p for p in places if p.kind is PlaceKind.NAMER_UNSURE)
    assert split.detection == 2 and "covered_car with probability 0.40" in split.why
    # a confident, well-named, unbroken string has nothing to look at
    assert review_places(_detections(_string([0.0, 16.5]), [0.9, 0.9], naming=[0.95, 0.95])) == []


def test_the_styles_are_qgis_xml_with_a_category_per_class():
    for text, attr, values in ((detections_style(), "class", set(CLASSES)),
                               (review_style(), "kind", {k.value for k in PlaceKind})):
        root = ET.fromstring(text.split("\n", 1)[1])  # after the DOCTYPE line
        renderer = root.find("renderer-v2")
        assert renderer is not None and renderer.get("attr") == attr
        assert {c.get("value") for c in renderer.iter("category")} == values
        assert root.find("labeling/settings/text-style") is not None


def test_every_output_set_has_the_review_layer_and_the_styles(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from conftest import write_scene, write_site
    from fake_detector import FakeDetector

    from railwatch.cli import main
    from railwatch.site import load_site

    lon, lat = 130.6081, 42.4214
    site_path = write_site(tmp_path / "site.geojson", lon, lat)
    site = load_site(site_path)
    (tmp_path / "img").mkdir()
    write_scene(tmp_path / "img" / "a_20231003.tif", "EPSG:32652", lon, lat, seed=1)
    centre = site.to_local(shapely.Point(lon, lat))
    cars = [(centre.x - 40 + 16.5 * k, centre.y, "covered_car") for k in (0, 1, 3)]  # one missing
    det = FakeDetector(site.crs, cars, naming=0.5)
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["count", str(tmp_path / "img"), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    review = json.loads((out / "review.geojson").read_text())["features"]
    assert [f["properties"]["rank"] for f in review] == list(range(1, len(review) + 1))
    assert {f["properties"]["kind"] for f in review} == {"namer_unsure", "string_gap"}
    assert (out / "detections.qml").is_file() and (out / "review.qml").is_file()
    listed = {f["path"] for f in json.loads((out / "run.json").read_text())["files"]}
    assert {"review.geojson", "detections.qml", "review.qml"} <= listed
