"""One training run as ``railwatch train`` asks for it: which stage, on what data, from what,
and the recipe that a resumed run must honour. The CLI builds a :class:`TrainRequest` from its
options and calls :func:`run_training`; everything else lives here."""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from railwatch.detect.manifest import ModelManifest, default_model_dir
from railwatch.errors import RailwatchError
from railwatch.training.bases import BASES, BaseName, fetch_base
from railwatch.training.datasets import is_analyst_dataset
from railwatch.training.fit import SETTINGS_FILE, TrainSettings, default_freeze, default_schedule, train_model

__all__ = ["RECIPE_FILE", "DatasetError", "Stage", "TrainRequest", "one_class_reason", "run_training"]

#: The command and data recipe of a run, kept beside it so a resumed run's manifest names them.
RECIPE_FILE = "train_command.json"


class Stage(enum.StrEnum):
    """What a run trains."""

    FINDER = "finder"  # the oriented-box detector
    NAMER = "namer"  # the car classifier on canonical crops, added to the finder of --from
    BOTH = "both"  # the finder, then a namer on it


class DatasetError(RailwatchError, ValueError):
    """A ``--data`` folder is not a dataset (a usage error: exit 2)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """Everything ``railwatch train`` was asked for (its options, by name)."""

    out: Path
    stage: Stage = Stage.FINDER
    datasets: tuple[Path, ...] = ()
    n_simulated: int = 0
    base_model: Path | None = None  # --from: a model folder to fine-tune
    pretrained: str | None = None  # --base: weights learned on real imagery
    freeze: int | None = None
    scratch: bool = False
    namer_epochs: int = 4
    arch: str = "yolo11n-obb.yaml"
    epochs: int | None = None
    hours: float | None = None
    imgsz: int = 320
    gsd: float = 0.3
    batch: int = 16
    seed: int = 0
    lr0: float | None = None
    warmup_epochs: float | None = None
    workers: int = 2
    device: str | None = None
    resume: bool = False
    trust_model: bool = False
    command: str = "railwatch train"

    def __post_init__(self) -> None:
        if self.pretrained and self.base_model and self.stage is not Stage.NAMER:
            raise ValueError("give --base or --from, not both")
        if self.pretrained:
            wanted = "namer" if self.stage is Stage.NAMER else "finder"
            if BASES[BaseName(self.pretrained)].stage != wanted:
                raise ValueError(f"--base {self.pretrained} is a base for the "
                                 f"{BASES[BaseName(self.pretrained)].stage}, not for --stage {self.stage}")
        if self.n_simulated < 0 or self.imgsz < 32 or self.batch < 1 or self.workers < 0:
            raise ValueError("--simulate must be 0 or more, --chip at least 32, --batch at least 1")


def run_training(request: TrainRequest, log: Callable[[str], None]) -> Path:
    """Train what ``request`` asks for and return the model folder."""
    if request.stage is Stage.NAMER:
        return _namer(request, request.base_model, log)
    settings, recipe = _resumed(request) if request.resume else _started(request, log)
    manifest = train_model(
        settings, resume=request.resume, progress=log, command=str(recipe["command"]),
        extra_training={k: v for k, v in recipe.items() if k != "command"},
        trust_model=request.trust_model,
    )
    any_class = manifest.accuracy.any_class
    log(f"finder written to {manifest.folder} (conf {manifest.conf}, F1 "
        f"{None if any_class is None else any_class.f1} on {manifest.accuracy.evaluated_on})")
    if request.stage is Stage.BOTH:
        return _namer(request, request.out, log)
    return manifest.folder


def one_class_reason(request: TrainRequest, datasets: list[Path]) -> str | None:
    """Why the finder is trained as one class ("a rail car is here"), or ``None``: a pretrained
    base, a ``--from`` finder that is one class, or labels of cars whose kind nobody gave."""
    if request.pretrained:
        return f"base {request.pretrained}"
    base = request.base_model
    if (base is not None and (base / "manifest.json").is_file()
            and ModelManifest.load(base).finder_classes == 1):
        return f"the finder of {base} is one class"
    for d in datasets:
        doc = _dataset_doc(d)
        unknown = doc.get("unknown_kind")
        cars = unknown.get("cars", 0) if isinstance(unknown, dict) else 0
        if isinstance(cars, int) and cars > 0:
            return f"{d} has {cars} cars of unknown kind"
    return None


def _resumed(request: TrainRequest) -> tuple[TrainSettings, dict[str, object]]:
    out = request.out
    if not (out / SETTINGS_FILE).is_file():
        raise RailwatchError(f"{out}: no {SETTINGS_FILE}; this is not a training run to resume")
    recipe_file = out / RECIPE_FILE
    # The manifest records the command that started the run, not the resume.
    recipe: dict[str, object] = (json.loads(recipe_file.read_text()) if recipe_file.is_file()
                                 else {"command": request.command, "simulated_chips": request.n_simulated})
    recipe["resumed_with"] = request.command
    return TrainSettings.load(out), recipe


def _started(request: TrainRequest, log: Callable[[str], None]) -> tuple[TrainSettings, dict[str, object]]:
    out = request.out
    datasets = [d.resolve() for d in request.datasets]
    if request.n_simulated > 0:
        from railwatch.simulate.chips import export_yolo_obb

        sim = out / "data-sim"
        log(f"rendering {request.n_simulated} simulated chips into {sim} ...")
        export_yolo_obb(sim, request.n_simulated, gsd=request.gsd, chip=request.imgsz, seed=request.seed,
                        workers=max(1, (os.cpu_count() or 1)))
        datasets.append(sim.resolve())
    if not datasets:
        raise DatasetError("give --data and/or --simulate N")
    for d in datasets:
        gsd = _dataset_gsd(d)
        if gsd is not None and abs(gsd - request.gsd) > 1e-6:
            raise RailwatchError(f"{d}: chips are at {gsd} m but --gsd is {request.gsd} m")
    schedule = default_schedule(fine_tune=request.base_model is not None,
                                analyst=any(is_analyst_dataset(d) for d in datasets))
    if schedule.replay and request.n_simulated == 0:  # a few real chips, and renders not to forget
        from railwatch.simulate.chips import export_yolo_obb

        replay = out / "data-replay"
        log(f"rendering {schedule.replay} simulated chips to replay beside the analyst's ({replay}) ...")
        export_yolo_obb(replay, schedule.replay, gsd=request.gsd, chip=request.imgsz, seed=request.seed + 7,
                        workers=max(1, (os.cpu_count() or 1)))
        datasets.append(replay.resolve())
    why = one_class_reason(request, datasets)
    if why is not None:
        log(f"training a one-class finder ({why}); the namer names each car's kind")
    base = request.pretrained or (str(request.base_model.resolve()) if request.base_model else request.arch)
    frozen = request.freeze if request.freeze is not None else default_freeze(base)
    settings = TrainSettings(
        datasets=tuple(str(d) for d in datasets), out=str(out.resolve()), base=base,
        epochs=request.epochs or schedule.epochs, imgsz=request.imgsz, gsd=request.gsd,
        batch=request.batch, seed=request.seed, workers=request.workers, device=request.device,
        hours=request.hours if request.hours is not None else schedule.hours,
        lr0=request.lr0 if request.lr0 is not None else schedule.lr0,
        warmup_epochs=request.warmup_epochs, single_cls=why is not None, freeze=frozen,
    )
    recipe: dict[str, object] = {"command": request.command, "simulated_chips": request.n_simulated}
    out.mkdir(parents=True, exist_ok=True)
    (out / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
    return settings, recipe


def _namer(request: TrainRequest, base_model: Path | None, log: Callable[[str], None]) -> Path:
    from railwatch.training.namer import NamerSettings
    from railwatch.training.namer_stage import NamerRecipe, train_namer_stage

    if request.n_simulated <= 0 and not request.datasets:
        raise DatasetError("give --data and/or --simulate N for the namer")
    namer_base = request.pretrained if request.stage is Stage.NAMER else None  # --stage both: the finder's
    imagenet = fetch_base(namer_base, log=log) if namer_base else None
    recipe = NamerRecipe(
        base=str(base_model or default_model_dir()), out=str(request.out),
        simulated_chips=request.n_simulated, datasets=tuple(str(d) for d in request.datasets),
        seed=request.seed, scratch=request.scratch or imagenet is not None,
        imagenet=None if imagenet is None else str(imagenet),
    )
    settings = NamerSettings(epochs=request.namer_epochs, seed=request.seed, device=request.device or "cpu",
                             hours=request.hours, arch="small" if imagenet is None else "mobilenet_v2",
                             lr=2e-3 if imagenet is None else 1e-3)
    return train_namer_stage(recipe, settings, command=request.command, trust_model=request.trust_model,
                             workers=max(1, os.cpu_count() or 1), log=log)


def _dataset_doc(folder: Path) -> dict[str, object]:
    """A dataset's ``data.yaml`` (a folder, or the yaml itself) as a mapping; a usage error if
    it is not a dataset."""
    yml = folder / "data.yaml" if folder.is_dir() else folder
    hint = "make a dataset with `railwatch dataset simulate` or `railwatch dataset from-labels`"
    if not yml.is_file():
        raise DatasetError(f"{folder}: no data.yaml; {hint}")
    try:
        doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError(f"{yml}: not a readable dataset yaml ({exc}); {hint}") from exc
    if not isinstance(doc, dict):
        raise DatasetError(f"{yml}: not a dataset yaml (a mapping with train, val, names and a "
                           f"numeric gsd); {hint}")
    return doc


def _dataset_gsd(folder: Path) -> float | None:
    """The ``gsd`` of a dataset's ``data.yaml``, if it gives one."""
    doc = _dataset_doc(folder)
    gsd = doc.get("gsd")
    if gsd is not None and not isinstance(gsd, int | float):
        raise DatasetError(f"{folder}: not a dataset yaml (a mapping with train, val, names and a "
                           "numeric gsd); make a dataset with `railwatch dataset simulate` or "
                           "`railwatch dataset from-labels`")
    return None if gsd is None else float(gsd)
