"""The shadows the sun casts (where it stands: :mod:`railwatch.sun`, re-exported here).

Azimuths are degrees clockwise from north, elevations degrees above the horizon. Shadows
are cast by ray-marching a height map toward the sun with a doubling scheme, so a shadow
up to ``2**k`` pixels long costs ``k`` array passes.
"""

from __future__ import annotations

import math

import numpy as np

from railwatch.sun import Sun, solar_position

__all__ = ["Sun", "cast_shadows", "solar_position"]


def _shift(a: np.ndarray, dr: int, dc: int, fill: float) -> np.ndarray:
    """``out[r, c] = a[r + dr, c + dc]`` (``fill`` outside)."""
    out = np.full_like(a, fill)
    rows, cols = a.shape
    if abs(dr) >= rows or abs(dc) >= cols:
        return out
    src_r = slice(max(dr, 0), rows + min(dr, 0))
    dst_r = slice(max(-dr, 0), rows + min(-dr, 0))
    src_c = slice(max(dc, 0), cols + min(dc, 0))
    dst_c = slice(max(-dc, 0), cols + min(-dc, 0))
    out[dst_r, dst_c] = a[src_r, src_c]
    return out


def _march(a: np.ndarray, sun: Sun, gsd: float, per_m: float, n_metres: float, fill: float
           ) -> np.ndarray:
    """``max over 1 <= k < K of a(p + k d) + k * step`` toward the sun, by doubling.

    ``d`` is one pixel along the dominant axis toward the sun; ``step`` is ``per_m`` times
    the ground distance of one ``d``; ``K`` reaches ``n_metres`` of height at that rate.
    """
    east, north = sun.toward
    step_px = 1.0 / max(abs(east), abs(north))  # march one pixel along the dominant axis
    dc, dr = east * step_px, -north * step_px
    step = step_px * gsd * per_m
    n_steps = math.ceil(n_metres / abs(step)) + 1
    best = _shift(a, round(dr), round(dc), fill) + step
    span = 1
    while span < n_steps:
        moved = _shift(best, round(dr * span), round(dc * span), fill) + step * span
        np.maximum(best, moved, out=best)
        span *= 2
    return best


def cast_shadows(
    height: np.ndarray,
    sun: Sun,
    gsd: float,
    softness_m: float = 0.25,
    floor: np.ndarray | None = None,
) -> np.ndarray:
    """Fraction of direct sunlight blocked at each pixel of a north-up height map (metres).

    A pixel is in shadow when something toward the sun rises above the ray from the pixel
    to the sun. Returns float32 in [0, 1] (1 = full shadow); ``softness_m`` of clearance
    fades the edge.

    ``floor`` (metres, 0 where solid) is the underside of things that overhang open space:
    a ray that passes below such a thing (a platform canopy, a catenary beam) is not blocked
    by it, so their shadows on the ground are detached from them as real ones are.
    """
    if height.ndim != 2:
        raise ValueError("height must be a 2-D array")
    h = height.astype(np.float32, copy=False)
    hmax = float(h.max()) - float(h.min())
    if hmax <= 0.0 or sun.elevation_deg <= 0.0:
        return np.zeros_like(h) if sun.elevation_deg > 0 else np.ones_like(h)
    rise = math.tan(math.radians(sun.elevation_deg))  # ray rise per metre
    low = float(h.min())

    def blocked(tops: np.ndarray) -> np.ndarray:
        # best[p] = max over k of tops(p + k d) - rise * dist(k): above the ray where > h(p)
        best = _march(tops, sun, gsd, -rise, hmax, low)
        return np.asarray(np.clip((best - h) / softness_m + 0.5, 0.0, 1.0), dtype=np.float32)

    if floor is None or not (floor > 0).any():
        return blocked(h)
    bodies = floor > 0
    shadow = blocked(np.where(bodies, low, h).astype(np.float32))
    by_bodies = blocked(np.where(bodies, h, low).astype(np.float32))
    # the ray passes under every body it meets when, where it leaves the last one, it is
    # still below that body's underside: max over bodies of (rise * dist - floor) < -h(p)
    far = np.where(bodies, -floor, np.float32(-1e6)).astype(np.float32)
    exit_over = _march(far, sun, gsd, rise, hmax, -1e6) + h
    under = np.clip(-exit_over / softness_m + 0.5, 0.0, 1.0)
    return np.asarray(np.maximum(shadow, by_bodies * (1.0 - under)), dtype=np.float32)
