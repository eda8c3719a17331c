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

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from railwatch.classes import CLASS_NAMES
from railwatch.detect.crops import CropSpec
from railwatch.errors import RailwatchError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARCHS",
    "NAMER_LABELS",
    "NamerSettings",
    "NamerTraining",
    "build_mobilenet",
    "build_net",
    "confusion",
    "export_onnx",
    "load_state",
    "predict_torch",
    "save_state",
    "train_namer",
]

#: What the namer can say: the car classes, then "not a car".
NAMER_LABELS: tuple[str, ...] = (*CLASS_NAMES, "not_a_car")

#: The namer's networks: ``small``, a 155 k-parameter CNN trained from scratch (:func:`build_net`);
#: ``mobilenet_v2``, torchvision's MobileNetV2 cut after its stride-16 stage, grown from ImageNet
#: weights (:func:`build_mobilenet`).
ARCHS: tuple[str, ...] = ("small", "mobilenet_v2")

#: torchvision's ImageNet MobileNetV2 weights, the file ``mobilenet_v2-b0353104.pth`` (pinned and
#: fetched as the base ``imagenet-mobilenet-v2``, :mod:`railwatch.training.bases`).
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
#: MobileNetV2 blocks kept (``features[:14]``: stride 16, 96 channels) and those kept frozen as
#: ImageNet left them (``features[:7]``, stride 8, BatchNorm statistics too).
MOBILENET_KEEP, MOBILENET_FROZEN = 14, 7


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
    arch: str = "small"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 2 or self.lr <= 0:
            raise ValueError("epochs >= 1, batch >= 2 and lr > 0 are required")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")


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
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    w1, w2, w3, w4 = widths

    class NamerNet(nn.Module):
        size: nn.Sequential
        head: nn.Sequential
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
            _add_size_and_head(self, w4)

        def forward(self, image: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
            return _named(self, self.features(image / 127.5 - 1.0), size_m)

    return NamerNet()


def _add_size_and_head(net: torch.nn.Module, width: int) -> None:
    """The parts every namer shares: the box-size embedding (its normalisation as buffers) and
    the head over mean- and max-pooled features of ``width`` channels beside it."""
    import torch
    from torch import nn

    net.size = nn.Sequential(nn.Linear(2, 16), nn.ReLU(inplace=True))
    net.register_buffer("size_mean", torch.tensor([16.0, 3.1]), persistent=False)
    net.register_buffer("size_scale", torch.tensor([4.0, 0.4]), persistent=False)
    net.head = nn.Sequential(
        nn.Linear(2 * width + 16, 128), nn.ReLU(inplace=True), nn.Dropout(0.2),
        nn.Linear(128, len(NAMER_LABELS)),
    )


def _named(net: Any, features: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
    """Logits from a namer's feature map and box sizes: mean and max pooling beside the size
    embedding, through the head (:func:`_add_size_and_head`)."""
    import torch

    pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
    size = (size_m - net.size_mean) / net.size_scale
    out: torch.Tensor = net.head(torch.cat([pooled, net.size(size)], dim=1))
    return out


def build_mobilenet(imagenet: Path | None = None) -> torch.nn.Module:
    """The namer on an ImageNet backbone: MobileNetV2's first 14 blocks (stride 16, 96 channels)
    over the crop upsampled 1.5× (60 × 150 px: a 3 m car 15 px wide; ImageNet's objects are
    large; 2× measured 3× slower per crop on this CPU), mean and max pooling beside the box-size
    embedding, the same head as :func:`build_net`.

    ``imagenet``: torchvision's ``mobilenet_v2-b0353104.pth``, checked against
    :data:`MOBILENET_V2_SHA256` and loaded as weights only; ``None`` leaves the backbone random
    (a saved namer's own weights are loaded over it by :func:`load_state`).
    """
    import torch
    from torch import nn
    from torchvision.models import mobilenet_v2

    backbone = mobilenet_v2(weights=None)
    if imagenet is not None:
        from railwatch.detect.manifest import sha256_file

        found = sha256_file(Path(imagenet))
        if found != MOBILENET_V2_SHA256:
            raise RailwatchError(
                f"{imagenet}: sha256 {found[:12]}… is not torchvision's MobileNetV2 ImageNet file "
                f"({MOBILENET_V2_SHA256[:12]}…); railwatch.training.bases.fetch_base("
                "'imagenet-mobilenet-v2') fetches the pinned file")
        backbone.load_state_dict(torch.load(imagenet, map_location="cpu", weights_only=True))
    features = backbone.features[:MOBILENET_KEEP]
    width = 96

    class MobileNamer(nn.Module):
        rgb_mean: torch.Tensor
        rgb_std: torch.Tensor
        size: nn.Sequential
        head: nn.Sequential
        size_mean: torch.Tensor
        size_scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.features = features
            self.register_buffer("rgb_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0,
                                 persistent=False)
            self.register_buffer("rgb_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0,
                                 persistent=False)
            _add_size_and_head(self, width)

        def train(self, mode: bool = True) -> MobileNamer:
            super().train(mode)
            self.features[:MOBILENET_FROZEN].eval()  # ImageNet's BatchNorm statistics stay
            return self

        def forward(self, image: torch.Tensor, size_m: torch.Tensor) -> torch.Tensor:
            x = nn.functional.interpolate(image, scale_factor=1.5, mode="bilinear", align_corners=False)
            return _named(self, self.features((x - self.rgb_mean) / self.rgb_std), size_m)

    net = MobileNamer()
    for p in net.features[:MOBILENET_FROZEN].parameters():
        p.requires_grad_(False)
    return net


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
    imagenet: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[torch.nn.Module, NamerTraining]:
    """Train (or fine-tune ``base``) on ``train`` = (crops uint8, labels, sizes m); measure on ``val``.

    Labels index :data:`NAMER_LABELS`. Classes are weighted by the inverse square root of their
    frequency, so locomotives and flat cars are not drowned by covered cars. Stops early after
    ``settings.hours`` (the one-cycle schedule is then cut short). ``imagenet``: the ImageNet
    weights a ``mobilenet_v2`` namer grows from (:func:`build_mobilenet`).
    """
    import torch

    images, labels, sizes = train
    if len(images) == 0:
        raise RailwatchError("no training crops: nothing to train the namer on")
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    if base is not None:
        net = base
    elif settings.arch == "mobilenet_v2":
        if imagenet is None:
            raise RailwatchError("the mobilenet_v2 namer grows from ImageNet weights: give the "
                                 "mobilenet_v2-b0353104.pth file")
        net = build_mobilenet(imagenet)
    else:
        net = build_net(settings.widths)
    net.to(settings.device)
    loss_fn = _weighted_loss(labels, settings)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=settings.lr,
                            weight_decay=settings.weight_decay)
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
            loss = loss_fn(net(_augment(x_all[idx].float(), gen).to(settings.device),
                               _size_jitter(s_all[idx], gen).to(settings.device)),
                           y_all[idx].to(settings.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = _held_out_accuracy(net, val, settings.device)
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


def _held_out_accuracy(net: torch.nn.Module, val: tuple[np.ndarray, np.ndarray, np.ndarray],
                       device: str) -> float:
    """The share of held-out crops named right (NaN without any), the net back on ``device``."""
    if not len(val[0]):
        return math.nan
    net.cpu()
    probs = predict_torch(net, val[0], val[2])
    net.to(device)
    return float((probs.argmax(1) == val[1]).mean())


def _weighted_loss(labels: np.ndarray, settings: NamerSettings) -> torch.nn.Module:
    """Cross-entropy with classes weighted by the inverse square root of their frequency."""
    import torch

    counts = np.bincount(labels, minlength=len(NAMER_LABELS)).astype(np.float64)
    weight = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    weight = weight / (weight * counts).sum() * counts.sum()
    return torch.nn.CrossEntropyLoss(
        weight=torch.tensor(weight, dtype=torch.float32, device=settings.device),
        label_smoothing=settings.label_smoothing,
    )


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


def save_state(net: torch.nn.Module, path: Path, spec: CropSpec, widths: tuple[int, ...],
               arch: str = "small") -> Path:
    """The weights as a plain tensor ``state_dict`` (loadable with ``weights_only=True``)."""
    import torch

    torch.save({"state_dict": net.state_dict(), "widths": list(widths), "arch": arch,
                "crop": [spec.gsd, spec.length_m, spec.width_m], "labels": list(NAMER_LABELS)}, path)
    return path


def load_state(path: Path) -> torch.nn.Module:
    """A namer saved by :func:`save_state`; only tensors and plain lists are unpickled."""
    import torch

    doc = torch.load(path, map_location="cpu", weights_only=True)
    arch = str(doc.get("arch", "small"))
    if arch == "mobilenet_v2":
        net = build_mobilenet()
    elif arch == "small":
        net = build_net(tuple(int(w) for w in doc["widths"]))  # type: ignore[arg-type]
    else:
        raise RailwatchError(f"{path}: a namer of unknown kind {arch!r}; this railwatch knows "
                             f"{', '.join(ARCHS)}")
    net.load_state_dict(doc["state_dict"])
    return net.eval()
