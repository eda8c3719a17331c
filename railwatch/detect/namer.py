"""The namer at run time: names each found car's kind from its canonical crop (ONNX Runtime).

Stage 2 of recognition (docs/design.md). The finder gives oriented boxes in a tile's pixels; each box
is cut into its canonical frame (:func:`~railwatch.detect.crops.canonical_crops`) and the namer
gives probabilities over the car classes and "not a car". The exported graph already averages
the four symmetric views of the crop. Trained by :mod:`railwatch.training.namer`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from railwatch.classes import CLASS_NAMES
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.errors import ModelError

__all__ = ["NOT_A_CAR", "Namer", "NamerSpec", "Naming"]

#: The namer's last output: the box holds no rail car.
NOT_A_CAR = "not_a_car"


@dataclass(frozen=True, slots=True)
class NamerSpec:
    """How the namer sees a car (its canonical crop), what it can say, and when its "not a car"
    overrules the finder (``veto``: probability of "not a car" at or above which a box is dropped;
    1.0 never drops). ``finder_conf``: the finder's threshold when the namer follows it (the
    namer's veto removes false boxes, so the finder may look harder); None keeps the finder's own."""

    crop: CropSpec
    labels: tuple[str, ...] = (*CLASS_NAMES, NOT_A_CAR)
    veto: float = 0.5
    finder_conf: float | None = None

    def __post_init__(self) -> None:
        if self.labels != (*CLASS_NAMES, NOT_A_CAR):
            raise ModelError(
                f"namer labels {list(self.labels)} are not railwatch's classes and {NOT_A_CAR!r}; "
                "retrain the namer with `railwatch train --stage namer`"
            )
        if not 0.0 < self.veto <= 1.0:
            raise ModelError(f"namer veto must be in (0, 1], got {self.veto}")
        if self.finder_conf is not None and not 0.0 < self.finder_conf < 1.0:
            raise ModelError(f"namer finder_conf must be in (0, 1), got {self.finder_conf}")


@dataclass(frozen=True, slots=True)
class Naming:
    """What the namer said of ``n`` boxes: class index ``(n,)``, its probability ``(n,)``, the
    probability that the box is no car ``(n,)``, and all probabilities ``(n, labels)``."""

    class_id: np.ndarray
    class_confidence: np.ndarray
    not_a_car: np.ndarray
    probs: np.ndarray


class Namer:
    """The ONNX namer of a model folder, with its spec."""

    def __init__(
        self, model: bytes | Path, spec: NamerSpec, batch: int = 256, path: Path | None = None,
        threads: int | None = None,
    ) -> None:
        """``model``: the ONNX file's bytes (those whose sha256 was checked) or its path;
        ``path`` names it in messages; ``threads``: intra-op threads (default: every core)."""
        from railwatch.detect.offline import import_onnxruntime

        ort = import_onnxruntime()
        path = path or (model if isinstance(model, Path) else Path("namer.onnx"))
        options = ort.SessionOptions()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        options.intra_op_num_threads = threads or cores
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            source = model if isinstance(model, bytes) else str(model)
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ModelError(f"{path}: not a loadable ONNX namer ({exc}); re-export it with "
                             "`railwatch train --stage namer`") from exc
        self.spec = spec
        self.batch = batch

    def probabilities(self, crops: np.ndarray, size_m: np.ndarray) -> np.ndarray:
        """``(n, labels)`` probabilities of crops ``(n, 3, rows, cols)`` uint8 with box sizes ``(n, 2)`` m."""
        if len(crops) == 0:
            return np.zeros((0, len(self.spec.labels)), dtype=np.float32)
        out = []
        for i in range(0, len(crops), self.batch):
            (probs,) = self.session.run(None, {
                "image": crops[i : i + self.batch].astype(np.float32),
                "size_m": np.ascontiguousarray(size_m[i : i + self.batch], dtype=np.float32),
            })
            out.append(probs)
        return np.concatenate(out)

    def name(self, image: np.ndarray, corners_px: np.ndarray, pixel_gsd: float) -> Naming:
        """Name the boxes ``corners_px`` ``(n, 4, 2)`` (``(col, row)`` pixels) of ``image`` ``(3, H, W)``."""
        return self.name_crops(*self.crops(image, corners_px, pixel_gsd))

    def crops(self, image: np.ndarray, corners_px: np.ndarray, pixel_gsd: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """The canonical crops ``(n, 3, rows, cols)`` uint8 of boxes ``corners_px`` of ``image``,
        and their sizes ``(n, 2)`` (length, width in metres): what :meth:`name_crops` names. Cut
        as soon as a box is found (a few kB each), so that the cars of a whole scene can be
        named once, after the seams are merged, in one batch."""
        crops = canonical_crops(image, corners_px, pixel_gsd, self.spec.crop)
        length, width = (box_axes(corners_px)[2:] if len(corners_px) else (np.zeros(0), np.zeros(0)))
        return crops, np.column_stack([length * pixel_gsd, width * pixel_gsd])

    def name_crops(self, crops: np.ndarray, size: np.ndarray) -> Naming:
        """Name canonical crops with their sizes (:meth:`crops`)."""
        probs = self.probabilities(crops, size).astype(np.float64)
        cars = probs[:, : len(CLASS_NAMES)]
        class_id = cars.argmax(axis=1) if len(cars) else np.zeros(0, dtype=np.int64)
        return Naming(
            class_id.astype(np.int64), cars.max(axis=1) if len(cars) else np.zeros(0),
            probs[:, len(CLASS_NAMES)], probs,
        )
