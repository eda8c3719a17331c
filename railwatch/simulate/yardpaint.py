"""Painting a yard layout: its ground, tracks, cars, buildings and clutter around it (SIMULATED)."""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

from railwatch.simulate.canvas import Canvas
from railwatch.simulate.carpaint import paint_car
from railwatch.simulate.catenary import Catenary, paint_catenary
from railwatch.simulate.ground import (
    Palette,
    paint_box,
    paint_landcover,
    paint_surface,
    paint_trees,
    paint_truck,
)
from railwatch.simulate.negatives import paint_negatives
from railwatch.simulate.sun import Sun
from railwatch.simulate.surroundings import wall_of
from railwatch.simulate.track import paint_beds, paint_rails, paint_weeds
from railwatch.simulate.yard import YardLayout

__all__ = ["paint_yard"]


def paint_yard(
    canvas: Canvas,
    layout: YardLayout,
    palette: Palette,
    sun: Sun,
    seed: int,
    lean: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Paint a yard layout: ground, gravel, tracks, hard negatives, buildings, trees, cars, catenary."""
    rng = np.random.default_rng(seed)
    paint_landcover(canvas, palette, seed, patchiness=float(rng.uniform(0.2, 0.8)))
    for k, (poly, color_idx, ang) in enumerate(layout.fields):
        stripes = (float(rng.uniform(0.8, 4.0)), ang) if rng.random() < 0.7 else None
        paint_surface(canvas, poly, palette.field[color_idx], seed + 11 + k, cell_m=15.0,
                      amount=0.08, stripes=stripes)
    if layout.gravel is not None:
        same = layout.track_looks and rng.random() < 0.6  # the yard's own ballast, or other gravel
        gravel = layout.track_looks[0].ballast if same else palette.gravel
        paint_surface(canvas, layout.gravel, gravel, seed + 21, cell_m=2.5, amount=0.07, grain=0.1)
    road_colors = (palette.asphalt, palette.dirt_road, (0.62, 0.61, 0.58))
    for k, (road, width, kind) in enumerate(layout.roads):
        paint_surface(canvas, road.buffer(width / 2, cap_style="flat"), road_colors[kind], seed + 31 + k,
                      cell_m=5.0, amount=0.1, grain=0.05)
        if kind == 0 and rng.random() < 0.5:  # centre marking
            canvas.paint(canvas.line_coverage(road, 0.15) * 0.6, (0.85, 0.85, 0.8))
    paint_beds(canvas, layout.tracks, layout.track_looks, seed + 41)
    if layout.weeds > 0:
        where = shapely.union_all([t.buffer(2.5) for t in layout.tracks]) if layout.tracks else Polygon()
        if layout.gravel is not None:
            where = where.union(layout.gravel)
        paint_weeds(canvas, where, layout.weeds, palette, seed + 43)
    for strip in layout.strips:
        paint_surface(canvas, strip, palette.grass_dry, seed + 45, cell_m=3.0, amount=0.2, grain=0.1)
    paint_rails(canvas, layout.tracks, layout.track_looks)
    paint_negatives(canvas, layout.negatives, sun, seed + 47)
    east, north = sun.toward
    el = math.radians(sun.elevation_deg)
    toward = (east * math.cos(el), north * math.cos(el), math.sin(el))
    for b in (*layout.buildings, *layout.negatives.boxes):
        paint_box(canvas, b.centre, b.heading, b.length, b.width, b.color, b.height,
                  gable=b.gable, sun_toward=toward, ribs_m=b.ribs_m, rng=rng, lean=lean,
                  wall=wall_of(b, rng), floor=b.floor)
    for centre, heading in layout.trucks:
        paint_truck(canvas, centre, heading, rng, toward, lean)
    paint_trees(canvas, layout.tree_xy, layout.tree_r, layout.tree_h, palette, seed + 51,
                leafless=palette.snow > 0 or (rng.random() < 0.2 and palette.tree[0] > 0.3))
    for car in layout.cars:
        paint_car(canvas, car, sun, snow=layout.snow_on_cars, lean=lean)
    paint_catenary(canvas, layout.catenary)
    if len(layout.poles):
        tall = rng.uniform(15.0, 25.0, len(layout.poles))
        paint_catenary(canvas, Catenary(layout.poles, tall, (), ()))
