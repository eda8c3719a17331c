"""What a training dataset folder (``data.yaml`` as ``railwatch dataset`` writes it) says about
itself."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["is_analyst_dataset"]


def is_analyst_dataset(folder: Path) -> bool:
    """Whether the dataset in ``folder`` (or its yaml) is an analyst's labels
    (``railwatch dataset from-labels``), as opposed to simulated chips."""
    yml = folder / "data.yaml" if folder.is_dir() else folder
    try:
        doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and bool(doc.get("analyst") or (doc.get("source") or {}).get("labels"))
