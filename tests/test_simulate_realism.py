"""The simulator against the facts of real 0.25–0.5 m yard imagery (DOMAIN.md), measured on renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import shapely.affinity
import shapely.ops
from shapely.geometry import LineString

from railwatch.classes import CarClass
from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.carpaint import paint_car
from railwatch.simulate.chips import render_chip
from railwatch.simulate.fleet import ROOF_P, ROOF_TIERS, Stock, roof_tier
from railwatch.simulate.ground import Season
from railwatch.simulate.imaging import Sensor, expose, illuminate
from railwatch.simulate.stock import random_car
from railwatch.simulate.sun import Sun
from railwatch.simulate.track import TrackLook, paint_tracks
from railwatch.simulate.trains import place_string
from railwatch.simulate.yard import YardStyle, random_style, random_yard
from railwatch.simulate.yardscene import YardScene, render_yard_scene

CLEAN = Sensor(blur_px=0.0, noise=0.0, jpeg_quality=None, sharpen=0.0, haze=0.0, saturation=1.0)


def _string_on_ballast(sun: Sun, gsd: float = 0.25, ambient: float = 0.5):
    """A string of European covered cars along x on a flat grey ground, lit by ``sun``."""
    window = RasterWindow(-40.0, 20.0, gsd, round(40 / gsd), round(80 / gsd))
    canvas = Canvas(window)
    canvas.albedo[:] = 0.5
    rng = np.random.default_rng(4)
    cars = [random_car(CarClass.COVERED_CAR, rng, stock=Stock.EUROPEAN) for _ in range(6)]
    placed = place_string(LineString([(-60, 0), (60, 0)]), cars, 22.0, [1.5] * len(cars))
    for p in placed:
        paint_car(canvas, p, sun)
    img = expose(illuminate(canvas, sun, ambient=ambient), CLEAN, rng).astype(float).mean(axis=-1)
    return canvas, placed, img


@pytest.mark.parametrize("elevation", [40.0, 52.0, 65.0])
def test_shadow_band_is_crisp_and_about_as_wide_as_the_cars(elevation):
    sun = Sun(180.0, elevation)  # from the south: shadows fall north, across the string
    canvas, placed, img = _string_on_ballast(sun)
    g = canvas.window.gsd
    car = max(placed, key=lambda p: p.car.length)
    col = round((car.centre[0] - canvas.window.x0) / g)
    profile = img[:, col]
    car_rows = np.flatnonzero(canvas.height[:, col] > 0.5)
    north = profile[: car_rows.min()]  # ground north of the car, top of the image first
    lit = float(np.median(profile[:20]))
    dark = north < 0.75 * lit
    width_m = dark[::-1].argmin() * g  # the dark run next to the car
    expected = car.car.height / math.tan(math.radians(elevation))
    assert width_m == pytest.approx(expected, abs=2.5 * g)
    assert 0.5 * car.car.width <= width_m <= 1.8 * car.car.width  # "about as wide as the cars"
    # crisp: the far edge goes from shadow to light within two pixels (no soft blur)
    edge = car_rows.min() - round(width_m / g)
    shadow = float(np.median(north[edge + 2 : car_rows.min() - 1]))
    assert profile[edge - 2] > shadow + 0.8 * (lit - shadow)
    assert profile[edge + 2] < shadow + 0.2 * (lit - shadow)
    # the shadow on the ground is about `ambient` as bright as the sunlit ground (real: 65/123)
    assert shadow / lit == pytest.approx(0.5, abs=0.08)


def test_shadows_merge_along_a_string():
    sun = Sun(200.0, 50.0)
    canvas, placed, img = _string_on_ballast(sun)
    g = canvas.window.gsd
    row = round((canvas.window.y1 - 2.5) / g)  # a line in the shadow band, just north of the string
    xs = [p.centre[0] for p in placed]
    c0 = round((min(xs) - canvas.window.x0) / g)
    c1 = round((max(xs) - canvas.window.x0) / g)
    lit = float(np.median(img[:20]))
    assert (img[row, c0:c1] < 0.75 * lit).mean() > 0.9  # one band, hardly broken by the car gaps


def test_wagon_sizes_follow_the_real_yard():
    rng = np.random.default_rng(0)
    cars = [random_car(c, rng, stock=Stock.EUROPEAN) for c in
            rng.choice(list(CarClass)[:4], 2000)]
    lengths = np.array([c.length for c in cars])
    widths = np.array([c.width for c in cars])
    assert lengths.min() >= 9.5 and lengths.max() <= 22.0
    assert 0.2 <= (lengths < 13.0).mean() <= 0.45  # two-axle wagons are common
    assert 13.0 <= np.median(lengths) <= 16.5  # the real yard: median 14.4 m
    assert widths.min() >= 2.7 and widths.max() <= 3.1 and 2.85 <= np.median(widths) <= 3.0
    # 1520 mm stock keeps the site scenes' sizes
    russian = [random_car(CarClass.COVERED_CAR, rng) for _ in range(300)]
    assert min(c.length for c in russian) >= 14.5 and min(c.width for c in russian) >= 3.05


def test_roofs_are_a_third_dark_a_third_mid_a_third_bright():
    for tier in (0, 1, 2):
        assert ROOF_P[tier == ROOF_TIERS].sum() == pytest.approx(1 / 3)
    rng = np.random.default_rng(1)
    tiers = np.array([roof_tier(random_car(CarClass.COVERED_CAR, rng, stock=Stock.EUROPEAN).look.color)
                      for _ in range(1500)])
    shares = np.bincount(tiers, minlength=3) / len(tiers)
    assert np.all(np.abs(shares - 1 / 3) < 0.08), shares  # weathering moves a few across a border


def test_yards_of_many_mostly_empty_tracks():
    rng = np.random.default_rng(2)
    styles = [random_style(rng) for _ in range(400)]
    big = [s for s in styles if s.tracks[0] >= 10]
    assert 0.35 <= len(big) / len(styles) <= 0.55
    occupied = []
    for k in range(12):
        layout = random_yard(np.random.default_rng(k), 80.0, Season.EARLY_AUTUMN,
                             YardStyle(Stock.EUROPEAN, (20, 30), 0.3, no_cars=0.0))
        assert 20 <= len(layout.tracks) <= 31  # (a switch curve may add one)
        view = shapely.box(-80, -80, 80, 80)
        seen = [t for t in layout.tracks if t.intersects(view)]
        with_cars = {i for i, t in enumerate(seen) if any(t.distance(shapely.Point(c.centre)) < 0.5
                                                          for c in layout.cars)}
        occupied.append(len(with_cars) / max(len(seen), 1))
    assert np.mean(occupied) < 0.5  # most tracks are empty ballast


def test_catenary_masts_stand_every_60_m_and_cast_long_thin_shadows():
    layout = None
    for k in range(40):
        candidate = random_yard(np.random.default_rng(k), 150.0, Season.EARLY_AUTUMN,
                                YardStyle(Stock.EUROPEAN, (12, 16), 0.3, electrified=1.0, curved=0.0))
        if len(candidate.catenary.masts) >= 6:
            layout = candidate
            break
    assert layout is not None
    masts = layout.catenary.masts
    along = np.asarray(layout.tracks[0].coords[-1]) - np.asarray(layout.tracks[0].coords[0])
    along /= np.linalg.norm(along)
    s = np.sort(np.unique(np.round(masts @ along, 0)))
    steps = np.diff(s)
    steps = steps[steps > 5]
    assert np.all((steps > 50) & (steps < 70))
    assert np.all((layout.catenary.mast_height > 7.5) & (layout.catenary.mast_height < 12.5))


def test_sleeper_ladder_is_visible_at_quarter_metre():
    g = 0.25
    window = RasterWindow(-20.0, 5.0, g, round(10 / g), round(40 / g))
    canvas = Canvas(window)
    canvas.albedo[:] = 0.45
    look = TrackLook(ballast=(0.5, 0.5, 0.49), crib=(0.36, 0.3, 0.25), stain=0.4, sleeper=(0.72, 0.71, 0.69),
                     sleeper_length_m=2.6, sleeper_spacing_m=0.6, sleeper_width_m=0.26,
                     sleeper_opacity=0.9, rail_offset_m=0.75, rail_shine=0.0, bed_half_m=1.9)
    paint_tracks(canvas, [LineString([(-30, 0), (30, 0)])], look, 0)
    img = expose(illuminate(canvas, Sun(180.0, 50.0)), CLEAN, np.random.default_rng(0)).mean(axis=-1)
    row = round(window.y1 / g - 1.15 / g)  # between a rail and the sleeper end
    profile = img[row] - img[row].mean()
    spectrum = np.abs(np.fft.rfft(profile))
    freq = np.fft.rfftfreq(len(profile), d=g)  # cycles per metre
    peak = freq[1:][spectrum[1:].argmax()]
    assert peak == pytest.approx(1 / 0.6, rel=0.05)
    assert profile.std() > 6  # a ladder of light sleepers, not a flat band


def test_sensor_sharpening_leaves_halos_and_noise_is_there():
    window = RasterWindow(0.0, 10.0, 0.3, 34, 34)
    canvas = Canvas(window)
    canvas.albedo[:] = 0.3
    canvas.albedo[:, 17:] = 0.7
    radiance = illuminate(canvas, Sun(180.0, 50.0))
    flat = expose(radiance, CLEAN, np.random.default_rng(0)).mean(axis=-1)
    sharp = expose(radiance, Sensor(blur_px=0.5, noise=0.0, jpeg_quality=None, sharpen=1.2, sharpen_px=1.5,
                                    haze=0.0, saturation=1.0), np.random.default_rng(0)).mean(axis=-1)
    assert sharp[:, 18:22].max() > flat[:, 25:].max() + 10  # bright overshoot beside the edge
    assert sharp[:, 12:16].min() < flat[:, :10].min() - 10  # dark undershoot
    noisy = expose(radiance, Sensor(blur_px=0.0, noise=6.0, jpeg_quality=None, sharpen=0.0, haze=0.0),
                   np.random.default_rng(0)).astype(float)
    assert noisy[:, :12].std() == pytest.approx(6.0, rel=0.3)


def test_hard_negatives_appear_beside_cars_never_on_them():
    kinds = {"bands": 0, "platforms": 0, "boxes": 0}
    for k in range(60):
        layout = random_yard(np.random.default_rng(k), 48.0, Season.SUMMER)
        neg = layout.negatives
        kinds["bands"] += bool(neg.bands)
        kinds["platforms"] += bool(neg.platforms)
        kinds["boxes"] += bool(neg.boxes)
        cars = shapely.union_all([p.polygon for p in layout.cars]) if layout.cars else shapely.Polygon()
        for p in neg.platforms:
            assert p.outline.intersection(cars).area < 0.5
        for b in neg.boxes:
            c, s = math.cos(b.heading), math.sin(b.heading)
            hl, hw = b.length / 2, b.width / 2
            fp = shapely.Polygon([(b.centre[0] + u * c - v * s, b.centre[1] + u * s + v * c)
                                  for u, v in ((-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw))])
            assert fp.intersection(cars).area < 0.5  # no negative stands on a car
        for band in neg.bands:  # a shadow band with no car: no car stands on its track
            span = shapely.ops.substring(band.track, band.s0, band.s1)
            assert not any(span.distance(shapely.Point(c.centre)) < 0.5 for c in layout.cars)
    assert all(v >= 3 for v in kinds.values()), kinds


def test_chip_labels_are_the_cars_only():
    for index in range(8):
        chip = render_chip(3, index, chip=160)
        half = 160 * chip.gsd * chip.scale / 2
        cars = [shapely.Polygon(c.corners()) for c in chip.cars]
        for lab in chip.labels:  # each label box lies on a car of the layout, nothing else
            xy = np.column_stack([lab.corners[:, 0] * 2 * half - half, half - lab.corners[:, 1] * 2 * half])
            box = shapely.Polygon(xy)
            lean = chip.view.lean
            best = max(box.intersection(shapely.affinity.translate(c, lean[0] * 4.5, lean[1] * 4.5)).area
                       / box.area for c in cars)
            assert best > 0.5


def test_generic_yard_scene_truth_is_where_the_cars_are_drawn(monkeypatch):
    from rasterio.features import rasterize

    import railwatch.simulate.yardpaint as yardpaint

    spec = YardScene(seed=5, size_m=90.0, sensor=CLEAN)
    scene = render_yard_scene(spec)
    assert scene.image.shape == (300, 300, 3) and scene.crs.to_epsg() == 32632
    assert len(scene.cars) >= 5
    monkeypatch.setattr(yardpaint, "paint_car", lambda *a, **k: None)  # the same scene, cars left out
    empty = render_yard_scene(spec)
    diff = np.abs(scene.image.astype(float) - empty.image.astype(float)).max(axis=-1)
    shapes = [shapely.Polygon(c.corners()) for c in scene.cars]
    bodies = rasterize([(p.buffer(-0.4), 1) for p in shapes], out_shape=diff.shape, transform=scene.transform)
    near = rasterize([(p.buffer(5.0), 1) for p in shapes], out_shape=diff.shape, transform=scene.transform)
    assert np.median(diff[bodies > 0]) > 10  # every truth box has a car drawn in it ...
    for p in shapes:
        inside = rasterize([(p.buffer(-0.4), 1)], out_shape=diff.shape, transform=scene.transform) > 0
        assert inside.sum() == 0 or (diff[inside] > 0).mean() > 0.9
    assert (diff[near == 0] > 0).mean() < 0.001  # ... and nothing is drawn away from them (but shadows)
