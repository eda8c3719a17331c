"""Ultralytics and ONNX Runtime, set up to run offline and write nothing of their own — the one
place that does it. (ONNX Runtime: :func:`import_onnxruntime` turns its telemetry off.)

Before ultralytics is first imported: ``YOLO_OFFLINE=1`` (no connectivity checks),
``YOLO_AUTOINSTALL=False`` (no pip installs at run time), and a ``YOLO_CONFIG_DIR`` of
railwatch's own (so the user's ``~/.config/Ultralytics`` is never written) holding the
``Arial.ttf`` ultralytics would otherwise download on every train/val (matplotlib's DejaVu
Sans, which every install has, under that name). Settings ``sync`` is off, and torch uses
as many threads as there are cores (ultralytics picks one on a 2-core machine).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

from railwatch.errors import TrainingExtraError

__all__ = ["cache_dir", "configure_torch_threads", "import_onnxruntime", "import_ultralytics"]

_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def cache_dir() -> Path:
    """railwatch's cache: ``$RAILWATCH_CACHE`` or ``$XDG_CACHE_HOME/railwatch`` (~/.cache/railwatch)."""
    if env := os.environ.get("RAILWATCH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "railwatch"


def _prepare_config_dir() -> Path:
    config = cache_dir() / "ultralytics"
    config.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in _FONTS:
        target = config / name
        if not target.exists():
            shutil.copyfile(dejavu, target)
    return config


def configure_torch_threads() -> int:
    """Use every core for torch's intra-op pool; returns the count."""
    try:
        import torch
    except ImportError as exc:
        raise TrainingExtraError(
            "torch is not installed: training and the torch runtime need railwatch's training "
            "extra (pip install 'railwatch[train]')"
        ) from exc

    cores = _cores()
    torch.set_num_threads(cores)
    return cores


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def import_ultralytics() -> ModuleType:
    """Import ultralytics configured for offline use (idempotent)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(_prepare_config_dir()))
    try:
        import ultralytics
    except ImportError as exc:
        raise TrainingExtraError(
            f"{exc.name or 'ultralytics'} is not installed: training and the torch runtime need "
            "railwatch's training extra (pip install 'railwatch[train]'); counting runs without it "
            "on ONNX Runtime (the default --runtime onnx)"
        ) from exc
    from ultralytics.utils import SETTINGS, torch_utils

    # ultralytics' select_device() resets torch to NUM_THREADS = cores - 1 (one thread on a
    # 2-core machine: half the CPU idle while training). Train on every core.
    setattr(torch_utils, "NUM_THREADS", max(int(getattr(torch_utils, "NUM_THREADS", 1)), _cores()))  # noqa: B010
    if SETTINGS.get("sync", False):
        SETTINGS.update(sync=False)  # type: ignore[no-untyped-call]  # ultralytics is not annotated
    configure_torch_threads()
    return ultralytics


def import_onnxruntime() -> ModuleType:
    """onnxruntime with its telemetry off.

    ONNX Runtime keeps a device id and an event database under ``~/.cache/Microsoft`` from the
    moment it is imported unless ``ORT_DISABLE_TELEMETRY`` is set then: it is set for the
    import only (the environment is as before afterwards), and telemetry events are disabled.
    """
    added = "onnxruntime" not in sys.modules and "ORT_DISABLE_TELEMETRY" not in os.environ
    if added:
        os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    try:
        onnxruntime = importlib.import_module("onnxruntime")
    finally:
        if added:
            del os.environ["ORT_DISABLE_TELEMETRY"]
    onnxruntime.disable_telemetry_events()
    return onnxruntime
