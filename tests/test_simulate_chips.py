"""Training chips: valid YOLO-OBB labels of the right size, determinism, export layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from railwatch.simulate.chips import export_yolo_obb, label_cars, render_chip
from railwatch.simulate.stock import CarClass, PlacedCar, random_car


def test_labels_are_normalised_obbs_of_car_size():
    rng = np.random.default_rng(0)
    car = random_car(CarClass.COVERED_CAR, rng)
    gsd, chip = 0.3, 320
    inside = PlacedCar(car, (3.0, -5.0), math.radians(30))
    cut = PlacedCar(car, (chip * gsd / 2 + 2.0, 0.0), 0.0)  # mostly outside: dropped
    half_in = PlacedCar(car, (chip * gsd / 2 - car.length * 0.3, 10.0), 0.0)
    labels = label_cars([inside, cut, half_in], gsd, chip)
    assert len(labels) == 2
    c = labels[0].corners * chip * gsd  # metres
    sides = np.linalg.norm(np.roll(c, -1, axis=0) - c, axis=1)
    assert sorted(sides)[2] == pytest.approx(car.length, abs=1e-3)
    assert sorted(sides)[0] == pytest.approx(car.width, abs=1e-3)
    clipped = labels[1].corners * chip * gsd
    extent = clipped[:, 0].max() - clipped[:, 0].min()
    assert extent == pytest.approx(car.length * 0.8, abs=0.05)
    for lab in labels:
        parts = lab.line().split()
        assert parts[0] == "0" and len(parts) == 9
        assert all(0.0 <= float(v) <= 1.0 for v in parts[1:])


def test_chip_is_deterministic_and_sized():
    a = render_chip(7, 3)
    b = render_chip(7, 3)
    assert a.image.shape == (320, 320, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image)
    assert [lab.line() for lab in a.labels] == [lab.line() for lab in b.labels]
    assert 0.25 <= a.native_gsd <= 0.8
    assert not np.array_equal(a.image, render_chip(7, 4).image)


def test_chip_labels_match_cars_in_pixels():
    for index in range(6):
        chip = render_chip(11, index, gsd=0.5, chip=256)
        assert 0.92 <= chip.scale <= 1.08  # scale jitter around the model's gsd
        metres = 0.5 * chip.scale  # per chip pixel
        for lab in chip.labels:
            c = lab.corners * 256  # pixels
            sides = np.sort(np.linalg.norm(np.roll(c, -1, axis=0) - c, axis=1))
            assert 0.35 * 2.7 <= sides[0] * metres + 1e-6 <= 3.4  # width, m (cut cars are thinner)
            assert sides[3] * metres <= 22.01  # never longer than the longest wagon


def test_export_writes_ultralytics_layout(tmp_path):
    out = tmp_path / "ds"
    data = export_yolo_obb(out, 5, seed=2, val_fraction=0.2, chip=128)
    doc = yaml.safe_load(data.read_text())
    assert doc["path"] == str(out.resolve())
    assert doc["train"] == "images/train" and doc["val"] == "images/val"
    assert doc["names"] == {0: "covered_car", 1: "open_car", 2: "tank_car", 3: "flat_car", 4: "locomotive"}
    assert len(list((out / "images" / "val").glob("*.png"))) == 1
    assert len(list((out / "images" / "train").glob("*.png"))) == 4
    for txt in (out / "labels").rglob("*.txt"):
        for line in txt.read_text().splitlines():
            parts = line.split()
            assert int(parts[0]) in range(5) and len(parts) == 9
