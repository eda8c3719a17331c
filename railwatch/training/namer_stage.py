"""The namer stage of ``railwatch train``: crops from datasets and simulated chips, training or
fine-tuning, held-out accuracy with the hard cases, and a two-stage model folder."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from railwatch.classes import CLASS_NAMES
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.errors import RailwatchError

if TYPE_CHECKING:
    import torch

from railwatch.training.namer import (
    NAMER_LABELS,
    NamerSettings,
    NamerTraining,
    confusion,
    export_onnx,
    load_state,
    predict_torch,
    save_state,
    train_namer,
)

__all__ = ["NamerRecipe", "crops_from_yolo_dataset", "namer_accuracy", "package_namer", "train_namer_stage"]


def crops_from_yolo_dataset(
    folder: Path, spec: CropSpec, gsd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical crops of every labelled car of a YOLO-OBB dataset (``railwatch dataset ...``).

    Chips are ``images/{train,val}/*.png`` with ``labels/.../*.txt`` lines ``class x1 y1 … y4``
    (normalised), at ``gsd`` metres per pixel. Cars whose class is unknown (``-1`` or a class
    beyond railwatch's) are left out: they teach the finder, not the namer.
    """
    import cv2

    folder = Path(folder)
    images: list[np.ndarray] = []
    labels: list[int] = []
    sizes: list[np.ndarray] = []
    for png in sorted(folder.glob("images/*/*.png")):
        txt = folder / "labels" / png.parent.name / f"{png.stem}.txt"
        if not txt.is_file():
            continue
        rows = [line.split() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [r for r in rows if len(r) == 9 and 0 <= int(float(r[0])) < len(CLASS_NAMES)]
        if not rows:
            continue
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RailwatchError(f"{png}: not a readable image; re-export the dataset")
        h, w = bgr.shape[:2]
        corners = np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 4, 2) * np.array([w, h])
        chip = np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))
        images.append(canonical_crops(chip, corners, gsd, spec))
        _, _, length, width = box_axes(corners)
        sizes.append(np.column_stack([length * gsd, width * gsd]).astype(np.float32))
        labels.extend(int(float(r[0])) for r in rows)
    if not images:
        rows_, cols_ = spec.shape
        return np.zeros((0, 3, rows_, cols_), np.uint8), np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    return np.concatenate(images), np.asarray(labels, dtype=np.int64), np.concatenate(sizes)


#: File names of the namer inside a model folder.
NAMER_ONNX = "namer.onnx"
NAMER_PT = "namer.pt"


def namer_accuracy(net: torch.nn.Module, images: np.ndarray, labels: np.ndarray, size_m: np.ndarray,
                   tags: np.ndarray | None = None, tag_names: Sequence[str] = ()) -> dict[str, object]:
    """The namer's accuracy on held-out crops: overall, per true label, the confusion matrix
    (rows predicted, columns true, :data:`NAMER_LABELS` order) and, where crops are tagged, each
    hard case on its own."""
    probs = predict_torch(net, images, size_m)
    pred = probs.argmax(axis=1)
    matrix = confusion(labels, pred)
    per_label = {
        name: {"n": int((labels == k).sum()),
               "accuracy": round(float((pred[labels == k] == k).mean()), 4) if (labels == k).any() else None}
        for k, name in enumerate(NAMER_LABELS)
    }
    out: dict[str, object] = {
        "crops": len(labels), "accuracy": round(float((pred == labels).mean()), 4),
        "per_label": per_label, "labels": list(NAMER_LABELS), "confusion_pred_by_true": matrix.tolist(),
    }
    if tags is not None:
        out["hard_cases"] = {
            name: {"n": int((tags == t).sum()),
                   "accuracy": round(float((pred[tags == t] == labels[tags == t]).mean()), 4),
                   "called_covered": int((pred[tags == t] == 0).sum())}
            for t, name in enumerate(tag_names) if t > 0 and (tags == t).any()
        }
    return out


def package_namer(
    finder: Path,
    out: Path,
    net: torch.nn.Module,
    record: NamerTraining,
    accuracy: dict[str, object],
    *,
    command: str,
    veto: float = 0.5,
    trust_model: bool = False,
) -> Path:
    """A two-stage model folder ``out``: the finder of model folder ``finder`` (its files copied
    after their sha256 is checked) and this namer (ONNX, weights), with the manifest updated.
    Returns the folder."""
    import shutil

    from railwatch.detect.manifest import (
        NAMER_FILE,
        NAMER_WEIGHTS,
        ModelFile,
        ModelManifest,
        sha256_file,
    )

    source = ModelManifest.load(finder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = json.loads((Path(finder) / "manifest.json").read_text(encoding="utf-8"))
    for kind in (ModelFile.WEIGHTS, ModelFile.ONNX):
        if kind in source.files:
            src = source.verified_path(kind, trust=trust_model)
            if src.resolve() != (out / src.name).resolve():
                shutil.copyfile(src, out / src.name)
    save_state(net, out / NAMER_PT, record.spec, record.settings.widths, record.settings.arch)
    export_onnx(net, record.spec, out / NAMER_ONNX)
    doc["files"][NAMER_FILE] = {"path": NAMER_ONNX, "sha256": sha256_file(out / NAMER_ONNX)}
    doc["files"][NAMER_WEIGHTS] = {"path": NAMER_PT, "sha256": sha256_file(out / NAMER_PT)}
    doc["namer"] = {
        "labels": list(NAMER_LABELS),
        "crop": {"gsd": record.spec.gsd, "length_m": record.spec.length_m, "width_m": record.spec.width_m},
        "veto": veto,
        "training": {"command": command, **record.as_json()},
        "accuracy": accuracy,
    }
    (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    ModelManifest.load(out).namer_spec()  # what was written must load
    return out


@dataclass(frozen=True, slots=True)
class NamerRecipe:
    """Where a namer's training crops come from and where the model goes (``railwatch train
    --stage namer``): the finder's model folder (``base``; its namer is fine-tuned unless
    ``scratch``), simulated chips to cut crops from, and analysts' YOLO-OBB datasets."""

    base: str
    out: str
    simulated_chips: int = 0
    datasets: tuple[str, ...] = ()
    seed: int = 0
    scratch: bool = False
    crop: CropSpec = field(default_factory=CropSpec)
    #: ImageNet MobileNetV2 weights to grow a ``mobilenet_v2`` namer from (base ``imagenet-mobilenet-v2``).
    imagenet: str | None = None

    def __post_init__(self) -> None:
        if self.simulated_chips < 0:
            raise ValueError("simulated_chips cannot be negative")
        if self.simulated_chips == 0 and not self.datasets:
            raise ValueError("give simulated chips and/or labelled datasets to train the namer on")


#: Learning rate when fine-tuning an existing namer (a tenth of training from scratch).
NAMER_FINE_TUNE_LR = 3e-4


def train_namer_stage(
    recipe: NamerRecipe,
    settings: NamerSettings,
    *,
    command: str,
    trust_model: bool = False,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> Path:
    """All of ``railwatch train --stage namer``: crops, training (or fine-tuning), held-out
    accuracy with the hard cases, and a two-stage model folder ``recipe.out``."""
    from dataclasses import replace

    from railwatch.detect.manifest import NAMER_WEIGHTS, ModelManifest
    from railwatch.simulate.crops import HARD_CASES, make_crop_set

    base = ModelManifest.load(recipe.base)
    gsd = base.gsd
    parts_train: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    parts_val: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    val_tags: list[np.ndarray] = []
    if recipe.simulated_chips:
        n_val = max(1, recipe.simulated_chips // 8)
        log(f"cutting crops from {recipe.simulated_chips} + {n_val} simulated chips ...")
        train = make_crop_set(recipe.seed, recipe.simulated_chips, recipe.crop, gsd=gsd, workers=workers)
        val = make_crop_set(recipe.seed + 10_000, n_val, recipe.crop, gsd=gsd, workers=workers)
        parts_train.append((train.images, train.labels, train.size_m))
        parts_val.append((val.images, val.labels, val.size_m))
        val_tags.append(val.tag)
    for d in recipe.datasets:
        images, labels, sizes = crops_from_yolo_dataset(Path(d), recipe.crop, gsd)
        if not len(images):
            raise RailwatchError(f"{d}: no labelled cars of a known class to train the namer on")
        held = np.random.default_rng(recipe.seed).random(len(images)) < 0.15
        parts_train.append((images[~held], labels[~held], sizes[~held]))
        parts_val.append((images[held], labels[held], sizes[held]))
        val_tags.append(np.zeros(int(held.sum()), dtype=np.int64))
        log(f"{d}: {len(images)} labelled cars ({int(held.sum())} held out)")

    def joined(
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    train_set, val_set = joined(parts_train), joined(parts_val)
    net = None
    base_name = None
    if not recipe.scratch and NAMER_WEIGHTS in base.files:
        net = load_state(base.verified_path(NAMER_WEIGHTS, trust=trust_model))
        base_name = f"{base.name} namer ({base.files[NAMER_WEIGHTS].sha256[:12]}…)"
        settings = replace(settings, lr=min(settings.lr, NAMER_FINE_TUNE_LR))
        log(f"fine-tuning the namer of {recipe.base} at lr {settings.lr}")
    if recipe.imagenet is not None:
        base_name = f"ImageNet MobileNetV2 ({Path(recipe.imagenet).name})"
    net, record = train_namer(train_set, val_set, recipe.crop, settings, base=net, base_name=base_name,
                              imagenet=None if recipe.imagenet is None else Path(recipe.imagenet), log=log)
    accuracy = namer_accuracy(net, val_set[0], val_set[1], val_set[2], np.concatenate(val_tags), HARD_CASES)
    accuracy["measured_on"] = (
        f"{len(val_set[1])} held-out crops"
        + (f" of {max(1, recipe.simulated_chips // 8)} simulated chips (seed {recipe.seed + 10_000})"
           if recipe.simulated_chips else "")
        + (f" and 15 % of the cars of {len(recipe.datasets)} labelled dataset(s)" if recipe.datasets else "")
    )
    return package_namer(Path(recipe.base), Path(recipe.out), net, record, accuracy,
                         command=command, trust_model=trust_model)
