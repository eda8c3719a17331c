from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import CAR_LENGTH_M, CAR_WIDTH_M

from railwatch.errors import RailwatchError
from railwatch.training.labels import ChipSettings, chip_labels, export_from_labels, read_labels


def _car_feature(lon: float, lat: float, cls: str = "covered_car") -> dict:
    dlon = CAR_LENGTH_M / 2 / (111_320.0 * math.cos(math.radians(lat)))
    dlat = CAR_WIDTH_M / 2 / 111_320.0
    ring = [[lon - dlon, lat - dlat], [lon + dlon, lat - dlat], [lon + dlon, lat + dlat],
            [lon - dlon, lat + dlat], [lon - dlon, lat - dlat]]
    return {"type": "Feature", "properties": {"class": cls},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_labelled_geotiffs_become_chips_with_car_sized_obb_labels(make_scene, tmp_path):
    scenes = [make_scene(name=f"yard_{i}_20231005.tif", crs=crs, lon=8.54 + i * 0.01, lat=47.37)
              for i, crs in enumerate(["EPSG:2056", "EPSG:4326", "EPSG:32632"])]
    labels = tmp_path / "labels.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection",
                                  "features": [_car_feature(s.lon, s.lat) for s in scenes]}))
    out = tmp_path / "ds"
    yml = export_from_labels([s.path for s in scenes], labels, out, ChipSettings(val_fraction=0.34))
    assert yml.is_file()
    label_files = sorted(out.glob("labels/*/*.txt"))
    lines = [ln for f in label_files for ln in f.read_text().splitlines() if ln.strip()]
    assert lines, "no labelled chip"
    assert list(out.glob("labels/val/*.txt")) and list(out.glob("labels/train/*.txt"))
    for line in lines:
        values = np.array(line.split()[1:], dtype=float).reshape(4, 2) * 320
        sides = sorted(np.linalg.norm(np.roll(values, -1, axis=0) - values, axis=1))
        assert line.split()[0] == "0"
        assert sides[-1] == pytest.approx(CAR_LENGTH_M / 0.3, abs=2.0)
        assert sides[0] == pytest.approx(CAR_WIDTH_M / 0.3, abs=2.0)
    # Each car is labelled whole in at least one chip of its image.
    assert len(lines) >= 3


def test_cut_cars_are_clipped_or_dropped():
    car = np.array([[[280, 100], [344, 100], [344, 111], [280, 111]]], float)  # 24 of 64 px outside
    (line,) = chip_labels(car, np.array([2]), 320)
    pts = np.array(line.split()[1:], float).reshape(4, 2)
    assert line.startswith("2 ") and pts.max() <= 1.0
    mostly_out = car + np.array([50, 0])
    assert chip_labels(mostly_out, np.array([2]), 320) == []


def test_bad_labels_are_refused(tmp_path):
    bad = tmp_path / "l.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class": "boxcar"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}))
    with pytest.raises(RailwatchError, match="feature 0 has class 'boxcar'; use one of covered_car"):
        read_labels(bad)


def test_dataset_from_labels_command(make_scene, tmp_path):
    from click.testing import CliRunner

    from railwatch.cli import main

    scenes = [make_scene(name=f"y{i}_20231005.tif", lon=8.54 + i * 0.01, lat=47.37) for i in range(2)]
    labels = tmp_path / "cars.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection",
                                  "features": [_car_feature(s.lon, s.lat) for s in scenes]}))
    out = tmp_path / "ds"
    result = CliRunner().invoke(main, ["dataset", "from-labels", *[str(s.path) for s in scenes],
                                       "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "data.yaml").is_file() and list(out.glob("labels/*/*.txt"))


def test_features_that_cannot_be_cars_are_skipped_and_nothing_half_made_is_left(make_scene, tmp_path):
    from click.testing import CliRunner

    from railwatch.cli import main

    scene = make_scene(name="y_20231005.tif", lon=8.54, lat=47.37)
    good = _car_feature(scene.lon, scene.lat)
    nan = _car_feature(scene.lon, scene.lat)
    nan["geometry"]["coordinates"][0][1][0] = float("nan")
    a, b = good["geometry"]["coordinates"][0][:2]
    flat = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[a, b, a]]}}
    labels = tmp_path / "cars.geojson"
    other = _car_feature(scene.lon + 0.0012, scene.lat)  # ~90 m east: another chip
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": [nan, good, flat, other]}))
    out = tmp_path / "ds"
    result = CliRunner().invoke(main, ["dataset", "from-labels", str(scene.path), "--labels", str(labels),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "feature 0 skipped: its coordinates are not all numbers" in result.stderr
    assert "feature 2 skipped: it has no area" in result.stderr
    assert "Traceback" not in result.output + result.stderr and list(out.glob("labels/*/*.txt"))
    only_bad = tmp_path / "bad.geojson"
    only_bad.write_text(json.dumps({"type": "FeatureCollection", "features": [nan, flat]}))
    result = CliRunner().invoke(main, ["dataset", "from-labels", str(scene.path), "--labels", str(only_bad),
                                       "--out", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no labelled cars (2 features skipped)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "none").exists()
