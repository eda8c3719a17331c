"""Quicklooks: boxes drawn where the cars are, in their class colour; crops of the busiest parts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from affine import Affine
from conftest import write_scene
from fake_detector import boxes
from rasterio.crs import CRS
from shapely.geometry import Point, box

from railwatch.imagery.scene import open_scene
from railwatch.imagery.tile import PixelWindow, Tile
from railwatch.report.quicklook import (
    CLASS_COLOURS,
    QuicklookSettings,
    busiest_squares,
    render,
    zone_quicklooks,
)

UTM = CRS.from_epsg(32652)


def test_a_box_is_drawn_on_the_car_in_its_class_colour_and_the_pixels_inside_are_untouched():
    gsd, x0, y1 = 0.5, 500_000.0, 4_700_000.0
    view = Tile(np.full((3, 100, 200), 90, np.uint8), np.ones((100, 200), bool),
                Affine(gsd, 0, x0, 0, -gsd, y1), UTM, datetime(2023, 10, 5, tzinfo=UTC), "s.tif",
                PixelWindow(0, 0, 100, 200))
    car = (x0 + 50.0, y1 - 25.0, "tank_car")  # 19.2 × 3.24 m, centred at pixel (100, 50)
    drawn = np.asarray(render(view, boxes([car], UTM), zoom=2, title="t"))
    assert drawn.shape[0] > 200 and drawn.shape[1] >= 400  # 2× the pixels, a legend below
    image, legend = drawn[:200, :400], drawn[200:]
    red = np.all(image == CLASS_COLOURS["tank_car"], axis=-1)
    rows, cols = np.nonzero(red)
    # the outline runs along the car's edges: 19.2 m = 76.8 px long, 3.24 m = 13 px wide at 2×
    assert abs((cols.max() - cols.min()) - 76.8) <= 2 and abs((rows.max() - rows.min()) - 13) <= 2
    assert abs((cols.max() + cols.min()) / 2 - 200) <= 1 and abs((rows.max() + rows.min()) / 2 - 100) <= 1
    assert (image[96:104, 165:235] == 90).all()  # inside the box: the scene's own pixels
    assert all(np.all(legend == c, axis=-1).any() for c in CLASS_COLOURS.values())  # the legend



def test_the_busiest_squares_hold_the_densest_strings_first():
    rng = np.random.default_rng(0)
    dense = rng.uniform(0, 100, (30, 2))  # 30 cars within 100 m
    sparse = rng.uniform(0, 40, (5, 2)) + np.array([600.0, 0.0])
    lone = np.array([[0.0, 900.0]])
    centres = np.concatenate([sparse, lone, dense])
    area = box(-50, -50, 1000, 1000)
    squares = busiest_squares(centres, area, side_m=150, n=3)
    held = [int(((centres[:, 0] >= a) & (centres[:, 0] <= c) & (centres[:, 1] >= b)
                 & (centres[:, 1] <= d)).sum()) for a, b, c, d in squares]
    assert held == [30, 5, 1]
    assert all(abs((c - a) - 150) < 1e-9 and abs((d - b) - 150) < 1e-9 for a, b, c, d in squares)
    assert busiest_squares(centres, box(2000, 2000, 2100, 2100)) == []  # no car in the area


def test_zone_quicklooks_are_the_whole_zone_and_native_resolution_crops(tmp_path):
    lon, lat = 130.6081, 42.4214
    image = write_scene(tmp_path / "s_20231005.tif", "EPSG:32652", lon, lat, gsd_m=0.4, size=600)
    scene = open_scene(image.path, UTM, box(0, 0, 1e7, 1e7))
    import pyproj

    cx, cy = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True).transform(lon, lat)
    cars = [(cx - 20.2 * k, cy, "covered_car") for k in range(4)]
    zone = Point(cx, cy).buffer(80.0)
    found = boxes(cars, UTM, "s_20231005.tif").with_zones(["yard"], [zone])
    looks = zone_quicklooks(scene, UTM, "yard", zone, found, {"yard": zone}, QuicklookSettings(crops=3))
    assert [look.suffix for look in looks] == ["", "crop1"]  # one string of cars: one busy part
    assert looks[1].caption == "zone yard, busiest part 1"
    side = 150 / scene.native_gsd  # 150 m at the native ~0.4 m: 375 px, drawn 2×2 each
    assert abs(looks[1].image.width - 2 * side) <= 4
    assert abs(looks[0].image.width - 220 / scene.native_gsd) <= 4  # the zone and 30 m margins
