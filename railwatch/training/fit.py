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
from railwatch.training.bases import BASES, BaseName, fetch_base
from railwatch.training.checkpoint import check_checkpoint, recorded_checkpoint, save_atomically

__all__ = [
    "Schedule",
    "TrainSettings",
    "combined_data_yaml",
    "default_schedule",
    "fit",
    "package_model",
    "train_model",
]

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
    #: One class, "a rail car is here" (ultralytics ``single_cls``): the namer names the kind.
    single_cls: bool = False
    #: The first ``freeze`` layers (a pretrained base's backbone) are kept as they are.
    freeze: int = 0
    augment: dict[str, float] = field(default_factory=lambda: dict(AUGMENT))

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("at least one dataset is needed")
        if self.epochs < 1 or self.imgsz < 32 or self.batch < 1:
            raise ValueError("epochs, imgsz and batch must be positive (imgsz >= 32)")
        if self.freeze < 0:
            raise ValueError(f"freeze must be 0 or more layers, got {self.freeze}")

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
    if resume and not last.is_file():
        progress(f"railwatch train: {last} was never written (the run stopped in its first epoch): "
                 "starting the run again from its recorded settings")
        resume = False
    if resume:
        for checkpoint in (last, run_dir / "weights" / "best.pt"):  # best.pt is packaged later
            if checkpoint.is_file():
                check_checkpoint(checkpoint, recorded_checkpoint(run_dir, checkpoint.name), trust_model)
        base, fine_tune = last, False
    else:
        base, fine_tune = _checked_base(settings, trust_model, progress)
        out.mkdir(parents=True, exist_ok=True)
        (out / SETTINGS_FILE).write_text(json.dumps(settings.recorded(), indent=2))
    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(str(base)) if resume else ultralytics.YOLO(str(base), task="obb")
    model.add_callback("on_pretrain_routine_end", save_atomically)
    model.add_callback("on_fit_epoch_end", _epoch_reporter(progress))
    if settings.hours is not None:
        model.add_callback("on_fit_epoch_end", _time_cap(settings.hours, progress))
    if resume and _finished(model.ckpt):
        # ultralytics strips last.pt once every epoch has run (epoch -1, no optimizer); resuming
        # it would start a new training on ultralytics' demo dataset (dota8.yaml).
        progress("railwatch train: every epoch had run; packaging the model")
    elif resume:
        try:
            model.train(resume=True)
        except AssertionError as exc:  # ultralytics: "... is finished, nothing to resume"
            if "nothing to resume" not in str(exc):
                raise
            progress("railwatch train: every epoch had run; packaging the model")
    else:
        model.train(**_train_arguments(settings, out, fine_tune))
    best = run_dir / "weights" / "best.pt"
    return best if best.is_file() else last


def _finished(checkpoint: Any) -> bool:
    """Whether an ultralytics checkpoint is one that training finished with: stripped of its
    optimizer and marked epoch -1 (``strip_optimizer`` at the end of a run)."""
    if not isinstance(checkpoint, dict):
        return False
    return int(checkpoint.get("epoch", -1)) < 0 or checkpoint.get("optimizer") is None


def _checked_base(settings: TrainSettings, trust_model: bool, progress: Callable[[str], None]
                  ) -> tuple[Path, bool]:
    """The weights a new run starts from, checked before anything is unpickled, and whether
    the run fine-tunes them (a pretrained base, a model folder or a ``.pt``)."""
    base = Path(settings.base)
    if settings.base in set(BaseName):  # a pretrained base, pinned by its sha256
        path = fetch_base(settings.base, log=progress)
        check_checkpoint(path, BASES[BaseName(settings.base)].sha256, trust_model)
        return path, True
    if (base / "manifest.json").is_file():  # fine-tune a railwatch model folder
        return ModelManifest.load(base).verified_path(ModelFile.WEIGHTS, trust=trust_model), True
    if base.suffix == ".pt":
        check_checkpoint(base, None, trust_model)
        return base, True
    return base, False  # an architecture (yaml): from scratch


def _epoch_reporter(progress: Callable[[str], None]) -> Callable[[Any], None]:
    """An ultralytics callback printing the epoch, the time so far and an ETA."""
    started = time.monotonic()

    def on_epoch_end(trainer: Any) -> None:
        done = trainer.epoch + 1
        if done > trainer.epochs:  # ultralytics' final validation of best.pt reports as one more epoch
            minutes = (time.monotonic() - started) / 60
            progress(f"railwatch train: the best weights validated, {minutes:.1f} min")
            return
        total = trainer.epochs
        elapsed = time.monotonic() - started
        eta = elapsed / max(done - trainer.start_epoch, 1) * (total - done)
        progress(f"railwatch train: epoch {done}/{total}, elapsed {elapsed / 60:.1f} min, "
                 f"ETA {eta / 60:.1f} min")

    return on_epoch_end


def _time_cap(hours: float, progress: Callable[[str], None]) -> Callable[[Any], None]:
    """An ultralytics callback ending the run after the epoch that passes ``hours``: a cap, not
    a target (ultralytics' own ``time`` stretches the epochs to fill the hours: 792 epochs of
    one chip in a 10-minute fine-tune)."""
    started = time.monotonic()

    def on_epoch_end(trainer: Any) -> None:
        if time.monotonic() - started > hours * 3600 and not trainer.stop:
            progress(f"railwatch train: the {hours * 60:.0f}-minute budget is spent after epoch "
                     f"{trainer.epoch + 1}; stopping")
            trainer.stop = True

    return on_epoch_end


def _train_arguments(settings: TrainSettings, out: Path, fine_tune: bool) -> dict[str, Any]:
    """ultralytics' ``train`` arguments for a new run."""
    data = combined_data_yaml([Path(d) for d in settings.datasets], out / "run-data.yaml")
    warmup = settings.warmup_epochs if settings.warmup_epochs is not None else (0.0 if fine_tune else 3.0)
    return {
        "data": str(data), "epochs": settings.epochs, "imgsz": settings.imgsz, "batch": settings.batch,
        "seed": settings.seed, "deterministic": True, "workers": settings.workers,
        "device": settings.device or _auto_device(), "project": str(out), "name": "run", "exist_ok": True,
        "patience": settings.patience, "close_mosaic": settings.close_mosaic,
        "cache": settings.cache or False, "warmup_epochs": warmup,
        "warmup_bias_lr": 0.0 if fine_tune and settings.warmup_epochs is None else 0.1,
        **_optimizer(settings, fine_tune), "plots": False, "amp": False, "verbose": False,
        "single_cls": settings.single_cls, "freeze": settings.freeze or None, **settings.augment,
    }


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
    accuracy = measure_on_val(best, settings.datasets, settings.imgsz, single_class=settings.single_cls)
    return package_model(best, settings, _threshold_of_few(accuracy, settings), extra_training=extra_training,
                         command=command)


def _threshold_of_few(accuracy: dict[str, Any], settings: TrainSettings) -> dict[str, Any]:
    """With fewer than ``FEW_CARS`` held-out cars, a threshold chosen on them is noise (measured:
    15 corrected cars left one held-out car, which chose 0.15 and cost 0.08 F1): a fine-tune
    keeps the threshold of the model it started from, and says so."""
    from railwatch.training.tune import FEW_CARS

    base = Path(settings.base)
    n_cars = int(accuracy.get("n_cars", FEW_CARS) or 0)
    if n_cars >= FEW_CARS or not (base / "manifest.json").is_file():
        return accuracy
    source = ModelManifest.load(base)
    spec = source.namer_spec()
    kept = spec.finder_conf if spec is not None and spec.finder_conf is not None else source.conf
    return {**accuracy, "conf": kept, "conf_chosen": (
        f"kept {kept} from {source.name}: only {n_cars} held-out cars of the analyst's labels, fewer than "
        f"{FEW_CARS}, too few to choose a threshold on (their own best would have been "
        f"{accuracy.get('conf')})")}


def default_freeze(base: str) -> int:
    """Layers a run keeps as they are unless told otherwise: a pretrained base's backbone, or what
    the ``--from`` finder kept frozen (its manifest's ``finder.frozen_layers``): features learned
    on real imagery are not handed to a few chips to overwrite."""
    if base in set(BaseName):
        return BASES[BaseName(base)].backbone_layers
    path = Path(base) / "manifest.json"
    if not path.is_file():
        return 0
    finder = json.loads(path.read_text(encoding="utf-8")).get("finder") or {}
    frozen = finder.get("frozen_layers", 0) if isinstance(finder, dict) else 0
    return int(frozen) if isinstance(frozen, int) else 0


#: AdamW learning rate for fine-tuning when ``TrainSettings.lr0`` is not given.
FINE_TUNE_LR = 1e-4


@dataclass(frozen=True, slots=True)
class Schedule:
    """Default epochs, learning rate (``None``: ultralytics' or :data:`FINE_TUNE_LR`) and hours."""

    epochs: int
    lr0: float | None
    hours: float | None
    #: Simulated chips mixed in (replay), so that a few real chips do not make the finder forget.
    replay: int = 0


def default_schedule(fine_tune: bool, analyst: bool) -> Schedule:
    """The defaults of a run. A fine-tune on an analyst's labels (a few dozen to a few hundred
    cars of a new kind of imagery) runs 100 epochs at AdamW 1e-3, capped at 10 minutes: measured
    on a real 0.25 m yard (DOMAIN.md), 30 epochs at 1e-4 made the finder worse (F1 0.54 → 0.50)
    while 100 epochs at 1e-3 lifted it to 0.77–0.87 in 3–4 CPU-minutes; the threshold is then
    chosen again on the analyst's held-out chips (:func:`~railwatch.training.tune.measure_on_val`).
    Other runs: 60 epochs, ultralytics' rate from scratch or :data:`FINE_TUNE_LR` when
    fine-tuning on renders (a high rate wrecks a trained model in a short run)."""
    if fine_tune and analyst:
        return Schedule(epochs=100, lr0=1e-3, hours=10 / 60, replay=32)
    return Schedule(epochs=60, lr0=None, hours=None)


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
    doc: dict[str, Any] = {
        "name": name,
        "classes": list(CLASSES),
        "gsd": settings.gsd,
        "chip": settings.imgsz,
        "finder": _finder_section(settings),
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
    _keep_namer(_namer_source(settings), out, doc)
    doc = _no_nan(doc)
    (out / "manifest.json").write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    return ModelManifest.load(out)


def _finder_section(settings: TrainSettings) -> dict[str, Any]:
    """What the finder tells apart, and the pretrained base it grew from (if any)."""
    section: dict[str, Any] = {"classes": ["rail_car"] if settings.single_cls else list(CLASSES)}
    if settings.base in set(BaseName):
        section["base"] = BASES[BaseName(settings.base)].provenance()
        section["frozen_layers"] = settings.freeze
    return section


def _namer_source(settings: TrainSettings) -> Path:
    """The model whose namer a new finder takes: the ``--from`` model folder; for a one-class
    finder grown from anything else (a pretrained base, an architecture), the shipped model's,
    since a one-class finder needs a namer to name what it finds."""
    base = Path(settings.base)
    if (base / "manifest.json").is_file() or not settings.single_cls:
        return base
    from railwatch.detect.manifest import default_model_dir

    return default_model_dir()


def _keep_namer(base: Path, out: Path, doc: dict[str, Any]) -> None:
    """A finder fine-tuned from a two-stage model keeps that model's namer: its files are copied
    and its manifest section kept, and the whole system's error matrix is kept marked as measured
    with the finder before the fine-tune (the namer did not change; the finder did)."""
    if not (base / "manifest.json").is_file():
        return
    source = ModelManifest.load(base)
    if ModelFile.NAMER_ONNX not in source.files:
        return
    for kind in (ModelFile.NAMER_ONNX, ModelFile.NAMER_WEIGHTS):
        if kind in source.files:
            path = source.verified_path(kind, trust=True)  # copied, not loaded: checked on load
            shutil.copyfile(path, out / path.name)
            entry = source.files[kind]
            doc["files"][kind.value] = {"path": entry.path, "sha256": entry.sha256}
    # The finder threshold the namer was tuned with belongs to the old finder: the new one's
    # threshold is the one chosen for it (accuracy.conf).
    doc["namer"] = {k: v for k, v in source.namer.items() if k != "finder_conf"}
    if str(doc["accuracy"].get("conf_chosen", "")).startswith("kept "):
        doc["namer"]["finder_conf"] = doc["accuracy"]["conf"]
    system = source.accuracy.system
    if system is not None:
        doc["accuracy"]["system"] = {
            **system,
            "measured_with": f"the finder of {source.name} before this fine-tune (the namer is the same; "
                             "re-measure with benchmarks/bench_error_matrix.py --write)",
        }


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN float made ``None`` (JSON ``null``): a class with no validation
    car has no precision, not a number that breaks a strict reader."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    if isinstance(value, float | np.floating) and value != value:
        return None
    return value


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
