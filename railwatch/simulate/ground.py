"""The ground and what stands on it.

Land cover, fields, roads, buildings, trees and trucks (track beds are in
:mod:`railwatch.simulate.track`, overhead lines in :mod:`railwatch.simulate.catenary`).

Everything is painted into a :class:`~railwatch.simulate.canvas.Canvas` in world metres,
with textures from :mod:`railwatch.simulate.texture` so that neighbouring windows join
without seams. Heights go into the canvas's height map, from which shadows are cast later.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.texture import fbm, value_noise

__all__ = [
    "Building",
    "Palette",
    "Season",
    "paint_box",
    "paint_landcover",
    "paint_surface",
    "paint_trees",
    "paint_truck",
    "palette_for",
]

RGB = tuple[float, float, float]


class Season(enum.StrEnum):
    """The look of the vegetation and ground."""

    SUMMER = "summer"
    EARLY_AUTUMN = "early_autumn"
    LATE_AUTUMN = "late_autumn"
    WINTER = "winter"
    SNOW = "snow"


@dataclass(frozen=True, slots=True)
class Palette:
    """Ground colours of one scene (RGB, 0–1)."""

    grass: RGB
    grass_dry: RGB
    soil: RGB
    field: tuple[RGB, ...]
    gravel: RGB
    ballast: RGB
    tree: RGB
    asphalt: RGB
    dirt_road: RGB
    water: RGB
    snow: float  # 0–1: how much snow lies on open ground


_BASE: dict[Season, Palette] = {
    Season.SUMMER: Palette(
        grass=(0.30, 0.38, 0.21), grass_dry=(0.45, 0.46, 0.30), soil=(0.48, 0.40, 0.31),
        field=((0.30, 0.42, 0.20), (0.42, 0.48, 0.25), (0.62, 0.57, 0.38), (0.44, 0.36, 0.27)),
        gravel=(0.53, 0.51, 0.47), ballast=(0.46, 0.43, 0.39), tree=(0.15, 0.24, 0.11),
        asphalt=(0.30, 0.30, 0.31), dirt_road=(0.58, 0.51, 0.41), water=(0.17, 0.23, 0.21), snow=0.0,
    ),
    Season.EARLY_AUTUMN: Palette(
        grass=(0.38, 0.40, 0.25), grass_dry=(0.55, 0.50, 0.35), soil=(0.50, 0.42, 0.33),
        field=((0.66, 0.58, 0.38), (0.45, 0.36, 0.27), (0.40, 0.43, 0.25), (0.58, 0.50, 0.33)),
        gravel=(0.53, 0.51, 0.47), ballast=(0.46, 0.43, 0.39), tree=(0.26, 0.29, 0.13),
        asphalt=(0.31, 0.31, 0.32), dirt_road=(0.58, 0.51, 0.41), water=(0.19, 0.24, 0.23), snow=0.0,
    ),
    Season.LATE_AUTUMN: Palette(
        grass=(0.50, 0.45, 0.33), grass_dry=(0.60, 0.53, 0.39), soil=(0.45, 0.37, 0.29),
        field=((0.45, 0.36, 0.27), (0.60, 0.52, 0.37), (0.38, 0.31, 0.24), (0.55, 0.48, 0.35)),
        gravel=(0.52, 0.50, 0.46), ballast=(0.45, 0.42, 0.38), tree=(0.42, 0.33, 0.20),
        asphalt=(0.32, 0.32, 0.33), dirt_road=(0.55, 0.48, 0.39), water=(0.20, 0.24, 0.25), snow=0.0,
    ),
    Season.WINTER: Palette(
        grass=(0.52, 0.48, 0.40), grass_dry=(0.60, 0.56, 0.47), soil=(0.44, 0.39, 0.33),
        field=((0.46, 0.40, 0.33), (0.58, 0.53, 0.44), (0.40, 0.35, 0.30), (0.52, 0.47, 0.40)),
        gravel=(0.51, 0.50, 0.47), ballast=(0.42, 0.40, 0.37), tree=(0.34, 0.30, 0.26),
        asphalt=(0.33, 0.33, 0.34), dirt_road=(0.52, 0.47, 0.40), water=(0.28, 0.31, 0.33), snow=0.0,
    ),
    Season.SNOW: Palette(
        grass=(0.86, 0.87, 0.89), grass_dry=(0.78, 0.79, 0.81), soil=(0.70, 0.70, 0.72),
        field=((0.88, 0.89, 0.91), (0.82, 0.83, 0.85), (0.75, 0.75, 0.77), (0.90, 0.90, 0.92)),
        gravel=(0.70, 0.70, 0.71), ballast=(0.50, 0.49, 0.48), tree=(0.30, 0.28, 0.26),
        asphalt=(0.40, 0.40, 0.42), dirt_road=(0.72, 0.71, 0.71), water=(0.75, 0.78, 0.80), snow=0.8,
    ),
}


@dataclass(frozen=True, slots=True)
class Building:
    """A box on the ground: oriented footprint, roof colour, height, pitch and roof rib spacing.

    Buildings, sheds, container stacks (``ribs_m`` 0.3), parked vehicles; ``floor`` > 0 makes
    it a roof on posts (a platform canopy) that light passes under.
    """

    centre: tuple[float, float]
    heading: float
    length: float
    width: float
    color: tuple[float, float, float]
    height: float
    gable: float
    ribs_m: float
    floor: float = 0.0


def palette_for(season: Season, rng: np.random.Generator | None = None) -> Palette:
    """The palette of ``season``, with per-scene colour jitter when ``rng`` is given."""
    base = _BASE[Season(season)]
    if rng is None:
        return base

    def j(c: RGB, s: float = 0.06) -> RGB:
        f = rng.normal(1.0, s * 0.3, 3) * rng.normal(1.0, s)
        return (float(c[0] * f[0]), float(c[1] * f[1]), float(c[2] * f[2]))

    return Palette(
        grass=j(base.grass), grass_dry=j(base.grass_dry), soil=j(base.soil),
        field=tuple(j(c, 0.08) for c in base.field), gravel=j(base.gravel, 0.08),
        ballast=j(base.ballast, 0.08), tree=j(base.tree), asphalt=j(base.asphalt, 0.1),
        dirt_road=j(base.dirt_road), water=j(base.water), snow=base.snow,
    )


def _textured(
    window: RasterWindow, color: RGB, seed: int, cell_m: float, amount: float, grain: float
) -> np.ndarray:
    """A colour with multiplicative fractal texture and per-pixel grain, (rows, cols, 3)."""
    tone = 1.0 + amount * fbm(window, cell_m, seed, octaves=4)
    if grain > 0:
        tone += grain * value_noise(window, window.gsd, seed + 17)
    return np.asarray(color, dtype=np.float32) * tone[..., None]


def paint_landcover(canvas: Canvas, palette: Palette, seed: int, patchiness: float = 0.5) -> None:
    """Fill the whole canvas with mottled grass, dry grass and bare soil."""
    w = canvas.window
    a = fbm(w, 60.0, seed, octaves=3)
    b = fbm(w, 20.0, seed + 1, octaves=3)
    grass = np.asarray(palette.grass, dtype=np.float32)
    dry = np.asarray(palette.grass_dry, dtype=np.float32)
    soil = np.asarray(palette.soil, dtype=np.float32)
    t_dry = np.clip(0.5 + 0.8 * a, 0, 1)[..., None]
    t_soil = np.clip((b - (1.2 - patchiness)) * 2.0, 0, 1)[..., None]
    color = grass * (1 - t_dry) + dry * t_dry
    color = color * (1 - t_soil) + soil * t_soil
    tone = 1.0 + 0.10 * fbm(w, 3.0, seed + 2, octaves=2) + 0.05 * value_noise(w, w.gsd, seed + 3)
    canvas.albedo[:] = color * tone[..., None]
    canvas.height[:] = 0.0
    canvas.direct[:] = 1.0


def paint_surface(
    canvas: Canvas,
    geom: BaseGeometry,
    color: RGB,
    seed: int,
    *,
    cell_m: float = 8.0,
    amount: float = 0.12,
    grain: float = 0.06,
    stripes: tuple[float, float] | None = None,
    height: float | None = None,
    opacity: float = 1.0,
) -> None:
    """Fill a polygon with a textured colour (gravel, roads, fields, water).

    ``stripes`` = (period m, direction rad) adds crop rows or ploughing furrows.
    """
    if geom.is_empty:
        return
    cover = canvas.coverage(geom)
    if opacity < 1.0:
        cover *= np.float32(opacity)

    def texture(w: RasterWindow) -> np.ndarray:
        col = _textured(w, color, seed, cell_m, amount, grain)
        if stripes is not None:
            period, angle = stripes
            if period > 2.2 * w.gsd:
                x, y = w.pixel_centres()
                t = x * math.cos(angle) + y * math.sin(angle)
                col *= (1 + 0.05 * np.sin(2 * np.pi * t / period))[..., None]
        return col

    canvas.paint_textured(cover, texture, height)


def _local(canvas: Canvas, centre: tuple[float, float], heading: float, half_diag: float
           ) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    w = canvas.window
    px = w.to_pixels(np.array(centre))
    r = half_diag / w.gsd + 2
    c0, c1 = math.floor(px[0] - r), math.ceil(px[0] + r)
    r0, r1 = math.floor(px[1] - r), math.ceil(px[1] + r)
    if c1 <= 0 or r1 <= 0 or c0 >= w.cols or r0 >= w.rows:
        return None
    x, y = w.pixel_centres(r0, r1, c0, c1)
    dx, dy = x - np.float32(centre[0]), y - np.float32(centre[1])
    c, s = np.float32(math.cos(heading)), np.float32(math.sin(heading))
    return r0, c0, dx * c + dy * s, -dx * s + dy * c


def paint_box(
    canvas: Canvas,
    centre: tuple[float, float],
    heading: float,
    length: float,
    width: float,
    color: RGB,
    height: float,
    *,
    gable: float = 0.0,
    sun_toward: tuple[float, float, float] = (0.0, -1.0, 1.0),
    ribs_m: float = 0.0,
    rng: np.random.Generator | None = None,
    lean: tuple[float, float] = (0.0, 0.0),
    wall: RGB | None = None,
    floor: float = 0.0,
) -> None:
    """An oriented box seen from above (building, container, truck body, canopy).

    ``gable`` is the roof pitch (rise / half-width) of a ridge along the long axis;
    ``sun_toward`` is the unit vector (east, north, up) toward the sun, for roof shading;
    ``lean`` the view's relief displacement per metre of height (the roof appears moved by
    ``lean * height`` and the walls facing the sensor show, in ``wall`` colour).
    ``floor`` > 0 makes it an overhang on posts (a platform canopy): light passes below it.
    """
    ox, oy = lean[0] * height, lean[1] * height
    roof_c = (centre[0] + ox, centre[1] + oy)
    loc = _local(canvas, roof_c, heading, math.hypot(length, width) / 2 + math.hypot(ox, oy))
    if loc is None:
        return
    r0, c0, u, v = loc
    g = canvas.window.gsd
    hl, hw = length / 2, width / 2
    cover = np.clip(0.5 + np.minimum(hl - np.abs(u), hw - np.abs(v)) / g, 0, 1).astype(np.float32)
    col = np.asarray(color, dtype=np.float32)
    tone = np.ones_like(u)
    if ribs_m > 2.2 * g:
        tone += 0.07 * np.cos(2 * np.pi * u / ribs_m)
    if rng is not None:
        tone *= (1 + 0.05 * rng.standard_normal(u.shape)).astype(np.float32)
    edge = np.minimum(hl - np.abs(u), hw - np.abs(v)) < 0.25
    tone = np.where(edge, tone * 0.85, tone)
    e, n, z = sun_toward
    sv = -e * math.sin(heading) + n * math.cos(heading)
    direct = np.ones_like(u)
    h = np.full(u.shape, height, dtype=np.float32)
    if gable > 0:
        slope = np.where(v > 0, -gable, gable)
        dot = (-slope * sv + z) / math.sqrt(1 + gable * gable)
        direct = (np.maximum(dot, 0) / max(z, 1e-3)).astype(np.float32)
        h = (height + gable * (hw - np.abs(v))).astype(np.float32)
    albedo = col * tone[..., None]
    if math.hypot(ox, oy) > 0.25 * g:
        c, s = math.cos(heading), math.sin(heading)
        rect = np.array([(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]) @ np.array([[c, s], [-s, c]])
        pts = np.vstack([rect + np.asarray(centre), rect + np.asarray(roof_c)])
        hull = shapely.convex_hull(shapely.multipoints(pts))
        ring = (canvas.window.to_pixels(np.asarray(hull.exterior.coords)) - np.array([c0, r0]) - 0.5) * 16
        mask = np.zeros(u.shape, dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(ring).astype(np.int32).reshape(-1, 1, 2)], 255, cv2.LINE_AA, 4)
        total = np.maximum(mask.astype(np.float32) / 255.0, cover)
        a = cover / np.maximum(total, 1e-6)
        wall_rgb = np.asarray(wall if wall is not None else (0.55, 0.54, 0.51), dtype=np.float32)
        reach = math.hypot(ox, oy)
        facing = max(0.0, -(ox * e + oy * n) / reach) / max(z, 1e-3)  # walls face the sensor
        albedo = albedo * a[..., None] + wall_rgb * (1 - a)[..., None]
        direct = (direct * a + np.float32(min(facing, 2.0)) * (1 - a)).astype(np.float32)
        h = np.where(cover > 0.5, h, height * 0.6).astype(np.float32)
        cover = total
    canvas.paint_region(r0, c0, cover, albedo, h, direct, floor=floor)


def paint_truck(
    canvas: Canvas,
    centre: tuple[float, float],
    heading: float,
    rng: np.random.Generator,
    sun_toward: tuple[float, float, float],
    lean: tuple[float, float] = (0.0, 0.0),
) -> Polygon:
    """A truck with a container or box trailer (a hard negative); returns its footprint."""
    trailer = float(rng.choice([6.1, 12.2, 13.6]))
    width = 2.5
    c, s = math.cos(heading), math.sin(heading)
    tc = (centre[0] - c * 1.6, centre[1] - s * 1.6)
    paints = [
        (0.20, 0.35, 0.55), (0.55, 0.18, 0.15), (0.80, 0.80, 0.78), (0.25, 0.42, 0.28),
        (0.65, 0.65, 0.63), (0.70, 0.45, 0.15), (0.30, 0.30, 0.30),
    ]
    body = paints[int(rng.integers(len(paints)))]
    paint_box(canvas, tc, heading, trailer, width, body, 4.0, sun_toward=sun_toward,
              ribs_m=0.3 if rng.random() < 0.5 else 0.0, rng=rng, lean=lean,
              wall=(body[0] * 0.85, body[1] * 0.85, body[2] * 0.85))
    cab_c = (tc[0] + c * (trailer / 2 + 1.4), tc[1] + s * (trailer / 2 + 1.4))
    r, g, b = (float(x) for x in rng.uniform(0.2, 0.8, 3))
    cab = (r, g, b)
    paint_box(canvas, cab_c, heading, 2.3, 2.45, cab, 3.2, sun_toward=sun_toward, lean=lean, wall=cab)
    half = trailer / 2 + 2.6
    return Polygon([
        (tc[0] - c * (trailer / 2) - s * width / 2, tc[1] - s * (trailer / 2) + c * width / 2),
        (tc[0] + c * half - s * width / 2, tc[1] + s * half + c * width / 2),
        (tc[0] + c * half + s * width / 2, tc[1] + s * half - c * width / 2),
        (tc[0] - c * (trailer / 2) + s * width / 2, tc[1] - s * (trailer / 2) - c * width / 2),
    ])


def paint_trees(
    canvas: Canvas,
    centres: np.ndarray,
    radii: np.ndarray,
    heights: np.ndarray,
    palette: Palette,
    seed: int,
    leafless: bool = False,
) -> None:
    """Tree crowns as textured discs, with crown heights for their shadows.

    Leafless trees (winter) are thin, see-through crowns.
    """
    if len(centres) == 0:
        return
    w = canvas.window
    px = w.to_pixels(centres)
    cover = np.zeros((w.rows, w.cols), dtype=np.uint8)
    hmap = np.zeros((w.rows, w.cols), dtype=np.float32)
    order = np.argsort(heights)
    for i in order:
        cx, cy = px[i]
        r = radii[i] / w.gsd
        if cx + r < 0 or cy + r < 0 or cx - r > w.cols or cy - r > w.rows:
            continue
        centre = (round((cx - 0.5) * 16), round((cy - 0.5) * 16))
        cv2.circle(cover, centre, max(1, round(r * 16)), 255, -1, cv2.LINE_AA, 4)
        cv2.circle(hmap, centre, max(1, round(r * 16)), float(heights[i]), -1, cv2.LINE_8, 4)
    a = cover.astype(np.float32) / 255.0
    clump = fbm(w, 2.5, seed, octaves=3)
    leaves = np.asarray(palette.tree, dtype=np.float32)
    tone = 0.85 + 0.35 * clump + 0.12 * value_noise(w, w.gsd, seed + 1)
    if leafless:
        a *= np.clip(0.55 + 0.4 * clump, 0, 1)
    canvas.albedo += a[..., None] * (leaves * tone[..., None] - canvas.albedo)
    canvas.direct += a * (np.clip(0.9 + 0.5 * clump, 0.3, 1.5) - canvas.direct)
    np.maximum(canvas.height, np.where(a > 0.5, hmap * (0.8 + 0.2 * clump), 0), out=canvas.height)
