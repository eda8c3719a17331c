"""Training chips: small random yard scenes with YOLO-OBB labels, and their export.

Each chip is rendered at its own native ground sample distance (0.25–0.8 m, mostly
0.3–0.5 m), passed through a random sensor, then resampled bilinearly to the model's gsd,
as the pipeline's warp would do. Labels are the car bodies' oriented rectangles in chip
pixels. A chip is a pure function of (seed, index).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon, box

from railwatch.classes import CLASS_NAMES, CarClass
from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.ground import Season, palette_for
from railwatch.simulate.imaging import (
    View,
    apply_clouds,
    cloud_field,
    expose,
    illuminate,
    random_sensor,
    random_view,
)
from railwatch.simulate.stock import PlacedCar, roof_offset
from railwatch.simulate.sun import Sun
from railwatch.simulate.yard import YardStyle, random_style, random_yard
from railwatch.simulate.yardpaint import paint_yard

__all__ = ["Chip", "ChipLabel", "export_yolo_obb", "label_cars", "random_sun", "render_chip"]

#: Metres rendered beyond each chip edge, so that shadows, blur and JPEG blocks at the edge
#: come from real content.
MARGIN_M = 10.0

_SEASONS = (Season.SUMMER, Season.EARLY_AUTUMN, Season.LATE_AUTUMN, Season.WINTER, Season.SNOW)
_SEASON_P = (0.3, 0.2, 0.17, 0.18, 0.15)


@dataclass(frozen=True, slots=True)
class ChipLabel:
    """One car in a chip: its class and oriented box corners, normalised to [0, 1] (x, y)."""

    cls: CarClass
    corners: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.corners)
        if c.shape != (4, 2):
            raise ValueError(f"corners must be (4, 2), got {c.shape}")
        if not ((c >= 0).all() and (c <= 1).all()):
            raise ValueError("corners must be normalised to [0, 1]")

    def line(self) -> str:
        """The label as an ultralytics YOLO-OBB text line."""
        return f"{self.cls.class_id} " + " ".join(f"{v:.6f}" for v in self.corners.reshape(-1))


@dataclass(frozen=True, slots=True)
class Chip:
    """A rendered chip (uint8 RGB, chip × chip), its labels, and how it was made.

    ``cars`` are in world metres around the chip's centre; the chip spans ``± chip × gsd ×
    scale / 2`` metres of them (``scale``: the chip's scale jitter), labels are in chip pixels.
    """

    image: np.ndarray
    labels: tuple[ChipLabel, ...]
    cars: tuple[PlacedCar, ...]
    gsd: float
    native_gsd: float
    sun: Sun
    season: Season
    view: View
    scale: float = 1.0
    style: YardStyle | None = None


def random_sun(rng: np.random.Generator) -> Sun:
    """Elevation mostly 35–68° (late-morning imagery), else 15–72°; azimuth mostly 120–220°."""
    el = float(rng.uniform(35.0, 68.0) if rng.random() < 0.65 else rng.uniform(15.0, 72.0))
    if rng.random() < 0.7:
        az = float(np.clip(rng.normal(170.0, 30.0), 100.0, 240.0))
    else:
        az = float(rng.uniform(0.0, 360.0))
    return Sun(az % 360.0, el)


def _native_gsd(rng: np.random.Generator) -> float:
    if rng.random() < 0.7:
        return float(rng.uniform(0.29, 0.52))
    return float(rng.uniform(0.25, 0.8))


def label_cars(
    cars: Sequence[PlacedCar],
    gsd: float,
    chip: int,
    min_inside: float = 0.5,
    lean: tuple[float, float] = (0.0, 0.0),
) -> list[ChipLabel]:
    """YOLO-OBB labels of cars in a chip centred on the world origin, ``chip`` px at ``gsd``.

    A label is the car body's top as it appears (moved by the view's ``lean``). Cars less
    than ``min_inside`` inside are dropped; cut cars are clipped to the chip and labelled
    with the minimum rotated rectangle of what is inside.
    """
    half = chip * gsd / 2
    frame = box(-half, -half, half, half)
    out: list[ChipLabel] = []
    for car in cars:
        ox, oy = roof_offset(car.car, lean)
        poly = translate(car.polygon, ox, oy)
        inter = poly.intersection(frame)
        if inter.is_empty or inter.area < min_inside * poly.area:
            continue
        if inter.area < poly.area * 0.999:
            rect = shapely.minimum_rotated_rectangle(inter)
            xy = np.asarray(rect.exterior.coords)[:4] if isinstance(rect, Polygon) else None
            if xy is None or len(xy) < 4:
                continue
        else:
            xy = car.corners() + np.array([ox, oy])
        px = np.column_stack([(xy[:, 0] + half) / (2 * half), (half - xy[:, 1]) / (2 * half)])
        px = np.clip(px, 0.0, 1.0)  # ultralytics rejects coordinates outside [0, 1]
        short = np.linalg.norm(np.roll(px, -1, axis=0) - px, axis=1).min() * 2 * half
        if short < 0.35 * car.car.width:  # a corner sliver: nothing car-like is visible
            continue
        out.append(ChipLabel(car.car.cls, px))
    return out


def render_chip(seed: int, index: int, *, gsd: float = 0.3, chip: int = 320) -> Chip:
    """Render chip ``index`` of the set drawn with ``seed``.

    The chip shows ``chip × gsd × scale`` metres, ``scale`` drawn in 0.92–1.08 (imagery whose
    stated resolution is a little off, cars a little larger or smaller than drawn), so car
    sizes in pixels are jittered around the right ones; labels follow.
    """
    import cv2

    if not gsd > 0 or chip < 32:
        raise ValueError("gsd must be positive and chip at least 32 px")
    rng = np.random.default_rng([seed, index])
    scale = float(rng.uniform(0.92, 1.08))
    half = chip * gsd * scale / 2
    native = _native_gsd(rng)
    n_core = max(16, round(2 * half / native))
    native = 2 * half / n_core
    m_px = math.ceil(MARGIN_M / native)
    size = n_core + 2 * m_px
    window = RasterWindow(-half - m_px * native, half + m_px * native, native, size, size)
    season = _SEASONS[int(rng.choice(len(_SEASONS), p=_SEASON_P))]
    palette = palette_for(season, rng)
    sun = random_sun(rng)
    style = random_style(rng)
    layout = random_yard(rng, half, season, style)
    canvas = Canvas(window)
    scene_seed = int(rng.integers(0, 2**31 - 1))
    view = random_view(rng)
    paint_yard(canvas, layout, palette, sun, scene_seed, lean=view.lean)
    sensor = random_sensor(rng)
    # sky light: a shadow on ballast is 0.28–0.6 as bright as the sunlit ballast (0.53 measured)
    ambient = float(rng.uniform(0.28, 0.58) + 0.2 * sensor.haze)
    radiance = illuminate(canvas, sun, ambient=min(ambient, 0.7))
    if rng.random() < 0.08:
        clouds = cloud_field(window, scene_seed, float(rng.uniform(0.0, 0.8)), sun,
                             cell_m=float(rng.uniform(60, 200)), altitude_m=float(rng.uniform(300, 1500)))
        radiance = apply_clouds(radiance, clouds, window, scene_seed)
    img = expose(radiance, sensor, rng)
    core = img[m_px : m_px + n_core, m_px : m_px + n_core]
    out = cv2.resize(core, (chip, chip), interpolation=cv2.INTER_LINEAR)
    labels = tuple(label_cars(layout.cars, gsd * scale, chip, lean=view.lean))
    return Chip(out, labels, layout.cars, gsd, native, sun, season, view, scale, layout.style)


def _write_chip(args: tuple[Path, str, int, int, float, int]) -> int:
    import cv2

    out, split, seed, index, gsd, chip_px = args
    chip = render_chip(seed, index, gsd=gsd, chip=chip_px)
    stem = f"sim_{seed}_{index:06d}"
    cv2.imwrite(str(out / "images" / split / f"{stem}.png"), chip.image[..., ::-1])
    text = "".join(lab.line() + "\n" for lab in chip.labels)
    (out / "labels" / split / f"{stem}.txt").write_text(text, encoding="utf-8")
    return len(chip.labels)


def export_yolo_obb(
    out: Path,
    n: int,
    *,
    gsd: float = 0.3,
    chip: int = 320,
    seed: int = 0,
    val_fraction: float = 0.1,
    workers: int = 1,
) -> Path:
    """Write ``n`` simulated chips as an ultralytics YOLO-OBB dataset; return its ``data.yaml``.

    Layout: ``images/{train,val}/*.png``, ``labels/{train,val}/*.txt`` (one line per car:
    ``class x1 y1 x2 y2 x3 y3 x4 y4``, normalised) and ``data.yaml``. Existing images and
    labels in ``out`` are replaced.
    """
    import yaml

    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out).resolve()
    for sub in ("images", "labels"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for sub in ("images", "labels"):
        for split in ("train", "val"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n > 1 else 0
    jobs = [(out, "val" if i < n_val else "train", seed, i, gsd, chip) for i in range(n)]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            list(pool.imap_unordered(_write_chip, jobs, chunksize=8))
    else:
        for job in jobs:
            _write_chip(job)
    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
    }
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    meta = {"simulated": True, "generator": "railwatch.simulate.chips", "gsd": gsd, "chip": chip,
            "seed": seed, "n": n, "n_val": n_val}
    (out / "simulated.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return yaml_path
