"""Build ``railwatch/sites/tumangang_khasan.geojson`` from the public coordinates in DOMAIN.md.

The geometry is approximate: station and bridge positions come from Wikipedia, the track
layout (yard tracks 4.8 m apart, turnouts about 1:12, the curves between them) is drawn to
be plausible, not surveyed. Run once; the GeoJSON is the data the package reads.

    python scripts/build_tumangang_khasan_site.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiLineString, mapping

UTM = "EPSG:32652"
TO_UTM = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
TO_LL = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)

TUMANGANG = TO_UTM.transform(130.6081, 42.4214)
KHASAN = TO_UTM.transform(130.64492, 42.43006)
BRIDGE = TO_UTM.transform(130.641056, 42.415167)
SPACING = 4.8  # m between yard track centrelines


def unit(bearing_deg: float) -> np.ndarray:
    b = math.radians(bearing_deg)
    return np.array([math.sin(b), math.cos(b)])


def chaikin(points: np.ndarray, iterations: int = 4) -> np.ndarray:
    for _ in range(iterations):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        inner = np.empty((2 * len(q), 2))
        inner[0::2], inner[1::2] = q, r
        points = np.vstack([points[:1], inner, points[-1:]])
    return points


def yard_track(origin: np.ndarray, axis: float, offset: float, s0: float, s1: float) -> np.ndarray:
    """A siding leaving the main line at s0, running ``offset`` metres to its side, rejoining at s1."""
    along, side = unit(axis), unit(axis + 90.0)
    diverge = abs(offset) * 12.0
    stations = [(s0, 0.0), (s0 + diverge, offset), (s1 - diverge, offset), (s1, 0.0)]
    pts = np.array([origin + s * along + o * side for s, o in stations])
    return chaikin(pts, 3)


def main() -> None:
    t, k, b = (np.array(p) for p in (TUMANGANG, KHASAN, BRIDGE))
    bridge_axis = 70.0
    bridge_w = b - 300.0 * unit(bridge_axis)
    bridge_e = b + 300.0 * unit(bridge_axis)
    dx, dy = bridge_w - t
    t_axis = math.degrees(math.atan2(dx, dy))  # Tumangang yard runs towards the bridge
    dx, dy = k - bridge_e
    k_axis = math.degrees(math.atan2(dx, dy))

    main_pts = np.array(
        [
            t - 1300.0 * unit(t_axis),
            t - 700.0 * unit(t_axis),
            t + 900.0 * unit(t_axis),
            bridge_w - 120.0 * unit(bridge_axis),
            bridge_w,
            bridge_e,
            bridge_e + 150.0 * unit(bridge_axis),
            k - 700.0 * unit(k_axis),
            k + 600.0 * unit(k_axis),
            k + 1100.0 * unit(k_axis),
        ]
    )
    # Smooth the corners but keep the bridge straight: smooth each approach separately.
    west = chaikin(main_pts[:5], 4)
    east = chaikin(main_pts[5:], 4)
    mainline = np.vstack([west, east])

    features = []

    def add(role: str, name: str, geom: object, **extra: object) -> None:
        ll = shapely.transform(geom, lambda xy: np.column_stack(TO_LL.transform(xy[:, 0], xy[:, 1])))
        features.append(
            {"type": "Feature", "properties": {"role": role, "name": name, **extra},
             "geometry": json.loads(json.dumps(mapping(ll)))}
        )

    add("track", "mainline", LineString(mainline))
    t_yard, k_yard = [], []
    for i, off in enumerate([-3, -2, -1, 1, 2, 3]):
        line = LineString(yard_track(t, t_axis, off * SPACING, -650.0, 650.0))
        t_yard.append(line)
        add("track", f"tumangang_{i + 1}", line)
    for i, off in enumerate([-3, -2, -1, 1, 2]):
        line = LineString(yard_track(k, k_axis, off * SPACING, -550.0, 450.0))
        k_yard.append(line)
        add("track", f"khasan_{i + 1}", line)

    main_line = LineString(mainline)
    t_core = LineString([t - 650.0 * unit(t_axis), t + 650.0 * unit(t_axis)])
    k_core = LineString([k - 550.0 * unit(k_axis), k + 450.0 * unit(k_axis)])
    t_zone = MultiLineString([*t_yard, t_core]).convex_hull.buffer(20.0, join_style="mitre")
    k_zone = MultiLineString([*k_yard, k_core]).convex_hull.buffer(20.0, join_style="mitre")
    bridge_zone = LineString([bridge_w, bridge_e]).buffer(20.0, cap_style="flat")
    add("zone", "tumangang_yard", t_zone)
    add("zone", "bridge", bridge_zone)
    add("zone", "khasan_yard", k_zone)
    # The AOI follows the line (a corridor of 150 m each side), not its bounding box: a
    # scene of the L-shaped line then holds a third of the pixels.
    aoi = main_line.buffer(150.0, cap_style="flat").simplify(10.0)
    add("aoi", "tumangang_khasan", aoi)

    collection = {
        "type": "FeatureCollection",
        "name": "tumangang_khasan",
        "description": (
            "Tumangang (DPRK) - Khasan (Russia) rail crossing over the Tumen. APPROXIMATE: station and "
            "bridge positions from public coordinates (Wikipedia), track layout drawn to be plausible; "
            "not surveyed. Local metric CRS: EPSG:32652 (UTM 52N)."
        ),
        "features": features,
    }
    out = Path(__file__).resolve().parents[1] / "railwatch" / "sites" / "tumangang_khasan.geojson"
    text = json.dumps(collection, indent=1)
    # Round coordinates to 7 decimals (~1 cm): enough, and a readable file.
    import re

    text = re.sub(r"(-?\d+\.\d{7})\d+", r"\1", text)
    out.write_text(text + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
