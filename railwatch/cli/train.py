"""``railwatch train``: fit a detector on simulated chips, an analyst's labelled chips, or both."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import yaml

from railwatch.errors import RailwatchError

#: The command and data recipe of a run, kept beside it so a resumed run's manifest names them.
RECIPE_FILE = "train_command.json"


@click.command("train")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="New model folder (weights, ONNX, manifest.json).")
@click.option("--data", "datasets", multiple=True, type=click.Path(path_type=Path),
              help="Dataset folder with data.yaml (from `railwatch dataset ...`); repeatable.")
@click.option("--simulate", "n_simulated", type=int, default=0, show_default=True,
              help="Also render this many simulated chips into OUT/data-sim and train on them.")
@click.option("--from", "base_model", type=click.Path(path_type=Path), default=None,
              help="Fine-tune this model folder instead of starting from scratch.")
@click.option("--arch", default="yolo11n-obb.yaml", show_default=True,
              help="Architecture when starting from scratch (an ultralytics model yaml).")
@click.option("--epochs", type=int, default=60, show_default=True)
@click.option("--hours", type=float, default=None,
              help="Stop after this many hours; the epochs and learning-rate schedule fit in it.")
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
def train(
    out: Path,
    datasets: tuple[Path, ...],
    n_simulated: int,
    base_model: Path | None,
    arch: str,
    epochs: int,
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
) -> None:
    """Train an oriented-box detector and write a model folder with its manifest.

    Progress and an ETA are printed each epoch. A run killed at any point continues with
    `railwatch train --out OUT --resume`.
    """
    from railwatch.training.fit import SETTINGS_FILE, TrainSettings, train_model

    if background:
        out.mkdir(parents=True, exist_ok=True)
        args = [a for a in sys.argv[1:] if a != "--background"]
        log = (out / "train.log").open("ab")
        proc = subprocess.Popen(  # our own CLI, same interpreter
            [sys.executable, "-m", "railwatch.cli", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        click.echo(f"training in the background (pid {proc.pid}); follow: tail -f {out / 'train.log'}")
        click.echo(f"if it stops, continue with: railwatch train --out {out} --resume")
        return

    command = shlex.join(["railwatch", *sys.argv[1:]])
    recipe_file = out / RECIPE_FILE
    if resume:
        if not (out / SETTINGS_FILE).is_file():
            raise RailwatchError(f"{out}: no {SETTINGS_FILE}; this is not a training run to resume")
        # The manifest records the command that started the run, not the resume.
        recipe = (json.loads(recipe_file.read_text()) if recipe_file.is_file()
                  else {"command": command, "simulated_chips": n_simulated})
        recipe["resumed_with"] = command
        saved = json.loads((out / SETTINGS_FILE).read_text())
        known = {f.name for f in fields(TrainSettings)}
        settings = TrainSettings(
            **{k: tuple(v) if k == "datasets" else v for k, v in saved.items() if k in known}
        )
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
            doc = yaml.safe_load((Path(d) / "data.yaml").read_text()) if Path(d).is_dir() else {}
            if "gsd" in doc and abs(float(doc["gsd"]) - gsd) > 1e-6:
                raise RailwatchError(f"{d}: chips are at {doc['gsd']} m but --gsd is {gsd} m")
        settings = TrainSettings(
            datasets=tuple(all_data), out=str(out.resolve()),
            base=str(base_model.resolve()) if base_model else arch,
            epochs=epochs, imgsz=imgsz, gsd=gsd, batch=batch, seed=seed, workers=workers, device=device,
            hours=hours, lr0=lr0, warmup_epochs=warmup_epochs,
        )
        recipe = {"command": command, "simulated_chips": n_simulated}
        out.mkdir(parents=True, exist_ok=True)
        recipe_file.write_text(json.dumps(recipe, indent=2) + "\n")
    manifest = train_model(
        settings, resume=resume, progress=lambda m: click.echo(m, err=True),
        command=str(recipe["command"]),
        extra_training={k: v for k, v in recipe.items() if k != "command"},
    )
    accuracy = manifest.accuracy
    any_class = accuracy.get("any_class", {})
    click.echo(
        f"model written to {manifest.folder} (conf {accuracy.get('conf')}, val F1 {any_class.get('f1')}); "
        f"use it with --model {manifest.folder}"
    )
