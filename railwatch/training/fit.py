"""Fit an oriented-box YOLO model on training chips and package it as a railwatch model folder.

A model folder holds the weights (``railcar-obb.pt``), their ONNX export, ``manifest.json``
(classes, gsd, chip size, sha256 of each file, the command, seed and data recipe, measured
accuracy and the tuned confidence threshold) and the ultralytics run under ``run/`` (git
ignores it), whose ``weights/last.pt`` a resumed run continues from.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from railwatch import __version__
from railwatch.classes import CLASS_NAMES, CLASSES
from railwatch.detect.manifest import ModelFile, ModelManifest, sha256_file
from railwatch.errors import RailwatchError
from railwatch.training.checkpoint import check_checkpoint, record_checkpoints, recorded_checkpoint

__all__ = ["TrainSettings", "combined_data_yaml", "fit", "package_model", "train_model"]

WEIGHTS = "railcar-obb.pt"
ONNX = "railcar-obb.onnx"
SETTINGS_FILE = "train_settings.json"

#: Augmentation for overhead imagery: any rotation and flip (tracks run in every direction),
#: a little scale jitter only (object size in pixels matters most), colour jitter.
AUGMENT: dict[str, float] = {
    "degrees": 180.0,
    "flipud": 0.5,
    "fliplr": 0.5,
    "scale": 0.2,
    "translate": 0.1,
    "mosaic": 1.0,
    "hsv_h": 0.02,
    "hsv_s": 0.5,
    "hsv_v": 0.35,
}


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Everything that decides a training run (written into the manifest)."""

    datasets: tuple[str, ...]
    out: str
    base: str = "yolo11n-obb.yaml"
    epochs: int = 60
    imgsz: int = 320
    gsd: float = 0.3
    batch: int = 16
    seed: int = 0
    workers: int = 2
    device: str | None = None
    patience: int = 100
    close_mosaic: int = 5
    hours: float | None = None
    cache: str | None = "ram"
    #: Learning-rate warm-up; ``None``: 3 epochs from scratch, none when fine-tuning (a warm-up
    #: restarts the head's bias at a high rate and undoes a trained model in a short run).
    warmup_epochs: float | None = None
    #: Initial learning rate; ``None``: ultralytics' automatic choice from scratch, and a small
    #: AdamW rate when fine-tuning (fresh Adam moments move every weight by ~lr per step; at
    #: ultralytics' ~1e-3 a handful of steps wrecks a trained model).
    lr0: float | None = None
    augment: dict[str, float] = field(default_factory=lambda: dict(AUGMENT))

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("at least one dataset is needed")
        if self.epochs < 1 or self.imgsz < 32 or self.batch < 1:
            raise ValueError("epochs, imgsz and batch must be positive (imgsz >= 32)")

    def recorded(self) -> dict[str, Any]:
        """The settings as a model folder records them (manifest, ``train_settings.json``): paths
        relative to the model folder ``out``, which is not recorded itself (it is where the
        record lies), so that no directory of the training machine is written down."""
        folder = Path(self.out).resolve()
        doc = asdict(self)
        del doc["out"]
        doc["datasets"] = [_relative_to(d, folder) for d in self.datasets]
        if Path(self.base).exists():  # a model folder or weights file, not an architecture name
            doc["base"] = _relative_to(self.base, folder)
        return doc

    @classmethod
    def load(cls, out: Path) -> TrainSettings:
        """The settings a run in ``out`` was started with (its ``train_settings.json``)."""
        path = out / SETTINGS_FILE
        folder = out.resolve()
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            given: dict[str, Any] = {k: v for k, v in saved.items() if k in known}
            given["datasets"] = tuple(os.path.normpath(folder / d) for d in given.get("datasets", ()))
            given["out"] = str(folder)
            if "base" in given and (folder / given["base"]).exists():
                given["base"] = os.path.normpath(folder / given["base"])
            return cls(**given)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise RailwatchError(
                f"{path}: not the settings of a training run ({exc}); start a new run without --resume"
            ) from exc


def _relative_to(path: str | Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (with ``..`` where it lies outside), POSIX style."""
    return Path(os.path.relpath(Path(path).resolve(), folder)).as_posix()


def combined_data_yaml(datasets: Sequence[Path], out: Path) -> Path:
    """One ultralytics dataset yaml listing the train and val folders of several datasets.

    Each dataset is a folder with ``data.yaml`` (as written by ``railwatch dataset``); their
    classes must be railwatch's. Paths are absolute (ultralytics resolves relative ones
    against its own datasets directory).
    """
    train: list[str] = []
    val: list[str] = []
    for ds in datasets:
        ds = Path(ds)
        yml = ds / "data.yaml" if ds.is_dir() else ds
        try:
            doc = yaml.safe_load(yml.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RailwatchError(
                f"{yml}: not a readable dataset yaml ({exc}); make one with `railwatch dataset`"
            ) from exc
        names = doc.get("names", {})
        names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        if tuple(names) != CLASSES:
            raise RailwatchError(f"{yml}: classes {names} are not railwatch's {list(CLASSES)}")
        root = Path(doc.get("path") or yml.parent)
        if not root.is_absolute():
            root = (yml.parent / root).resolve()
        for key, acc in (("train", train), ("val", val)):
            entries = doc.get(key) or []
            for entry in [entries] if isinstance(entries, str) else entries:
                p = Path(entry)
                acc.append(str(p if p.is_absolute() else root / p))
    if not val:
        raise RailwatchError("no validation images in the datasets; each needs a val split")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        yaml.safe_dump({"train": train, "val": val, "names": dict(enumerate(CLASS_NAMES))}, sort_keys=False)
    )
    return out


def fit(
    settings: TrainSettings,
    resume: bool = False,
    progress: Callable[[str], None] = print,
    trust_model: bool = False,
) -> Path:
    """Train (or resume) and return the best weights. Runs ultralytics offline.

    A checkpoint is a pickle: the base model or the checkpoint resumed from is loaded only when
    :func:`~railwatch.training.checkpoint.check_checkpoint` allows it (its manifest's or the
    run's recorded sha256, a weights-only load, or ``trust_model``).
    """
    from railwatch.detect.offline import import_ultralytics

    out = Path(settings.out).resolve()
    run_dir = out / "run"
    last = run_dir / "weights" / "last.pt"
    fine_tune = False
    if resume:
        if not last.is_file():
            raise RailwatchError(f"{last}: no checkpoint to resume from; start a new run")
        for checkpoint in (last, run_dir / "weights" / "best.pt"):  # best.pt is packaged later
            if checkpoint.is_file():
                check_checkpoint(checkpoint, recorded_checkpoint(run_dir, checkpoint.name),
                                 trust_model)
        base = last
    else:
        base = Path(settings.base)
        fine_tune = (base / "manifest.json").is_file() or base.suffix == ".pt"
        if (base / "manifest.json").is_file():  # fine-tune a railwatch model folder
            base = ModelManifest.load(base).verified_path(ModelFile.WEIGHTS, trust=trust_model)
        elif base.suffix == ".pt":
            check_checkpoint(base, None, trust_model)
        out.mkdir(parents=True, exist_ok=True)
        (out / SETTINGS_FILE).write_text(json.dumps(settings.recorded(), indent=2))
    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(str(base)) if resume else ultralytics.YOLO(str(base), task="obb")
    model.add_callback("on_model_save", lambda trainer: record_checkpoints(Path(trainer.wdir)))
    started = time.monotonic()

    def on_epoch_end(trainer: Any) -> None:
        done = trainer.epoch + 1
        total = trainer.epochs
        elapsed = time.monotonic() - started
        eta = elapsed / max(done - trainer.start_epoch, 1) * (total - done)
        progress(f"railwatch train: epoch {done}/{total}, elapsed {elapsed / 60:.1f} min, "
                 f"ETA {eta / 60:.1f} min")

    model.add_callback("on_fit_epoch_end", on_epoch_end)
    if resume:
        model.train(resume=True)
    else:
        data = combined_data_yaml([Path(d) for d in settings.datasets], out / "run-data.yaml")
        model.train(
            data=str(data),
            epochs=settings.epochs,
            imgsz=settings.imgsz,
            batch=settings.batch,
            seed=settings.seed,
            deterministic=True,
            workers=settings.workers,
            device=settings.device or _auto_device(),
            project=str(out),
            name="run",
            exist_ok=True,
            patience=settings.patience,
            close_mosaic=settings.close_mosaic,
            time=settings.hours,
            cache=settings.cache or False,
            warmup_epochs=settings.warmup_epochs if settings.warmup_epochs is not None
            else (0.0 if fine_tune else 3.0),
            warmup_bias_lr=0.0 if fine_tune and settings.warmup_epochs is None else 0.1,
            **_optimizer(settings, fine_tune),
            plots=False,
            amp=False,
            verbose=False,
            **settings.augment,
        )
    best = run_dir / "weights" / "best.pt"
    return best if best.is_file() else last


def train_model(
    settings: TrainSettings,
    resume: bool = False,
    progress: Callable[[str], None] = print,
    command: str | None = None,
    extra_training: dict[str, Any] | None = None,
    trust_model: bool = False,
) -> ModelManifest:
    """Fit (or resume), measure on the validation chips with a tuned threshold, and write the
    model folder ``settings.out``: all of ``railwatch train`` as one call."""
    from railwatch.training.tune import measure_on_val

    best = fit(settings, resume=resume, progress=progress, trust_model=trust_model)
    progress(f"measuring {best} on the validation chips ...")
    accuracy = measure_on_val(best, settings.datasets, settings.imgsz)
    return package_model(best, settings, accuracy, extra_training=extra_training, command=command)


#: AdamW learning rate for fine-tuning when ``TrainSettings.lr0`` is not given.
FINE_TUNE_LR = 1e-4


def _optimizer(settings: TrainSettings, fine_tune: bool) -> dict[str, Any]:
    if settings.lr0 is not None:
        return {"optimizer": "AdamW", "lr0": settings.lr0}
    return {"optimizer": "AdamW", "lr0": FINE_TUNE_LR} if fine_tune else {"optimizer": "auto"}


def _auto_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def package_model(
    weights: Path,
    settings: TrainSettings,
    accuracy: dict[str, Any],
    name: str = "railcar-obb",
    extra_training: dict[str, Any] | None = None,
    command: str | None = None,
) -> ModelManifest:
    """Copy the weights into the model folder, export ONNX, hash both, write the manifest.

    ``command`` is the command line that trained it (default: the Python API, whose settings
    the manifest holds in full).
    """
    from railwatch.detect.offline import import_ultralytics

    ultralytics = import_ultralytics()
    out = Path(settings.out).resolve()
    pt = out / WEIGHTS
    if weights.resolve() != pt:
        shutil.copyfile(weights, pt)
    exported = Path(
        ultralytics.YOLO(str(pt), task="obb").export(
            format="onnx", imgsz=settings.imgsz, dynamic=True, simplify=True, opset=17
        )
    )
    onnx = out / ONNX
    if exported.resolve() != onnx:
        shutil.move(str(exported), onnx)
    doc = {
        "name": name,
        "classes": list(CLASSES),
        "gsd": settings.gsd,
        "chip": settings.imgsz,
        "files": {
            ModelFile.WEIGHTS.value: {"path": WEIGHTS, "sha256": sha256_file(pt)},
            ModelFile.ONNX.value: {"path": ONNX, "sha256": sha256_file(onnx)},
        },
        "training": {
            "command": command or "railwatch.training.fit.train_model (Python API; settings below)",
            "settings": settings.recorded(),
            "railwatch": __version__,
            "ultralytics": ultralytics.__version__,
            "python": platform.python_version(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            **(extra_training or {}),
        },
        "accuracy": accuracy,
    }
    (out / "manifest.json").write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    return ModelManifest.load(out)


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
