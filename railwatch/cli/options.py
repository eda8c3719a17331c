"""Options and small wiring shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from railwatch.detect.detector import Detector
    from railwatch.detect.observation import Observation
    from railwatch.imagery.scene import Scene
    from railwatch.site import Site

_R = TypeVar("_R")

site_option = click.option(
    "--site",
    "site_name",
    default="tumangang_khasan",
    show_default=True,
    help="A bundled site name (see `railwatch sites`) or a site GeoJSON file.",
)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A command's model options: the folder (``None``: the default), trust, runtime, threshold."""

    model: Path | None = None
    trust_model: bool = False
    runtime: str = "onnx"
    conf: float | None = None


def model_options(f: Callable[..., _R]) -> Callable[..., _R]:
    """``--model``, ``--trust-model``, ``--runtime``, ``--conf``, passed to the command as one
    ``model_choice: ModelChoice``."""

    @functools.wraps(f)
    def command(
        *args: Any, model: Path | None, trust_model: bool, runtime: str, conf: float | None,
        **kwargs: Any,
    ) -> _R:
        return f(*args, model_choice=ModelChoice(model, trust_model, runtime, conf), **kwargs)

    decorated: Callable[..., _R] = command
    decorated = click.option(
        "--conf", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
        default=None, help="Confidence threshold (default: the model's tuned one).")(decorated)
    decorated = click.option(
        "--runtime", type=click.Choice(["onnx", "torch"]), default="onnx",
        show_default=True, help="ONNX Runtime (CPU) or torch (uses a GPU if present).")(decorated)
    decorated = click.option(
        "--trust-model", is_flag=True,
        help="Load model files whose sha256 does not match their manifest.")(decorated)
    decorated = click.option(
        "--model", type=click.Path(path_type=Path), default=None,
        help="Model folder with manifest.json (default: $RAILWATCH_MODEL_DIR, "
             "else the shipped models/).")(decorated)
    return decorated


def build_detector(choice: ModelChoice) -> Detector:
    """The detector a command's model options name."""
    from railwatch.detect.detector import DetectorSettings, Runtime, load_detector

    return load_detector(
        choice.model, choice.trust_model,
        DetectorSettings(runtime=Runtime(choice.runtime), conf=choice.conf),
    )


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
