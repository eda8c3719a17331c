"""Simulator physics: the sun's position, shadow direction, car sizes in pixels."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.carpaint import paint_car
from railwatch.simulate.imaging import View, illuminate
from railwatch.simulate.stock import CarClass, PlacedCar, random_car
from railwatch.simulate.sun import Sun, cast_shadows, solar_position


def test_solar_position_known_values():
    # June solstice, Greenwich at solar noon: elevation = 90 - lat + 23.44, sun due south
    sun = solar_position(51.4769, 0.0, datetime(2023, 6, 21, 12, 2, tzinfo=UTC))
    assert sun.elevation_deg == pytest.approx(90 - 51.4769 + 23.44, abs=0.1)
    assert sun.azimuth_deg == pytest.approx(180.0, abs=1.0)
    # March equinox sunrise on the equator: in the east, on the horizon (with refraction)
    sun = solar_position(0.0, 0.0, datetime(2023, 3, 20, 6, 7, tzinfo=UTC))
    assert sun.azimuth_deg == pytest.approx(90.0, abs=0.5)
    assert sun.elevation_deg == pytest.approx(0.3, abs=0.5)
    # Tumangang, 2023-10-05 02:15Z (11:15 local): hand-computed 41.6° elevation, SSE
    sun = solar_position(42.42, 130.627, datetime(2023, 10, 5, 2, 15, tzinfo=UTC))
    assert sun.elevation_deg == pytest.approx(41.6, abs=0.3)
    assert 155 < sun.azimuth_deg < 170
    # southern hemisphere summer noon: sun to the north
    sun = solar_position(-33.87, 151.21, datetime(2023, 12, 22, 2, 0, tzinfo=UTC))
    assert sun.azimuth_deg > 340 or sun.azimuth_deg < 20


def test_solar_position_needs_aware_time():
    with pytest.raises(ValueError, match="timezone"):
        solar_position(42.0, 130.0, datetime(2023, 10, 5, 2, 15))


def _one_car(sun: Sun, gsd: float = 0.3, lean: tuple[float, float] = (0.0, 0.0)):
    rng = np.random.default_rng(1)
    car = random_car(CarClass.COVERED_CAR, rng)
    window = RasterWindow(-20.0, 20.0, gsd, round(40 / gsd), round(40 / gsd))
    canvas = Canvas(window)
    canvas.albedo[:] = 0.5
    placed = PlacedCar(car, (0.0, 0.0), math.radians(25.0))
    paint_car(canvas, placed, sun, lean=lean)
    return car, placed, canvas


@pytest.mark.parametrize("azimuth", [45.0, 135.0, 200.0, 300.0])
def test_shadow_falls_away_from_the_sun(azimuth):
    sun = Sun(azimuth, 35.0)
    _, _, canvas = _one_car(sun)
    radiance = illuminate(canvas, sun, ambient=0.3)
    lit_ground = 0.5
    dark = (radiance.mean(axis=-1) < 0.6 * lit_ground) & (canvas.height == 0)
    rows, cols = np.nonzero(dark)
    assert len(rows) > 50
    x = canvas.window.x0 + (cols.mean() + 0.5) * canvas.window.gsd
    y = canvas.window.y1 - (rows.mean() + 0.5) * canvas.window.gsd
    bearing = math.degrees(math.atan2(x, y)) % 360  # of the shadow's centroid from the car
    diff = (bearing - (azimuth + 180.0) + 180.0) % 360.0 - 180.0
    assert abs(diff) < 25.0


def test_shadow_length_from_height_map():
    h = np.zeros((200, 200), dtype=np.float32)
    h[100, 100] = 10.0  # a 10 m mast, one pixel
    sun = Sun(180.0, 45.0)  # shadow points north, 10 m long
    shade = cast_shadows(h, sun, gsd=0.5)
    col = shade[:, 100]
    rows = np.nonzero(col > 0.5)[0]
    assert rows.min() == pytest.approx(100 - 20, abs=2)  # 10 m at 0.5 m/px, to the north
    assert rows.max() <= 100
    assert shade[110:, :].max() == 0.0


@pytest.mark.parametrize("gsd", [0.25, 0.3, 0.5, 0.8])
def test_car_size_in_pixels(gsd):
    car, _, canvas = _one_car(Sun(180.0, 60.0), gsd=gsd)
    covered = (canvas.height > 0).sum()
    assert covered == pytest.approx(car.length * car.width / gsd**2, rel=0.12)


def test_off_nadir_view_moves_the_roof_away_from_the_sensor():
    view = View(20.0, 90.0)  # the sensor in the east: tall things lean west
    lean = view.lean
    assert lean[0] < 0 and abs(lean[1]) < 1e-9
    _, _, canvas = _one_car(Sun(180.0, 60.0), lean=lean)
    _, cols = np.nonzero(canvas.height > 0)
    x = canvas.window.x0 + (cols.mean() + 0.5) * canvas.window.gsd
    assert x < -0.3  # the painted car (roof and side) sits west of its footprint's centre
