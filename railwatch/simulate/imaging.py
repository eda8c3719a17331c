"""Light and the sensor.

Sunlight and sky light on the painted surface, clouds and their shadows, haze, colour
balance, the point-spread blur, noise, sharpening and JPEG.

The order follows the physics: light on the ground (:func:`illuminate`), the atmosphere
(:func:`apply_clouds`, haze), then the camera (:func:`expose`). Noise matters more than
blur for training (DOMAIN.md), so every sensor adds some.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from railwatch.simulate.canvas import Canvas, RasterWindow
from railwatch.simulate.sun import Sun, cast_shadows
from railwatch.simulate.texture import fbm

__all__ = [
    "CloudField",
    "Sensor",
    "View",
    "apply_clouds",
    "cloud_field",
    "expose",
    "illuminate",
    "random_sensor",
    "random_view",
]


@dataclass(frozen=True, slots=True)
class View:
    """Where the sensor looks from: off-nadir angle and the azimuth of the sensor (degrees).

    Seen off-nadir, anything ``h`` metres tall appears displaced away from the sensor by
    ``h * tan(off_nadir)`` (relief displacement, which orthorectification on a terrain
    model does not remove), and its sides facing the sensor show.
    """

    off_nadir_deg: float = 0.0
    azimuth_deg: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.off_nadir_deg <= 45.0:
            raise ValueError(f"off_nadir_deg must be in [0, 45], got {self.off_nadir_deg}")
        if not 0.0 <= self.azimuth_deg < 360.0:
            raise ValueError(f"azimuth_deg must be in [0, 360), got {self.azimuth_deg}")

    @property
    def lean(self) -> tuple[float, float]:
        """Apparent displacement (east, north) per metre of height."""
        t = math.tan(math.radians(self.off_nadir_deg))
        a = math.radians(self.azimuth_deg)
        return -t * math.sin(a), -t * math.cos(a)


def random_view(rng: np.random.Generator) -> View:
    """Mostly near-nadir, sometimes up to 25° off-nadir, from any side."""
    off = float(rng.uniform(0.0, 10.0) if rng.random() < 0.6 else rng.uniform(10.0, 25.0))
    return View(off, float(rng.uniform(0.0, 360.0)))


@dataclass(frozen=True, slots=True)
class Sensor:
    """How a camera (and the ortho-processing after it) turns radiance into 8-bit pixels.

    ``blur_px``: Gaussian PSF sigma in native pixels; ``noise``: sigma on 0–255, added before
    sharpening (which amplifies it, as on real products); ``noise_grain``: share of the noise
    that is spatially correlated (demosaicking, pan-sharpening); ``jpeg_quality``: None for
    no compression; ``jpeg_passes``: 2 for imagery re-compressed once more (ortho tiles);
    ``gains``: per-channel colour balance; ``gamma``: tone curve exponent; ``haze``: 0–1
    veil of ``haze_color``; ``sharpen``: unsharp-mask strength (halos) and ``sharpen_px`` its
    radius; ``chroma_px``: colour bands shifted against each other (pan-sharpening fringes);
    ``exposure``: overall brightness factor.
    """

    blur_px: float = 0.7
    noise: float = 4.0
    jpeg_quality: int | None = 80
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    haze: float = 0.05
    haze_color: tuple[float, float, float] = (0.70, 0.74, 0.80)
    sharpen: float = 0.0
    exposure: float = 1.0
    saturation: float = 0.85
    sharpen_px: float = 1.5
    chroma_px: float = 0.0
    noise_grain: float = 0.0
    jpeg_passes: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.blur_px <= 5.0:
            raise ValueError(f"blur_px must be in [0, 5], got {self.blur_px}")
        if not 0.0 <= self.noise <= 50.0:
            raise ValueError(f"noise must be in [0, 50], got {self.noise}")
        if self.jpeg_quality is not None and not 5 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [5, 100], got {self.jpeg_quality}")
        if not 0.0 <= self.haze < 1.0:
            raise ValueError(f"haze must be in [0, 1), got {self.haze}")
        if not 0.2 <= self.gamma <= 5.0:
            raise ValueError(f"gamma must be in [0.2, 5], got {self.gamma}")
        if not (0.0 <= self.sharpen <= 5.0 and 0.3 <= self.sharpen_px <= 5.0):
            raise ValueError(f"sharpen must be in [0, 5] and sharpen_px in [0.3, 5], got "
                             f"{self.sharpen}, {self.sharpen_px}")
        if not (0.0 <= self.chroma_px <= 3.0 and 0.0 <= self.noise_grain <= 1.0):
            raise ValueError("chroma_px must be in [0, 3] and noise_grain in [0, 1]")
        if self.jpeg_passes not in (1, 2):
            raise ValueError(f"jpeg_passes must be 1 or 2, got {self.jpeg_passes}")


def random_sensor(rng: np.random.Generator) -> Sensor:
    """A random but plausible satellite or aerial camera and its processing (wide ranges).

    Most products are sharpened (halos at edges) and JPEG-compressed; noise is always there
    (DOMAIN.md: noise helps transfer, blur does not, so the PSF stays mostly crisp).
    """
    haze_tint = rng.normal(1.0, 0.04, 3)
    strong = 2.0 if rng.random() < 0.15 else 1.0  # sometimes a strong colour cast
    warm = float(rng.normal(0.0, 0.045 * strong))  # white balance: along blue–yellow, a little green–magenta
    tint = float(rng.normal(0.0, 0.02 * strong))
    gains = np.clip(np.array([1 + warm, 1 + tint, 1 - warm]) * rng.normal(1.0, 0.015, 3), 0.75, 1.25)
    return Sensor(
        blur_px=float(rng.uniform(0.35, 0.95)),
        noise=float(rng.uniform(1.0, 7.0)),
        jpeg_quality=None if rng.random() < 0.12 else int(rng.integers(50, 96)),
        gains=tuple(float(g) for g in gains),  # type: ignore[arg-type]
        gamma=float(rng.uniform(0.8, 1.25)),
        haze=float(rng.choice([0.0, rng.uniform(0.0, 0.12), rng.uniform(0.1, 0.3)], p=[0.3, 0.5, 0.2])),
        haze_color=tuple(float(c) for c in np.clip(np.array([0.70, 0.74, 0.80]) * haze_tint, 0, 1)),  # type: ignore[arg-type]
        sharpen=float(rng.choice([0.0, rng.uniform(0.3, 1.3)], p=[0.25, 0.75])),
        exposure=float(rng.uniform(0.85, 1.2)),
        saturation=float(rng.uniform(0.5, 1.05)),
        sharpen_px=float(rng.uniform(0.8, 2.0)),
        chroma_px=float(rng.uniform(0.2, 1.0)) if rng.random() < 0.3 else 0.0,
        noise_grain=float(rng.uniform(0.0, 0.7)),
        jpeg_passes=2 if rng.random() < 0.2 else 1,
    )


def illuminate(canvas: Canvas, sun: Sun, ambient: float = 0.32) -> np.ndarray:
    """Radiance (rows, cols, 3; flat sunlit ground = its albedo) with cast shadows.

    ``ambient`` is the share of sky light on flat ground; shadows receive only that, tinted
    blue, so a shadow on ballast is about ``ambient`` times as bright as the sunlit ballast
    (about half on the real yard of DOMAIN.md). Low sun warms the direct light.
    """
    cast = cast_shadows(canvas.height, sun, canvas.window.gsd, floor=canvas.floor)
    shadow = np.maximum(cast, canvas.shade)
    # Sunlight's penumbra is a few centimetres at these heights: shadow edges are crisp, and
    # the blur only smooths the ray-marcher's staircase (the sensor's own blur comes later).
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.45)
    warm = max(0.0, (35.0 - sun.elevation_deg) / 35.0)
    sun_rgb = np.array([1.0 + 0.08 * warm, 1.0, 1.0 - 0.12 * warm], dtype=np.float32)
    sky_rgb = np.array([0.93, 0.98, 1.10], dtype=np.float32)
    direct = canvas.direct * (1.0 - shadow)
    light = ambient * sky_rgb + (1.0 - ambient) * sun_rgb * direct[..., None]
    return np.asarray(canvas.albedo * light)


@dataclass(frozen=True, slots=True)
class CloudField:
    """Cloud opacity (0–1) and the fraction of sunlight its shadow removes, per pixel."""

    opacity: np.ndarray
    shadow: np.ndarray


def cloud_field(
    window: RasterWindow,
    seed: int,
    threshold: float,
    sun: Sun,
    *,
    cell_m: float = 400.0,
    altitude_m: float = 1500.0,
    softness: float = 0.25,
) -> CloudField:
    """Clouds where world-anchored fractal noise exceeds ``threshold``, and their shadows.

    The shadow is the same field moved away from the sun by ``altitude / tan(elevation)``.
    """
    def opacity(w: RasterWindow) -> np.ndarray:
        n = fbm(w, cell_m, seed, octaves=5, persistence=0.55)
        return np.clip((n - threshold) / softness, 0.0, 1.0).astype(np.float32)

    op = opacity(window)
    east, north = sun.toward
    reach = sun.shadow_length(altitude_m)
    # a ground point is shaded by the cloud toward the sun from it
    sh = opacity(window.shifted(east * reach, north * reach))
    return CloudField(op, sh)


def apply_clouds(radiance: np.ndarray, clouds: CloudField, window: RasterWindow, seed: int) -> np.ndarray:
    """Darken cloud shadows and veil the ground with (textured) cloud."""
    out = radiance * (1.0 - 0.65 * clouds.shadow)[..., None]
    if clouds.opacity.any():
        tex = 0.88 + 0.1 * fbm(window, 40.0, seed + 99, octaves=4)
        cloud_rgb = np.stack([tex * 0.98, tex * 0.99, tex * 1.02], -1).astype(np.float32)
        a = clouds.opacity[..., None]
        out = out * (1 - a) + cloud_rgb * a
    return out


def _shift_bands(img: np.ndarray, px: float, angle: float) -> np.ndarray:
    """Red moved by ``px`` along ``angle`` and blue against it (band misregistration)."""
    out = img.copy()
    dx, dy = px * math.cos(angle), px * math.sin(angle)
    rows, cols = img.shape[:2]
    for band, sign in ((0, 1.0), (2, -1.0)):
        m = np.array([[1.0, 0.0, sign * dx], [0.0, 1.0, sign * dy]], dtype=np.float64)
        out[..., band] = cv2.warpAffine(np.ascontiguousarray(img[..., band]), m, (cols, rows),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return rgb if decoded is None else np.ascontiguousarray(decoded[..., ::-1])


def expose(radiance: np.ndarray, sensor: Sensor, rng: np.random.Generator) -> np.ndarray:
    """Haze, colour balance, blur, noise, sharpening, 8-bit quantisation and JPEG → uint8 RGB."""
    img: np.ndarray = radiance * np.float32(sensor.exposure)
    if sensor.haze > 0:
        img = img * (1 - sensor.haze) + np.asarray(sensor.haze_color, dtype=np.float32) * sensor.haze
    if sensor.saturation != 1.0:
        grey = img.mean(axis=-1, keepdims=True)
        img = grey + (img - grey) * np.float32(sensor.saturation)
    img = img * np.asarray(sensor.gains, dtype=np.float32)
    img = np.clip(img, 0.0, 1.2) ** np.float32(1.0 / sensor.gamma)
    if sensor.chroma_px > 0:
        img = _shift_bands(img, sensor.chroma_px, float(rng.uniform(0, 2 * math.pi)))
    if sensor.blur_px > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sensor.blur_px)
    img = img * 255.0
    if sensor.noise > 0:
        shape = img.shape[:2]
        common = rng.standard_normal(shape, dtype=np.float32)
        per = rng.standard_normal(img.shape, dtype=np.float32)
        noise: np.ndarray = 0.8 * common[..., None] + 0.6 * per
        if sensor.noise_grain > 0:  # correlated over ~2 px, rescaled to unit variance
            soft = cv2.GaussianBlur(noise, (0, 0), 0.8) * np.float32(2.8)
            noise = noise * np.float32(1 - sensor.noise_grain) + soft * np.float32(sensor.noise_grain)
        img += sensor.noise * noise
    if sensor.sharpen > 0:
        blurred = cv2.GaussianBlur(img, (0, 0), sensor.sharpen_px)
        img = img + sensor.sharpen * (img - blurred)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if sensor.jpeg_quality is not None:
        for k in range(sensor.jpeg_passes):
            out = _jpeg(out, sensor.jpeg_quality if k == 0 else min(95, sensor.jpeg_quality + 10))
    return out
