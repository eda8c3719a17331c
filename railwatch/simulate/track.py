"""Track beds: ballast, the sleeper ladder, rail staining and rails; weeds in gravel.

On real 0.25–0.5 m imagery an empty yard track is a ladder: sleepers every 0.54–0.65 m
(concrete ones lighter than the ballast, wooden ones darker) across a ballast bed, with two
thin dark rails on top (DOMAIN.md). Sleepers are drawn one by one as anti-aliased
quadrilaterals, anchored to each track's own arc length, so neighbouring blocks of a scene
draw the same sleepers; at coarse resolutions they blend into a band, as they do in real
images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, Point, box
from shapely.geometry.base import BaseGeometry

from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.fleet import Stock
from railwatch.simulate.ground import Palette
from railwatch.simulate.texture import fbm, hash01, value_noise

__all__ = [
    "TrackLook",
    "paint_beds",
    "paint_rails",
    "paint_tracks",
    "paint_weeds",
    "random_track_look",
    "site_track_look",
]

RGB = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class TrackLook:
    """How the beds of a group of tracks look.

    ``ballast``: colour of the bed; ``crib``: colour of the stained ballast between the
    rails (rust, brake dust, oil) and ``stain`` its opacity; ``sleeper`` colour, length,
    spacing and width (metres) and ``sleeper_opacity`` (how much ballast covers them);
    ``rail_offset_m``: half the distance between the rails; ``rail_shine``: polished heads
    (0–1); ``bed_half_m``: half the width of the ballast bed.
    """

    ballast: RGB
    crib: RGB
    stain: float
    sleeper: RGB
    sleeper_length_m: float
    sleeper_spacing_m: float
    sleeper_width_m: float
    sleeper_opacity: float
    rail_offset_m: float
    rail_shine: float
    bed_half_m: float

    def __post_init__(self) -> None:
        spacing, width = self.sleeper_spacing_m, self.sleeper_width_m
        if not (0.3 <= spacing <= 1.5 and 0.1 <= width < spacing):
            raise ValueError("sleepers must be 0.1 m or wider and narrower than their spacing (0.3–1.5 m)")
        if not 0.5 <= self.rail_offset_m <= 1.0:
            raise ValueError(f"rail_offset_m must be in [0.5, 1], got {self.rail_offset_m}")


def _tint(rng: np.random.Generator, c: RGB, s: float) -> RGB:
    f = rng.normal(1.0, s * 0.3, 3) * rng.normal(1.0, s)
    return (float(c[0] * f[0]), float(c[1] * f[1]), float(c[2] * f[2]))


def random_track_look(rng: np.random.Generator, stock: Stock, palette: Palette) -> TrackLook:
    """A random bed: fresh grey or old brown ballast, concrete or wooden sleepers (wide ranges)."""
    length, spacing = stock.sleeper_m
    concrete = rng.random() < (0.7 if stock is Stock.EUROPEAN else 0.5)
    grey = float(rng.uniform(0.4, 0.64))  # fresh granite is bright grey; old beds darker, browner
    brown = float(rng.uniform(0.0, 0.12))
    ballast = (grey + brown, grey + 0.3 * brown, grey - brown * 0.6)
    if palette.snow > 0:
        ballast = (0.72, 0.72, 0.74)
    if concrete:
        tone = float(rng.uniform(0.58, 0.85))  # smooth concrete, lighter than the stony ballast
        sleeper: RGB = (tone, tone * 0.98, tone * 0.95)
    else:
        tone = float(rng.uniform(0.14, 0.32))
        sleeper = (tone * 1.15, tone, tone * 0.85)
    return TrackLook(
        ballast=_tint(rng, ballast, 0.04),
        crib=_tint(rng, (0.36, 0.29, 0.23), 0.1),
        stain=float(rng.uniform(0.2, 0.7)),
        sleeper=sleeper,
        sleeper_length_m=length + float(rng.uniform(-0.05, 0.05)),
        sleeper_spacing_m=spacing * float(rng.uniform(0.95, 1.12)),
        sleeper_width_m=float(rng.uniform(0.22, 0.3)),
        sleeper_opacity=float(rng.uniform(0.6, 1.0)),
        rail_offset_m=stock.rail_offset_m,
        rail_shine=float(rng.choice([0.0, 0.3, 0.6], p=[0.45, 0.35, 0.2])),
        bed_half_m=float(rng.uniform(1.75, 2.1)),
    )


def site_track_look(palette: Palette, seed: int) -> TrackLook:
    """The beds of a site's 1520 mm tracks, fixed by the world's seed (the same in every scene)."""
    look = random_track_look(np.random.default_rng([seed, 41]), Stock.RUSSIAN_1520, palette)
    return TrackLook(
        ballast=palette.ballast if palette.snow == 0 else look.ballast, crib=look.crib, stain=look.stain,
        sleeper=look.sleeper, sleeper_length_m=look.sleeper_length_m,
        sleeper_spacing_m=look.sleeper_spacing_m, sleeper_width_m=look.sleeper_width_m,
        sleeper_opacity=look.sleeper_opacity, rail_offset_m=look.rail_offset_m, rail_shine=0.3,
        bed_half_m=1.9,
    )


def _pieces(geom: BaseGeometry) -> list[LineString]:
    if isinstance(geom, LineString):
        return [] if geom.is_empty else [geom]
    if isinstance(geom, MultiLineString):
        return [g for g in geom.geoms if not g.is_empty]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString) and not g.is_empty]


def _sleepers(line: LineString, view: BaseGeometry, look: TrackLook, key: int, seed: int
              ) -> np.ndarray:
    """Corners (n, 4, 2) of the sleepers of ``line`` that lie in ``view``, anchored at its start."""
    out = []
    step = look.sleeper_spacing_m
    total = line.length
    for piece in _pieces(line.intersection(view)):
        s0 = line.project(Point(piece.coords[0]))
        s1 = line.project(Point(piece.coords[-1]))
        s0, s1 = min(s0, s1), max(s0, s1)
        k = np.arange(math.ceil(s0 / step), math.floor(s1 / step) + 1)
        if k.size == 0:
            continue
        jitter = (hash01(k, np.full_like(k, key), seed) - 0.5) * np.float32(0.08)
        s = np.clip(k * step + jitter, 0.0, total)
        c = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
        a = shapely.get_coordinates(shapely.line_interpolate_point(line, np.minimum(s + 0.5, total)))
        b = shapely.get_coordinates(shapely.line_interpolate_point(line, np.maximum(s - 0.5, 0.0)))
        t = a - b
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
        n = np.column_stack([-t[:, 1], t[:, 0]])
        hw, hl = look.sleeper_width_m / 2, look.sleeper_length_m / 2
        corners = np.stack([c - t * hw - n * hl, c + t * hw - n * hl, c + t * hw + n * hl,
                            c - t * hw + n * hl], axis=1)
        out.append(corners)
    return np.concatenate(out) if out else np.zeros((0, 4, 2))


def _quads_coverage(canvas: Canvas, quads: np.ndarray, ss: int = 4) -> np.ndarray:
    """Coverage of many small quadrilaterals: filled ``ss`` times finer, then area-averaged.

    (OpenCV's anti-aliased fill widens shapes narrower than a pixel by about a pixel, which
    would merge a sleeper ladder into a band.)
    """
    rows, cols = canvas.window.rows, canvas.window.cols
    if not len(quads):
        return np.zeros((rows, cols), dtype=np.float32)
    mask = np.zeros((rows * ss, cols * ss), dtype=np.uint8)
    px = canvas.window.to_pixels(quads.reshape(-1, 2)) * ss - 0.5
    pts = np.round(px * 16.0).astype(np.int32).reshape(-1, 4, 1, 2)
    cv2.fillPoly(mask, list(pts), 255, cv2.LINE_8, 4)
    small = cv2.resize(mask, (cols, rows), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) * np.float32(1.0 / 255.0)


def _textured(window: RasterWindow, color: RGB, seed: int, cell_m: float, amount: float, grain: float
              ) -> np.ndarray:
    tone = 1.0 + amount * fbm(window, cell_m, seed, octaves=3)
    if grain > 0:
        tone += grain * value_noise(window, window.gsd, seed + 17)
    return np.asarray(color, dtype=np.float32) * tone[..., None]


def _texture(color: RGB, seed: int, cell_m: float, amount: float, grain: float
             ) -> Callable[[RasterWindow], np.ndarray]:
    def make(window: RasterWindow) -> np.ndarray:
        return _textured(window, color, seed, cell_m, amount, grain)

    return make


def _grouped(canvas: Canvas, tracks: Sequence[LineString], looks: TrackLook | Sequence[TrackLook]
             ) -> tuple[BaseGeometry, list[BaseGeometry], dict[TrackLook, list[int]]]:
    per = [looks] * len(tracks) if isinstance(looks, TrackLook) else list(looks)
    if len(per) != len(tracks):
        raise ValueError("give one TrackLook, or one per track")
    view = box(*canvas.window.bounds).buffer(4.0)
    clipped = [t.intersection(view) for t in tracks]
    groups: dict[TrackLook, list[int]] = {}
    for i, look in enumerate(per):
        if not clipped[i].is_empty:
            groups.setdefault(look, []).append(i)
    return view, clipped, groups


def paint_beds(
    canvas: Canvas,
    tracks: Sequence[LineString],
    looks: TrackLook | Sequence[TrackLook],
    seed: int,
) -> None:
    """Ballast beds, stained cribs and the sleeper ladder of each track (no rails).

    ``looks`` is one look for all tracks or one per track. Tracks may reach far beyond the
    canvas: only what lies in it is drawn, with sleepers anchored to each track's start.
    """
    if not tracks:
        return
    view, clipped, groups = _grouped(canvas, tracks, looks)
    for g, (look, idx) in enumerate(groups.items()):
        lines = shapely.union_all([clipped[i] for i in idx])
        bed = lines.buffer(look.bed_half_m, cap_style="flat", quad_segs=4)
        k = seed + 13 * g
        canvas.paint_textured(canvas.coverage(bed), _texture(look.ballast, k, 2.5, 0.09, 0.12))
        crib = canvas.coverage(lines.buffer(look.sleeper_length_m / 2, cap_style="flat"))
        canvas.paint_textured(crib * np.float32(look.stain), _texture(look.crib, k + 7, 1.5, 0.25, 0.15))
        quads = np.concatenate([_sleepers(tracks[i], view, look, i, seed) for i in idx])
        cover = _quads_coverage(canvas, quads) * np.float32(look.sleeper_opacity)
        canvas.paint_textured(cover, _texture(look.sleeper, k + 11, 3.0, 0.12, 0.1))


def paint_rails(canvas: Canvas, tracks: Sequence[LineString], looks: TrackLook | Sequence[TrackLook]) -> None:
    """Two thin dark rails per track, with polished heads where the look says so."""
    if not tracks:
        return
    _, clipped, groups = _grouped(canvas, tracks, looks)
    for look, idx in groups.items():
        _rails(canvas, [clipped[i] for i in idx], look)


def paint_tracks(
    canvas: Canvas,
    tracks: Sequence[LineString],
    looks: TrackLook | Sequence[TrackLook],
    seed: int,
) -> None:
    """Beds, sleeper ladders and rails: :func:`paint_beds`, then :func:`paint_rails`."""
    paint_beds(canvas, tracks, looks, seed)
    paint_rails(canvas, tracks, looks)


def _rails(canvas: Canvas, tracks: Sequence[BaseGeometry], look: TrackLook) -> None:
    rails = []
    for t in tracks:
        for piece in _pieces(t):
            for side in (-look.rail_offset_m, look.rail_offset_m):
                rails += _pieces(piece.offset_curve(side))
    if not rails:
        return
    multi = shapely.MultiLineString(rails)
    cover = canvas.line_coverage(multi, 0.2)
    canvas.paint(cover * np.float32(0.85), (0.10, 0.09, 0.08), None)
    if look.rail_shine > 0:
        head = canvas.line_coverage(multi, 0.07)
        canvas.paint(head * np.float32(look.rail_shine), (0.85, 0.85, 0.85), None)


def paint_weeds(canvas: Canvas, where: BaseGeometry, amount: float, palette: Palette, seed: int) -> None:
    """Patches of grass and weeds growing through gravel or ballast: ``amount`` 0–1 of the area."""
    if amount <= 0 or where.is_empty:
        return
    w = canvas.window
    n = fbm(w, 4.0, seed, octaves=4) + 0.35 * value_noise(w, 0.8, seed + 3)
    level = float(np.quantile(n, 1.0 - amount)) if amount < 1 else float(n.min())
    patch = np.clip((n - level) / 0.25, 0.0, 1.0) * canvas.coverage(where)
    green = np.asarray(palette.grass, dtype=np.float32)
    dry = np.asarray(palette.grass_dry, dtype=np.float32)
    t = np.clip(0.5 + 0.7 * fbm(w, 9.0, seed + 5, octaves=2), 0, 1)[..., None]
    color = (green * (1 - t) + dry * t) * (0.85 + 0.3 * value_noise(w, w.gsd, seed + 9))[..., None]
    canvas.paint(patch * np.float32(0.9), color)
