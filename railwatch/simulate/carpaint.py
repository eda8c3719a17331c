"""Painting a rail car from above: its roof, load, sides and shading, by kind (SIMULATED)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from railwatch.classes import CarClass
from railwatch.simulate.canvas import Canvas
from railwatch.simulate.stock import CONTAINER_COLOURS, LOAD_COLOURS, Car, Load, PlacedCar, roof_offset
from railwatch.simulate.sun import Sun

__all__ = ["paint_car"]


@dataclass(frozen=True, slots=True)
class _Frame:
    """Car-local pixel coordinates of a patch of the canvas, and the sun in that frame."""

    u: np.ndarray
    v: np.ndarray
    gsd: float
    sun_u: float
    sun_v: float
    sun_z: float
    rng: np.random.Generator


def _coverage(u: np.ndarray, v: np.ndarray, half_l: float, half_w: float, g: float) -> np.ndarray:
    d = np.minimum(half_l - np.abs(u), half_w - np.abs(v))
    return np.asarray(np.clip(0.5 + d / g, 0.0, 1.0))


def _lambert(f: _Frame, du: np.ndarray | float, dv: np.ndarray | float) -> np.ndarray:
    """Direct light on a surface with slopes (dh/du, dh/dv), relative to flat ground."""
    nu, nv = -np.asarray(du), -np.asarray(dv)
    norm = np.sqrt(nu * nu + nv * nv + 1.0)
    dot = (nu * f.sun_u + nv * f.sun_v + f.sun_z) / norm
    return np.asarray(np.maximum(dot, 0.0) / f.sun_z, dtype=np.float32)


def _streaks(f: _Frame, axis: np.ndarray, cell: float, lo: float, hi: float) -> np.ndarray:
    """1-D value noise along ``axis`` (metres), between ``lo`` and ``hi``."""
    n = int((hi - lo) / cell) + 3
    knots = f.rng.random(n).astype(np.float32)
    return np.asarray(np.interp(axis, lo + cell * np.arange(n), knots), dtype=np.float32)


def _stripes(f: _Frame, coord: np.ndarray, period: float, amp: float, phase: float = 0.0) -> np.ndarray:
    """``1 + amp * cos`` stripes of ``period`` metres; flat where a pixel cannot resolve them."""
    if period <= 3.0 * f.gsd:  # near the Nyquist limit stripes only alias into dashes
        return np.ones_like(coord)
    return (1.0 + amp * np.cos(2 * np.pi * coord / period + phase)).astype(np.float32)


def _grain(f: _Frame, amount: float) -> np.ndarray:
    return (1.0 + amount * f.rng.standard_normal(f.u.shape)).astype(np.float32)


def _paint_covered(car: Car, f: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lk, hl, hw = car.look, car.length / 2, car.width / 2
    base = np.asarray(lk.color, dtype=np.float32)
    # roof profile h = top - k v^2: slope dh/dv = -2 k v
    k = lk.curved_roof * 0.9 / (hw * hw)
    direct = _lambert(f, 0.0, -2 * k * f.v)
    tone = np.ones_like(f.u)
    tone *= _stripes(f, f.u, lk.rib_period_m, 0.05 + 0.04 * (lk.variant % 2))
    # weathering: rust / dirt streaks across the roof, patchy along it
    dirt = _streaks(f, f.u, 1.3, -hl - 2, hl + 2) * _streaks(f, f.v, 0.9, -hw - 2, hw + 2)
    tone *= 1.0 - lk.dirt * 0.45 * dirt
    rust = np.asarray((0.45, 0.27, 0.17), dtype=np.float32)
    mix = (lk.dirt * 0.6 * _streaks(f, f.u, 2.5, -hl - 3, hl + 3))[..., None]
    color = base * (1 - mix) + rust * mix
    edge = np.minimum(hl - np.abs(f.u), hw - np.abs(f.v))
    tone = np.where(edge < 0.15, tone * 0.9, tone)
    if lk.variant == 3:  # a lighter ridge line / walkway along the roof
        tone = np.where(np.abs(f.v) < 0.25, tone * 1.15, tone)
    color = color * (tone * _grain(f, 0.03))[..., None]
    height = car.height - k * f.v * f.v
    return color, height.astype(np.float32), direct


def _paint_open(car: Car, f: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lk, hl, hw = car.look, car.length / 2, car.width / 2
    wall = max(0.16, 0.55 * f.gsd)
    inner = np.minimum(hl - np.abs(f.u), hw - np.abs(f.v)) > wall
    body = np.asarray(lk.color, dtype=np.float32)
    color = np.broadcast_to(body * 1.08, (*f.u.shape, 3)).copy()
    height = np.full(f.u.shape, car.height, dtype=np.float32)
    direct = np.ones(f.u.shape, dtype=np.float32)
    floor = 1.5
    if lk.load is Load.NONE:
        inside = body * 0.55 + np.float32(0.05)
        tone = _grain(f, 0.06)
        hfill = np.full(f.u.shape, floor, dtype=np.float32)
        if lk.variant >= 2:  # hopper partitions across the car
            ribs = np.abs(((f.u + hl) % 2.4) - 1.2) < 0.15
            tone = np.where(ribs, tone * 1.35, tone)
            hfill = np.where(ribs, car.height - 0.3, hfill)
        fill = inside * tone[..., None]
    else:
        load = np.asarray(LOAD_COLOURS.get(lk.load, (0.3, 0.3, 0.3)), dtype=np.float32)
        level = car.height - 0.25 - 0.9 * (lk.variant / 3.0)
        # heaps: a ridge along the car with a few humps (the loader's piles)
        n_humps = 2 + lk.variant
        hump = 0.5 + 0.5 * np.cos(2 * np.pi * f.u * n_humps / car.length)
        ridge = np.clip(1 - (f.v / hw) ** 2, 0, 1)
        peak = 0.5 + 0.4 * (lk.variant % 2)
        hfill = (level + peak * ridge * (0.6 + 0.4 * hump)).astype(np.float32)
        dh_dv = -2 * peak * (0.6 + 0.4 * hump) * f.v / (hw * hw)
        dh_du = -peak * ridge * 0.4 * np.sin(2 * np.pi * f.u * n_humps / car.length) * (
            2 * np.pi * n_humps / car.length
        ) * 0.5
        direct = np.where(inner, _lambert(f, dh_du, dh_dv), direct)
        grain = 0.22 if lk.load in (Load.SCRAP, Load.TIMBER) else 0.12
        tone = _grain(f, grain)
        if lk.load is Load.TIMBER:
            tone *= _stripes(f, f.v, 0.35, 0.25)
        if lk.load is Load.SCRAP:
            tint = 1 + 0.25 * f.rng.standard_normal((*f.u.shape, 3)).astype(np.float32)
            fill = load * tone[..., None] * tint
        else:
            fill = load * tone[..., None]
    color[inner] = fill[inner]
    height = np.where(inner, hfill, height).astype(np.float32)
    return color, height, direct


def _paint_tank(car: Car, f: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lk, hl, hw = car.look, car.length / 2, car.width / 2
    radius = hw * 0.97
    end = 0.9  # frame platforms at both ends
    cyl_l = hl - end
    head = 0.45  # dished heads: the cylinder's outline narrows over the last ``head`` metres
    over = np.clip((np.abs(f.u) - (cyl_l - head)) / head, 0, 1)
    half_w = radius * np.sqrt(np.clip(1 - over * over, 0, 1))
    on_tank = (np.abs(f.v) < half_w) & (np.abs(f.u) < cyl_l)
    base = np.asarray(lk.color, dtype=np.float32)
    vv = np.clip(f.v / np.maximum(half_w, 1e-3), -0.999, 0.999)
    nz = np.sqrt(1 - vv * vv)
    # surface normal across the cylinder: (0, vv, nz); Lambert + specular toward nadir view
    dot = vv * f.sun_v + nz * f.sun_z
    lam = np.maximum(dot, 0) / f.sun_z
    hx, hy, hz = 0.0, f.sun_v, f.sun_z + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec = np.maximum(vv * hy / hn + nz * hz / hn, 0) ** 40
    shine = 0.55 if base.mean() < 0.25 else 0.3
    color = base * _grain(f, 0.03)[..., None]
    streak = _streaks(f, f.u, 0.8, -hl - 2, hl + 2)
    color = color * (1 - lk.dirt * 0.35 * streak * (np.abs(f.v) < 0.6 * radius))[..., None]
    color = color + (shine * spec)[..., None]
    height = 1.4 + (car.height - 1.4) * (0.75 + 0.25 * nz)
    # dome and walkway
    dome = (f.u - (lk.variant - 1.5) * 0.3) ** 2 + f.v**2 < 0.55**2
    walkway = (np.abs(f.v) < 0.28) & (lk.variant != 1)
    accent = np.asarray(lk.accent, dtype=np.float32) * 0.3 + base * 0.5 + 0.08
    grating = _stripes(f, f.u, 0.5, 0.25)
    color = np.where(walkway[..., None], accent * grating[..., None], color)
    color = np.where(dome[..., None], base * 1.25 + 0.08, color)
    height = np.where(dome, car.height + 0.45, height)
    lam = np.where(dome | walkway, 1.0, lam)
    # end platforms: dark frame, low
    frame = np.asarray((0.16, 0.15, 0.14), dtype=np.float32)
    color = np.where(on_tank[..., None], color, frame * _grain(f, 0.15)[..., None])
    height = np.where(on_tank, height, 1.2).astype(np.float32)
    direct = np.where(on_tank, lam, 1.0).astype(np.float32)
    return color, height, direct


def _paint_flat(car: Car, f: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lk, hl, hw = car.look, car.length / 2, car.width / 2
    deck = np.asarray(lk.color, dtype=np.float32) * 0.9 + np.float32(0.05)
    tone = _grain(f, 0.08) * _stripes(f, f.v, 0.6, 0.1)
    edge = hw - np.abs(f.v) < 0.2
    tone = np.where(edge, tone * 0.7, tone)
    color = deck * tone[..., None]
    height = np.full(f.u.shape, car.height, dtype=np.float32)
    direct = np.ones(f.u.shape, dtype=np.float32)
    rng = np.random.default_rng(lk.seed)
    if lk.load is Load.CONTAINERS:
        if car.length > 17.5 and rng.random() < 0.5:
            boxes = [(-6.1 - 0.15, 6.06), (6.1 + 0.15, 6.06)] if rng.random() < 0.5 else [(0.0, 12.19)]
        elif car.length > 13:
            one40 = [(rng.uniform(-1.0, 1.0), 12.19)]
            boxes = one40 if rng.random() < 0.5 else [(rng.choice([-3.2, 3.2]), 6.06)]
        else:
            boxes = [(0.0, 6.06)]
        for centre, length in boxes:
            if abs(centre) + length / 2 > hl:
                continue
            inside = (np.abs(f.u - centre) < length / 2) & (np.abs(f.v) < 1.22)
            c = CONTAINER_COLOURS[rng.integers(len(CONTAINER_COLOURS))] * rng.normal(1, 0.06)
            ctone = _stripes(f, f.u, 0.3, 0.07, rng.random() * 6)
            rim = np.minimum(length / 2 - np.abs(f.u - centre), 1.22 - np.abs(f.v)) < 0.12
            ctone = np.where(rim, ctone * 0.8, ctone)
            color = np.where(inside[..., None], c * ctone[..., None], color)
            height = np.where(inside, car.height + 2.6, height)
    elif lk.load is Load.VEHICLES:
        n = max(1, int(car.length // 5.2))
        for i in range(n):
            cu = -hl + (i + 0.5) * car.length / n
            if rng.random() < 0.15:
                continue
            inside = (np.abs(f.u - cu) < 2.2) & (np.abs(f.v) < 0.9)
            c = CONTAINER_COLOURS[rng.integers(len(CONTAINER_COLOURS))] * rng.uniform(0.7, 1.2)
            glass = inside & (np.abs(f.u - cu - 0.9) < 0.45)
            color = np.where(inside[..., None], c, color)
            color = np.where(glass[..., None], np.float32(0.1), color)
            height = np.where(inside, car.height + 1.5, height)
    elif lk.load is Load.TIMBER:
        inside = (np.abs(f.u) < hl - 0.6) & (np.abs(f.v) < hw - 0.25)
        logs = _stripes(f, f.v, 0.3, 0.3)
        wood = np.asarray((0.50, 0.40, 0.28), dtype=np.float32)
        color = np.where(inside[..., None], wood * (logs * _grain(f, 0.1))[..., None], color)
        height = np.where(inside, car.height + 2.0, height)
        direct = np.where(inside, _lambert(f, 0.0, -0.8 * f.v / hw), direct)
    return color.astype(np.float32), height.astype(np.float32), direct.astype(np.float32)


def _paint_loco(car: Car, f: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lk, hl, hw = car.look, car.length / 2, car.width / 2
    body = np.asarray(lk.color, dtype=np.float32)
    roof = body * 0.5 + np.float32(0.2) if lk.variant % 2 else body
    color = np.broadcast_to(roof, (*f.u.shape, 3)).astype(np.float32) * _grain(f, 0.04)[..., None]
    height = np.full(f.u.shape, car.height, dtype=np.float32)
    k = 0.5 / (hw * hw)
    direct = _lambert(f, 0.0, -2 * k * f.v)
    two_cabs = lk.variant >= 2
    cab = 2.6
    is_cab = (f.u > hl - cab) | (two_cabs & (f.u < -hl + cab))
    color = np.where(is_cab[..., None], body * 1.1, color)
    # windscreen at the cab end(s)
    glass = (f.u > hl - 0.5) | (two_cabs & (f.u < -hl + 0.5))
    color = np.where((glass & (np.abs(f.v) < hw - 0.3))[..., None], np.float32(0.08), color)
    # roof equipment along the hood: fans (dark discs), grilles, exhaust
    lo = -hl + (cab if two_cabs else 1.0)
    hi = hl - cab - 0.5
    n_fans = 2 + lk.variant % 3
    for i in range(n_fans):
        cu = hi - (i + 0.5) * 1.8
        if cu < lo:
            break
        fan = (f.u - cu) ** 2 + f.v**2 < 0.65**2
        color = np.where(fan[..., None], np.float32(0.12), color)
        height = np.where(fan, car.height + 0.15, height)
    grille = (f.u > lo) & (f.u < hi - n_fans * 1.8 - 0.5) & (np.abs(f.v) < 0.8)
    gtone = 0.55 * _stripes(f, f.u, 0.4, 0.35)
    color = np.where(grille[..., None], roof * gtone[..., None], color)
    height = np.where(grille, car.height + 0.35, height)
    stripe = np.abs(np.abs(f.v) - (hw - 0.25)) < 0.12
    accent = np.asarray((0.80, 0.70, 0.20), dtype=np.float32) if lk.variant == 1 else roof * 0.7
    color = np.where(stripe[..., None], accent, color)
    return color.astype(np.float32), height.astype(np.float32), direct


_PAINTERS = {
    CarClass.COVERED_CAR: _paint_covered,
    CarClass.OPEN_CAR: _paint_open,
    CarClass.TANK_CAR: _paint_tank,
    CarClass.FLAT_CAR: _paint_flat,
    CarClass.LOCOMOTIVE: _paint_loco,
}


def _side_color(car: Car, f: _Frame) -> np.ndarray:
    """Colour of the car side seen off-nadir: body paint with panel ribs, dark at the bottom."""
    base = np.asarray(car.look.color, dtype=np.float32)
    if car.cls is CarClass.FLAT_CAR:
        base = np.asarray((0.18, 0.17, 0.16), dtype=np.float32)
    elif car.cls is CarClass.OPEN_CAR:
        base = base * 1.05
    tone = 0.9 * _stripes(f, f.u, 1.1, 0.09)
    return base * tone[..., None]
def paint_car(
    canvas: Canvas,
    placed: PlacedCar,
    sun: Sun,
    snow: float = 0.0,
    lean: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Paint a placed car's albedo, height and surface shading into ``canvas``.

    ``lean`` is the view's relief displacement per metre of height (east, north): seen
    off-nadir, the roof appears moved by ``lean * height`` and one side of the car shows.
    ``snow`` (0–1) whitens flat upper surfaces (a winter scene).
    """
    car = placed.car
    w = canvas.window
    ox, oy = roof_offset(car, lean)
    corners = placed.corners()
    both = np.vstack([corners, corners + np.array([ox, oy])])
    corners_px = w.to_pixels(both)
    c0 = math.floor(corners_px[:, 0].min()) - 1
    c1 = math.ceil(corners_px[:, 0].max()) + 1
    r0 = math.floor(corners_px[:, 1].min()) - 1
    r1 = math.ceil(corners_px[:, 1].max()) + 1
    if c1 <= 0 or r1 <= 0 or c0 >= w.cols or r0 >= w.rows:
        return
    x, y = w.pixel_centres(r0, r1, c0, c1)
    ch, sh = np.float32(math.cos(placed.heading)), np.float32(math.sin(placed.heading))
    dx = x - np.float32(placed.centre[0] + ox)
    dy = y - np.float32(placed.centre[1] + oy)
    u = dx * ch + dy * sh
    v = -dx * sh + dy * ch
    east, north = sun.toward
    el = math.radians(max(sun.elevation_deg, 3.0))
    sun_u = (east * math.cos(placed.heading) + north * math.sin(placed.heading)) * math.cos(el)
    sun_v = (-east * math.sin(placed.heading) + north * math.cos(placed.heading)) * math.cos(el)
    frame = _Frame(
        u=u, v=v, gsd=w.gsd, sun_u=sun_u, sun_v=sun_v, sun_z=math.sin(el),
        rng=np.random.default_rng(car.look.seed),
    )
    color, height, direct = _PAINTERS[car.cls](car, frame)
    if snow > 0:
        flat = np.clip(direct, 0.0, 1.2)[..., None]
        color = color + snow * (np.float32(0.92) - color) * np.clip(flat - 0.5, 0, 1)
    roof = _coverage(u, v, car.length / 2, car.width / 2, w.gsd).astype(np.float32)
    cover = roof
    if abs(ox) + abs(oy) > 0.25 * w.gsd:
        import cv2

        hull = shapely.convex_hull(shapely.multipoints(both))
        ring = (w.to_pixels(np.asarray(hull.exterior.coords)) - np.array([c0, r0]) - 0.5) * 16
        mask = np.zeros(u.shape, dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(ring).astype(np.int32).reshape(-1, 1, 2)], 255, cv2.LINE_AA, 4)
        swept = mask.astype(np.float32) / 255.0
        # the visible side faces the satellite, i.e. against the lean
        n = math.hypot(ox, oy)
        facing = max(0.0, -(ox * east + oy * north) / n) * math.cos(el) / math.sin(el)
        wall = _side_color(car, frame)
        total = np.maximum(swept, roof)
        a = (roof / np.maximum(total, 1e-6))[..., None]
        color = color * a + wall * (1 - a)
        direct = direct * a[..., 0] + np.float32(min(facing, 2.0)) * (1 - a[..., 0])
        height = np.where(roof > 0.5, height, car.height * 0.6).astype(np.float32)
        cover = total
    canvas.paint_region(
        r0, c0, cover, np.clip(color, 0.0, 1.5).astype(np.float32),
        height=height + np.float32(placed.base), direct=direct.astype(np.float32),
    )
