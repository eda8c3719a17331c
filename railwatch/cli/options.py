"""Options and small wiring shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from railwatch.detect.detector import Detector
    from railwatch.detect.observation import Observation
    from railwatch.imagery.scene import Scene
    from railwatch.site import Site

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
                     help="Model folder with manifest.json (default: $RAILWATCH_MODEL_DIR, "
                          "else the shipped railwatch/models/).")(f)
    return f


def build_detector(model: Path | None, trust_model: bool, runtime: str, conf: float | None) -> Detector:
    from railwatch.detect.detector import DetectorSettings, Runtime, load_detector

    return load_detector(model, trust_model, DetectorSettings(runtime=Runtime(runtime), conf=conf))


def observe_image(
    site_name: str | None, image: Path, detector: Detector
) -> tuple[Site, Scene, Observation] | None:
    """Open and observe one image for ``detect``/``evaluate`` (time not required); a refused
    scene is one line on stderr and ``None``."""
    from railwatch.detect.observation import observe_file
    from railwatch.errors import SceneError

    try:
        return observe_file(image, detector, site_name)
    except SceneError as exc:
        click.echo(f"{exc.path}: {exc.reason}: {exc.message}", err=True)
        return None
