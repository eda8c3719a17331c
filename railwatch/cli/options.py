"""Options and small wiring shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from railwatch.scene import footprint_lonlat
from railwatch.site import Site, load_site, site_for_footprint

if TYPE_CHECKING:
    from railwatch.detector import Detector
    from railwatch.observation import Observation
    from railwatch.scene import Scene

site_option = click.option(
    "--site",
    "site_name",
    default="tumangang_khasan",
    show_default=True,
    help="A bundled site name (see `railwatch sites`) or a site GeoJSON file.",
)


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--model``, ``--trust-model``, ``--runtime``, ``--conf``."""
    f = click.option("--conf", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
                     default=None, help="Confidence threshold (default: the model's tuned one).")(f)
    f = click.option("--runtime", type=click.Choice(["onnx", "torch"]), default="onnx",
                     show_default=True, help="ONNX Runtime (CPU) or torch (uses a GPU if present).")(f)
    f = click.option("--trust-model", is_flag=True,
                     help="Load model files whose sha256 does not match their manifest.")(f)
    f = click.option("--model", type=click.Path(path_type=Path), default=None,
                     help="Model folder with manifest.json (default: the shipped models/).")(f)
    return f


def build_detector(model: Path | None, trust_model: bool, runtime: str, conf: float | None) -> Detector:
    from railwatch.detector import DetectorSettings, Runtime, load_detector

    return load_detector(model, trust_model, DetectorSettings(runtime=Runtime(runtime), conf=conf))


def site_or_footprint(site_name: str | None, image: Path) -> Site:
    """The named site, or a site that is the image's whole footprint."""
    if site_name:
        return load_site(site_name)
    return site_for_footprint(image.stem, footprint_lonlat(image))


def observe_image(
    site_name: str | None, image: Path, detector: Detector
) -> tuple[Site, Scene, Observation] | None:
    """Open and observe one image for ``detect``/``evaluate`` (time not required); a refused
    scene is one line on stderr and ``None``."""
    from railwatch.errors import SceneError
    from railwatch.observation import observe_scene
    from railwatch.scene import open_scene

    try:
        site = site_or_footprint(site_name, image)
        scene = open_scene(image, site.crs, site.aoi_local, require_time=False)
        return site, scene, observe_scene(scene, site, detector)
    except SceneError as exc:
        click.echo(f"{exc.path}: {exc.reason}: {exc.message}", err=True)
        return None
