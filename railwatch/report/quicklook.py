"""Quicklooks an analyst can check: a scene's pixels with the detected boxes drawn on them.

One drawing serves every quicklook (the report's, ``railwatch detect``'s, the notebooks'):
:func:`render` draws thin oriented boxes coloured by class (:data:`CLASS_COLOURS`) and the zone
outlines on the pixels, with a legend strip below them (what is shown, each class with its
count, a scale bar), so that nothing covers a car. Two kinds of view of a zone
(:func:`zone_quicklooks`):

- the whole zone, read at the coarser resolution that fits ``max_side`` pixels;
- crops of its busiest parts (:func:`busiest_squares`): squares of about 150 m at the scene's
  native resolution, enlarged a whole number of times with nearest neighbours, so that every
  native pixel stays visible and a 1-pixel box line is thinner than a pixel of the scene.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.classes import CLASSES
from railwatch.detect.detections import Detections
from railwatch.imagery.grid import GridWindow, SiteGrid
from railwatch.imagery.scene import Scene
from railwatch.imagery.tile import PixelWindow, Tile
from railwatch.imagery.warp import read_tiles

__all__ = [
    "CLASS_COLOURS",
    "CROP_SIDE_M",
    "Bounds",
    "Quicklook",
    "QuicklookSettings",
    "busiest_squares",
    "read_view",
    "render",
    "save_png",
    "zone_quicklooks",
]

#: One colour per class (RGB), used in every drawing and plot.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "covered_car": (255, 215, 0),
    "open_car": (0, 200, 255),
    "tank_car": (255, 60, 60),
    "flat_car": (120, 255, 120),
    "locomotive": (255, 0, 255),
}

#: Zone outlines.
ZONE_COLOUR = (255, 255, 255)
#: Where the crops of a zone lie, in its whole-zone view.
MARK_COLOUR = (200, 200, 200)
#: Pixels the scene did not observe (outside it, nodata; not clouds, which are shown as seen).
INVALID_GREY = 40
#: Side of the crops of a zone's busiest parts, metres.
CROP_SIDE_M = 150.0
#: Margin around a zone in its whole-zone view, metres.
ZONE_MARGIN_M = 30.0

#: (minx, miny, maxx, maxy) in metres of the site CRS.
Bounds = tuple[float, float, float, float]

_LEGEND_BG = (24, 24, 24)
_TEXT = (235, 235, 235)


@dataclass(frozen=True, slots=True)
class Quicklook:
    """A drawn view: the image, a caption, and a file-name ``suffix`` ("" for the zone view)."""

    image: Image.Image
    caption: str
    suffix: str


def read_view(scene: Scene, crs: CRS, bounds: Bounds, gsd: float) -> Tile:
    """The scene's pixels over ``bounds`` on a north-up grid of ``gsd`` metres in ``crs``."""
    minx, miny, maxx, maxy = bounds
    if not (maxx > minx and maxy > miny):
        raise ValueError(f"bounds {bounds} are empty: give (minx, miny, maxx, maxy)")
    grid = SiteGrid.covering(shapely.box(minx, miny, maxx, maxy), crs, gsd)
    whole = PixelWindow(0, 0, grid.rows, grid.cols)
    return next(read_tiles(scene, grid, [GridWindow(whole, whole)]))


def render(
    view: Tile,
    detections: Detections,
    zones: Mapping[str, BaseGeometry] | None = None,
    zoom: int = 1,
    title: str = "",
    marks: Sequence[Bounds] = (),
) -> Image.Image:
    """The view's pixels, ``zoom`` times enlarged (nearest neighbours), with the boxes of the
    detections centred in it (1-pixel outlines coloured by class), the ``zones`` outlined, the
    ``marks`` (e.g. where the crops are) as numbered squares, and a legend strip below:
    ``title``, each class drawn with its count, a scale bar."""
    if zoom < 1:
        raise ValueError(f"zoom must be a whole number >= 1, got {zoom}")
    rgb = view.array.transpose(1, 2, 0).copy()
    rgb[~view.valid] = INVALID_GREY
    image = Image.fromarray(rgb)
    if zoom > 1:
        image = image.resize((image.width * zoom, image.height * zoom), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)

    def points(xy: np.ndarray) -> list[tuple[float, float]]:
        # pixel-corner coordinates of the view to PIL's pixel-centre ones, enlarged
        px = view.map_to_pixels(np.asarray(xy, dtype=np.float64)) * zoom - 0.5
        return [(float(x), float(y)) for x, y in px]

    for geom in (zones or {}).values():
        for ring in _rings(geom):
            draw.line(points(ring), fill=ZONE_COLOUR, width=1)
    for k, (a, b, c, d) in enumerate(marks, start=1):
        corners = points(np.array([(a, d), (c, b)]))
        draw.rectangle(corners, outline=MARK_COLOUR, width=1)
        draw.text((corners[0][0] + 3, corners[0][1] + 1), str(k), fill=MARK_COLOUR, font=_font())
    x0, y0, x1, y1 = view.bounds
    shown = (detections[shapely.contains_xy(shapely.box(x0, y0, x1, y1), detections.centres[:, 0],
                                            detections.centres[:, 1])]
             if len(detections) else detections)
    for corners, class_id in zip(shown.corners, shown.class_id, strict=True):
        draw.polygon(points(corners), outline=CLASS_COLOURS[CLASSES[class_id]], width=1)
    counts: dict[str, int] = {c: int(np.count_nonzero(shown.class_id == i)) for i, c in enumerate(CLASSES)}
    return _with_legend(image, title, counts, bool(zones), view.gsd / zoom)


def busiest_squares(
    centres: np.ndarray, area: BaseGeometry, side_m: float = CROP_SIDE_M, n: int = 3
) -> list[Bounds]:
    """Up to ``n`` squares of ``side_m`` holding the most car ``centres`` ``(k, 2)`` of ``area``:
    the densest first, each later one over cars no earlier square holds."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    inside = centres[shapely.contains_xy(area, centres[:, 0], centres[:, 1])] if len(centres) else centres
    left = np.ones(len(inside), dtype=bool)
    half = side_m / 2
    out: list[Bounds] = []
    while len(out) < n and left.any():
        pts = inside[left]
        near = np.asarray((np.abs(pts[:, None, :] - pts[None, :, :]) <= half).all(axis=2))
        members = pts[near[int(near.sum(axis=1).argmax())]]
        cx, cy = (members.min(axis=0) + members.max(axis=0)) / 2
        square = (float(cx - half), float(cy - half), float(cx + half), float(cy + half))
        out.append(square)
        left &= ~((np.abs(inside[:, 0] - cx) <= half) & (np.abs(inside[:, 1] - cy) <= half))
    return out


@dataclass(frozen=True, slots=True)
class QuicklookSettings:
    """How a zone's quicklooks are drawn: ``label`` heads the legend (e.g. the scene and its
    time); the whole view at most ``max_side`` pixels; up to ``crops`` crops of ``crop_side_m``
    at native resolution (none without ``with_crops``)."""

    label: str = ""
    max_side: int = 1600
    crops: int = 3
    crop_side_m: float = CROP_SIDE_M
    with_crops: bool = True


def zone_quicklooks(
    scene: Scene,
    crs: CRS,
    zone: str,
    area: BaseGeometry,
    detections: Detections,
    zones: Mapping[str, BaseGeometry],
    settings: QuicklookSettings | None = None,
) -> list[Quicklook]:
    """The whole-zone view of ``area``, its busiest parts marked, and crops of those parts at
    the scene's native resolution. ``detections`` (site CRS) are every detection of the scene;
    ``zones`` the outlines to draw."""
    s = settings or QuicklookSettings()
    head = f"{s.label} · " if s.label else ""
    max_side, crops, crop_side_m = s.max_side, s.crops, s.crop_side_m
    minx, miny, maxx, maxy = area.buffer(ZONE_MARGIN_M).bounds
    gsd = max(scene.native_gsd, max(maxx - minx, maxy - miny) / max_side)
    view = read_view(scene, crs, (minx, miny, maxx, maxy), gsd)
    in_zone = detections[np.equal(detections.zone, zone)] if len(detections) else detections
    squares = busiest_squares(in_zone.centres if len(in_zone) else np.zeros((0, 2)), area,
                              crop_side_m, crops)
    looks = [Quicklook(
        render(view, detections, zones, title=f"{head}zone {zone}: {len(in_zone)} cars detected, "
               f"shown at {gsd:.2f} m/px; squares: the crops of its busiest parts", marks=squares),
        f"zone {zone}, whole", "",
    )]
    side_px = crop_side_m / scene.native_gsd
    zoom = max(1, min(4, int(1000 // side_px)))
    for k, square in enumerate(squares if s.with_crops else [], start=1):
        crop = read_view(scene, crs, square, scene.native_gsd)
        title = (f"{head}zone {zone}, busiest part {k} of {len(squares)}: {crop_side_m:.0f} m at "
                 f"the native {scene.native_gsd:.2f} m/px, each pixel drawn {zoom}×{zoom}")
        looks.append(Quicklook(render(crop, detections, zones, zoom, title),
                               f"zone {zone}, busiest part {k}", f"crop{k}"))
    return looks


def save_png(image: Image.Image, path: str | Path) -> None:
    image.save(path, format="PNG", compress_level=3)  # optimize=True cost seconds per PNG


def _rings(geom: BaseGeometry) -> list[np.ndarray]:
    polygons = getattr(geom, "geoms", [geom])
    out = []
    for p in polygons:
        if isinstance(p, shapely.Polygon) and not p.is_empty:
            out.append(np.asarray(p.exterior.coords))
            out.extend(np.asarray(r.coords) for r in p.interiors)
    return out


@cache
def _font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    import matplotlib  # ships DejaVu Sans; no font is downloaded

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default()


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _scale_bar_m(metres_per_px: float, width_px: int) -> float:
    """A round length (1, 2 or 5 × 10^k m) about a fifth of the image wide."""
    target = metres_per_px * width_px / 5
    exponent = math.floor(math.log10(target))
    return max(m * 10.0**exponent for m in (1, 2, 5) if m * 10.0**exponent <= target)


def _with_legend(
    image: Image.Image, title: str, counts: Mapping[str, int], outlines: bool, metres_per_px: float
) -> Image.Image:
    font = _font()
    line = 18
    entries: list[tuple[tuple[int, int, int], str]] = [
        (CLASS_COLOURS[c], f"{c} {n}") for c, n in counts.items()
    ]
    if outlines:
        entries.append((ZONE_COLOUR, "zone outline"))
    width = max(image.width, 480)
    # lay the entries out in rows that fit the width
    rows: list[list[tuple[tuple[int, int, int], str]]] = [[]]
    x = 8
    for colour, text in entries:
        w = 26 + int(font.getlength(text)) + 14
        if x + w > width - 8 and rows[-1]:
            rows.append([])
            x = 8
        rows[-1].append((colour, text))
        x += w
    title_lines = _wrap(title, font, width - 16)
    height = 8 + line * (len(title_lines) + len(rows) + 1) + 4
    out = Image.new("RGB", (width, image.height + height), _LEGEND_BG)
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    y = image.height + 6
    for text in title_lines:
        draw.text((8, y), text, fill=_TEXT, font=font)
        y += line
    for row in rows:
        x = 8
        for colour, text in row:
            draw.rectangle([x, y + 4, x + 18, y + 13], outline=colour, width=1)
            draw.text((x + 24, y), text, fill=_TEXT, font=font)
            x += 26 + int(font.getlength(text)) + 14
        y += line
    bar_m = _scale_bar_m(metres_per_px, image.width)
    bar_px = round(bar_m / metres_per_px)
    draw.line([(8, y + 8), (8 + bar_px, y + 8)], fill=_TEXT, width=2)
    draw.text((16 + bar_px, y), f"{bar_m:g} m", fill=_TEXT, font=font)
    return out
