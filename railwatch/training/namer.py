"""The namer: a small CNN that names the kind of one car from its canonical crop and its size.

Stage 2 of recognition (docs/design.md): the finder says "a rail car is here"; the namer looks at
that one car, cut along its own axis (:func:`~railwatch.detect.crops.canonical_crops`), and
says which of the five kinds it is — or that it is not a car at all (a shadow band, a gap, the
ballast beside a string). Its inputs are the crop and the box's length and width in metres: a
13.9 m open car and a 19.2 m covered car differ in length before they differ in texture.

Trained here with torch (CPU or GPU), shipped as ONNX (the pipeline's runtime) and as a plain
``state_dict`` (``.pt`` loaded with ``weights_only=True``: no pickle code runs) for fine-tuning.
The exported graph averages the softmax over the car's four symmetric views (as given, turned
180°, mirrored across and along its axis): the direction a car faces and the side its shadow
falls on are not its kind.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from railwatch.classes import CLASS_NAMES
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.errors import RailwatchError

if TYPE_CHECKING:
    import torch

__all__ = [
    "NAMER_LABELS",
    "NamerRecipe",
    "NamerSettings",
    "NamerTraining",
    "build_net",
    "confusion",
    "crops_from_yolo_dataset",
    "export_onnx",
    "load_state",
    "namer_accuracy",
    "package_namer",
    "predict_torch",
    "save_state",
    "train_namer",
    "train_namer_stage",
]

#: What the namer can say: the car classes, then "not a car".
NAMER_LABELS: tuple[str, ...] = (*CLASS_NAMES, "not_a_car")


@dataclass(frozen=True, slots=True)
class NamerSettings:
    """How to train the namer."""

    epochs: int = 8
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    seed: int = 0
    device: str = "cpu"
    hours: float | None = None
    widths: tuple[int, int, int, int] = (24, 32, 64, 96)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 2 or self.lr <= 0:
            raise ValueError("epochs >= 1, batch >= 2 and lr > 0 are required")


@dataclass(frozen=True, slots=True)
class NamerTraining:
    """What a training run did: per epoch loss and held-out accuracy, and the time it took."""

    settings: NamerSettings
    spec: CropSpec
    train_crops: int
    val_crops: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    base: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "settings": asdict(self.settings), "crop": asdict(self.spec), "train_crops": self.train_crops,
            "val_crops": self.val_crops, "history": self.history, "seconds": round(self.seconds, 1),
            "base": self.base,
        }


def build_net(widths: tuple[int, int, int, int] = (24, 32, 64, 96)) -> torch.nn.Module:
    """The namer network: crops ``(n, 3, rows, cols)`` float 0–255 and sizes ``(n, 2)`` metres →
    logits ``(n, len(NAMER_LABELS))``.

    A 5×5 stride-2 stem, two blocks of two 3×3 convolutions with max-pooling, one more
    convolution, then mean and max pooling beside a small embedding of the box size. Sized for
    CPU training (~10 ms per crop forward and backward on 2 busy cores).
    """
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    w1, w2, w3, w4 = widths

    class NamerNet(nn.Module):
        size_mean: torch.Tensor
        size_scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, w1, 5, stride=2, padding=2, bias=False),
                nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
                block(w1, w2), nn.MaxPool2d(2), block(w2, w3), nn.MaxPool2d(2),
                nn.Conv2d(w3, w4, 3, padding=1, bias=False), nn.BatchNorm2d(w4), nn.ReLU(inplace=True),
            )
            self.size = nn.Sequential(nn.Linear(2, 16), nn.ReLU(inplace=True))
            self.register_buffer("size_mean", torch.tensor([16.0, 3.1]), persistent=False)
            self.register_buffer("size_scale", torch.tensor([4.0, 0.4]), persistent=False)
            self.head = nn.Sequential(
                nn.Linear(2 * w4 + 16, 128), nn.ReLU(inplace=True), nn.Dropout(0.2),
                nn.Linear(128, len(NAMER_LABELS)),
            )

        def forward(self, image: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
            x = self.features(image / 127.5 - 1.0)
            pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
            size = (size_m - self.size_mean) / self.size_scale
            out: torch.Tensor = self.head(torch.cat([pooled, self.size(size)], dim=1))
            return out

    return NamerNet()


def _symmetric_probs(net: torch.nn.Module, image: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
    """Softmax averaged over the four symmetric views of each crop."""
    import torch

    views = (image, image.flip(2, 3), image.flip(2), image.flip(3))
    return torch.stack([torch.softmax(net(v, size_m), dim=1) for v in views]).mean(dim=0)


def _augment(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random views and photometric jitter of a batch (0–255 floats): what sensors, haze and
    compression do to a car, not what it is."""
    import torch

    n = image.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)

    turn = torch.rand(n, generator=gen) < 0.5
    image = torch.where(turn[:, None, None, None], image.flip(2, 3), image)
    mirror = torch.rand(n, generator=gen) < 0.5
    image = torch.where(mirror[:, None, None, None], image.flip(2), image)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    image = (image - mean) * u(0.7, 1.3, 1, 1, 1) + mean * u(0.7, 1.3, 1, 1, 1)
    image = image * u(0.9, 1.1, 3, 1, 1)
    gamma = u(0.75, 1.33, 1, 1, 1)
    image = 255.0 * (image.clamp(0, 255) / 255.0) ** gamma
    blur = torch.rand(n, generator=gen) < 0.25
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :] / 16.0).expand(3, 1, 3, 3)
        soft = torch.nn.functional.conv2d(image[blur], kernel, padding=1, groups=3)
        image = image.clone()
        image[blur] = soft
    image = image + torch.randn(image.shape, generator=gen) * u(0.0, 8.0, 1, 1, 1)
    shift = int(torch.randint(-2, 3, (1,), generator=gen))
    image = torch.roll(image, shifts=shift, dims=3)
    return image.clamp(0, 255)


def _size_jitter(size_m: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    import torch

    return size_m * (1.0 + 0.04 * torch.randn(size_m.shape, generator=gen))


def predict_torch(
    net: torch.nn.Module, images: np.ndarray, size_m: np.ndarray, batch: int = 512
) -> np.ndarray:
    """Probabilities ``(n, len(NAMER_LABELS))`` of crops ``(n, 3, rows, cols)`` uint8 (symmetric views)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch].astype(np.float32))
            s = torch.from_numpy(size_m[i : i + batch].astype(np.float32))
            out.append(_symmetric_probs(net, x, s).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(NAMER_LABELS)), np.float32)


def confusion(truth: np.ndarray, predicted: np.ndarray, n: int = len(NAMER_LABELS)) -> np.ndarray:
    """Counts ``(n, n)``: rows the predicted label, columns the true label."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (predicted, truth), 1)
    return m


def train_namer(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    spec: CropSpec,
    settings: NamerSettings,
    *,
    base: torch.nn.Module | None = None,
    base_name: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[torch.nn.Module, NamerTraining]:
    """Train (or fine-tune ``base``) on ``train`` = (crops uint8, labels, sizes m); measure on ``val``.

    Labels index :data:`NAMER_LABELS`. Classes are weighted by the inverse square root of their
    frequency, so locomotives and flat cars are not drowned by covered cars. Stops early after
    ``settings.hours``.
    """
    import torch

    images, labels, sizes = train
    if len(images) == 0:
        raise RailwatchError("no training crops: nothing to train the namer on")
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    net = base if base is not None else build_net(settings.widths)
    net.to(settings.device)
    counts = np.bincount(labels, minlength=len(NAMER_LABELS)).astype(np.float64)
    weight = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    weight = weight / (weight * counts).sum() * counts.sum()
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(weight, dtype=torch.float32, device=settings.device),
        label_smoothing=settings.label_smoothing,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(images) / settings.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=steps, pct_start=0.15)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    s_all = torch.from_numpy(sizes.astype(np.float32))
    for epoch in range(settings.epochs):
        net.train()
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for i in range(0, len(order), settings.batch):
            idx = order[i : i + settings.batch]
            if len(idx) < 2:
                continue
            x = _augment(x_all[idx].float(), gen).to(settings.device)
            s = _size_jitter(s_all[idx], gen).to(settings.device)
            y = y_all[idx].to(settings.device)
            loss = loss_fn(net(x, s), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        net.cpu()
        probs = predict_torch(net, *val[::2]) if len(val[0]) else np.zeros((0, len(NAMER_LABELS)))
        acc = float((probs.argmax(1) == val[1]).mean()) if len(val[0]) else math.nan
        net.to(settings.device)
        row = {"epoch": epoch + 1, "loss": total / len(images), "val_accuracy": acc,
               "minutes": (time.perf_counter() - t0) / 60}
        history.append(row)
        log(f"namer epoch {epoch + 1}/{settings.epochs}: loss {row['loss']:.4f}, "
            f"held-out accuracy {acc:.4f}, {row['minutes']:.1f} min")
        if settings.hours is not None and time.perf_counter() - t0 > settings.hours * 3600:
            log("namer: time budget reached, stopping")
            break
    net.cpu().eval()
    return net, NamerTraining(settings, spec, len(images), len(val[0]), history, time.perf_counter() - t0,
                              base_name)


def export_onnx(net: torch.nn.Module, spec: CropSpec, path: Path) -> Path:
    """Write the namer as ONNX: inputs ``image`` ``(n, 3, rows, cols)`` float 0–255 and ``size_m``
    ``(n, 2)``; output ``probs`` ``(n, len(NAMER_LABELS))`` averaged over the symmetric views."""
    import torch

    class Symmetric(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, image: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
            return _symmetric_probs(self.inner, image, size_m)

    rows, cols = spec.shape
    wrapped = Symmetric(net).eval()
    example = (torch.zeros(2, 3, rows, cols), torch.full((2, 2), 15.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapped, example, str(path), input_names=["image", "size_m"], output_names=["probs"],
        dynamic_axes={"image": {0: "n"}, "size_m": {0: "n"}, "probs": {0: "n"}}, opset_version=17,
        dynamo=False,
    )
    return path


def save_state(net: torch.nn.Module, path: Path, spec: CropSpec, widths: tuple[int, ...]) -> Path:
    """The weights as a plain tensor ``state_dict`` (loadable with ``weights_only=True``)."""
    import torch

    torch.save({"state_dict": net.state_dict(), "widths": list(widths),
                "crop": [spec.gsd, spec.length_m, spec.width_m], "labels": list(NAMER_LABELS)}, path)
    return path


def load_state(path: Path) -> torch.nn.Module:
    """A namer saved by :func:`save_state`; only tensors and plain lists are unpickled."""
    import torch

    doc = torch.load(path, map_location="cpu", weights_only=True)
    net = build_net(tuple(int(w) for w in doc["widths"]))  # type: ignore[arg-type]
    net.load_state_dict(doc["state_dict"])
    return net.eval()


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
    save_state(net, out / NAMER_PT, record.spec, record.settings.widths)
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
    net, record = train_namer(train_set, val_set, recipe.crop, settings, base=net, base_name=base_name,
                              log=log)
    accuracy = namer_accuracy(net, val_set[0], val_set[1], val_set[2], np.concatenate(val_tags), HARD_CASES)
    accuracy["measured_on"] = (
        f"{len(val_set[1])} held-out crops"
        + (f" of {max(1, recipe.simulated_chips // 8)} simulated chips (seed {recipe.seed + 10_000})"
           if recipe.simulated_chips else "")
        + (f" and 15 % of the cars of {len(recipe.datasets)} labelled dataset(s)" if recipe.datasets else "")
    )
    return package_namer(Path(recipe.base), Path(recipe.out), net, record, accuracy,
                         command=command, trust_model=trust_model)
