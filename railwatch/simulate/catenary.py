"""Overhead line equipment: catenary masts every ~60 m, cantilever arms and portal beams.

Electrified yards have rows of lattice masts across the tracks, about 60 m apart along them,
beside the outer tracks and in wider gaps between track groups; arms or portal beams reach
over the tracks at 7–9 m. From above a mast is a speck, but at sun elevations of 40–65° it
throws a long thin shadow across several tracks, and a beam a thin line of shadow parallel to
itself (DOMAIN.md). Masts stand solid in the height map; arms and beams are overhangs (the
canvas's ``floor`` layer), so their shadows are detached from them as real ones are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from shapely.geometry import LineString, Point

from railwatch.simulate.canvas import Canvas

__all__ = ["Catenary", "catenary_rows", "paint_catenary"]


@dataclass(frozen=True, slots=True)
class Catenary:
    """Masts (positions (n, 2), heights (n,)) and beams (arms, portals) with their heights."""

    masts: np.ndarray
    mast_height: np.ndarray
    beams: tuple[LineString, ...]
    beam_height: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.masts.shape != (len(self.mast_height), 2) and len(self.mast_height):
            raise ValueError("masts must be (n, 2) with one height each")
        if len(self.beams) != len(self.beam_height):
            raise ValueError("one height per beam")

    @staticmethod
    def empty() -> Catenary:
        """No overhead line."""
        return Catenary(np.zeros((0, 2)), np.zeros(0), (), ())


def catenary_rows(
    rng: np.random.Generator,
    lanes: Sequence[LineString],
    tracks: Sequence[LineString],
    *,
    spacing_m: float = 60.0,
    portal: float = 0.4,
) -> Catenary:
    """Rows of masts standing on ``lanes`` (lines beside or between tracks, parallel to them).

    A row every ``spacing_m`` (± 10 %) along the first lane; each mast gets a cantilever arm
    over its nearest track, and with probability ``portal`` a row is one portal beam across
    all its masts instead.
    """
    if not lanes or not tracks:
        return Catenary.empty()
    ref = lanes[0]
    masts: list[tuple[float, float]] = []
    heights: list[float] = []
    beams: list[LineString] = []
    beam_h: list[float] = []
    step = spacing_m * float(rng.uniform(0.9, 1.1))
    height = float(rng.uniform(8.0, 12.0))
    for s in np.arange(float(rng.uniform(0, step)), ref.length, step):
        p = ref.interpolate(s)
        row = []
        for lane in lanes:
            q = lane.interpolate(lane.project(p))
            row.append((q.x, q.y))
        if len(row) >= 2 and rng.random() < portal:
            beams.append(LineString(row))
            beam_h.append(height - float(rng.uniform(0.8, 1.5)))
        else:
            for x, y in row:
                here = Point(x, y)
                near = min(tracks, key=here.distance)
                foot = near.interpolate(near.project(here))
                if 1.5 < foot.distance(here) < 6.0:
                    beams.append(LineString([(x, y), (foot.x, foot.y)]))
                    beam_h.append(height - 2.5)
        for x, y in row:
            masts.append((x, y))
            heights.append(height + float(rng.uniform(-0.3, 0.3)))
    return Catenary(np.array(masts).reshape(-1, 2), np.array(heights), tuple(beams), tuple(beam_h))


def paint_catenary(canvas: Canvas, cat: Catenary, *, post_m: float = 0.5) -> None:
    """Masts as solid posts and beams as thin overhangs, into the height map and albedo."""
    w = canvas.window
    if len(cat.masts) == 0 and not cat.beams:
        return
    heights = np.zeros((w.rows, w.cols), dtype=np.float32)
    floors = np.zeros((w.rows, w.cols), dtype=np.float32)
    looks = np.zeros((w.rows, w.cols), dtype=np.uint8)
    for line, h in zip(cat.beams, cat.beam_height, strict=True):
        pts = np.round((w.to_pixels(np.asarray(line.coords)) - 0.5) * 16).astype(np.int32)
        hb = np.zeros_like(heights)
        cv2.polylines(hb, [pts.reshape(-1, 1, 2)], False, float(h), 1, cv2.LINE_8, 4)
        on = hb > 0
        heights[on] = np.maximum(heights[on], hb[on])
        floors[on] = heights[on] - 0.6
        cv2.polylines(looks, [pts.reshape(-1, 1, 2)], False, 110, max(1, round(0.4 / w.gsd)), cv2.LINE_AA, 4)
    post = max(1, round(post_m / w.gsd / 2 * 16))
    for (x, y), h in zip(w.to_pixels(cat.masts) - 0.5, cat.mast_height, strict=True):
        c = (round(x * 16), round(y * 16))
        cv2.circle(heights, c, post, float(h), -1, cv2.LINE_8, 4)
        cv2.circle(floors, c, post, 0.0, -1, cv2.LINE_8, 4)
        cv2.circle(looks, c, post, 255, -1, cv2.LINE_AA, 4)
    on = heights > canvas.height
    canvas.height[on] = heights[on]
    canvas.floor[on] = floors[on]
    m = looks.astype(np.float32) / 255.0
    canvas.albedo += m[..., None] * (np.float32(0.42) - canvas.albedo)
