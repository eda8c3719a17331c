"""The model manifest (``models/manifest.json``): classes, ground sample distance, chip size,
file hashes, how the model was trained and how well it did."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CLASSES", "DEFAULT_GSD", "default_gsd", "default_model_dir"]

#: Rolling-stock classes, in the model's index order.
CLASSES: tuple[str, ...] = ("covered_car", "open_car", "tank_car", "flat_car", "locomotive")

#: Grid ground sample distance used when no model manifest exists.
DEFAULT_GSD = 0.5


def default_model_dir() -> Path:
    """``models/`` beside the package (an editable install or a source checkout)."""
    return Path(__file__).resolve().parent.parent / "models"


def default_gsd() -> float:
    """The shipped model's working ground sample distance, or 0.5 m if none is shipped."""
    manifest = default_model_dir() / "manifest.json"
    if manifest.is_file():
        return float(json.loads(manifest.read_text())["gsd"])
    return DEFAULT_GSD
