"""The rail-car detector: an oriented-box YOLO model run over a chip plan of each tile.

Two runtimes behind one interface: ONNX Runtime (default; needs no torch at run time) and
torch through ultralytics. The model folder's sha256 hashes are checked before anything is
loaded. Detections are merged across chip seams on rotated overlap, then kept only when their
centre lies in the tile's own core and in the counting region: each car is reported once.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import shapely
from rasterio.features import rasterize
from shapely.geometry.base import BaseGeometry

from railwatch.chipplan import Chip, plan_chips
from railwatch.detections import Detections
from railwatch.errors import ModelError, RailwatchError
from railwatch.manifest import CLASSES, ModelManifest, default_model_dir
from railwatch.obb import merge_oriented, rotated_nms, xywhr_to_corners
from railwatch.tile import Tile

__all__ = ["Detector", "DetectorSettings", "Runtime", "load_detector"]

#: Longest car (a locomotive) plus a margin, in metres: chips overlap by at least this.
CAR_OVERLAP_M = 24.0
#: Pad colour for chips that reach past a tile's edge (ultralytics' letterbox grey).
PAD_VALUE = 114
#: A box reaching this close (pixels) to an inner chip edge is taken as cut by the chip.
EDGE_MARGIN = 2.0


class Runtime(enum.StrEnum):
    """Which engine runs the model."""

    ONNX = "onnx"
    TORCH = "torch"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Inference options. ``conf=None`` takes the manifest's tuned threshold."""

    runtime: Runtime = Runtime.ONNX
    conf: float | None = None
    iou: float = 0.5
    batch: int = 8
    overlap_m: float = CAR_OVERLAP_M

    def __post_init__(self) -> None:
        if self.conf is not None and not 0.0 < self.conf < 1.0:
            raise ValueError(f"conf must be in (0, 1), got {self.conf}")
        if not 0.0 < self.iou < 1.0 or self.batch < 1 or self.overlap_m <= 0:
            raise ValueError("iou must be in (0, 1), batch >= 1, overlap_m > 0")


@dataclass(frozen=True, slots=True)
class ChipBoxes:
    """Boxes found in one chip, in chip pixels."""

    xywhr: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray


class Backend(Protocol):
    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        """``chips`` ``(n, size, size, 3)`` uint8 RGB → boxes per chip."""
        ...


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxBackend:
    """ONNX Runtime; decodes the raw ``(n, 4 + classes + 1, anchors)`` OBB head itself."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _cores()
        options.log_severity_level = 3
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        x = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        (raw,) = self.session.run(None, {self.input: x})
        n_cls = len(CLASSES)
        out = []
        for pred in raw:  # (4 + n_cls + 1, anchors)
            scores = pred[4 : 4 + n_cls]
            cls = scores.argmax(axis=0)
            confidence = scores.max(axis=0)
            keep = confidence > conf
            xywhr = np.column_stack([pred[:4, keep].T, pred[4 + n_cls, keep]])
            confidence, cls = confidence[keep], cls[keep]
            kept = rotated_nms(xywhr_to_corners(xywhr), confidence, iou)
            out.append(ChipBoxes(xywhr[kept], confidence[kept], cls[kept]))
        return out


class TorchBackend:
    """ultralytics on torch (a GPU where one is at hand)."""

    def __init__(self, path: Path, size: int) -> None:
        from railwatch.offline import import_ultralytics

        ultralytics = import_ultralytics()
        self.model = ultralytics.YOLO(str(path), task="obb")
        self.size = size

    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        bgr = [np.ascontiguousarray(c[:, :, ::-1]) for c in chips]  # ultralytics takes BGR arrays
        results = self.model.predict(
            bgr, imgsz=self.size, conf=conf, iou=iou, agnostic_nms=True, verbose=False
        )
        out = []
        for r in results:
            obb = r.obb
            out.append(
                ChipBoxes(
                    obb.xywhr.cpu().numpy().astype(np.float64),
                    obb.conf.cpu().numpy().astype(np.float64),
                    obb.cls.cpu().numpy().astype(np.int64),
                )
            )
        return out


class Detector:
    """A loaded model with its manifest; implements the pipeline's ``DetectorLike``."""

    def __init__(
        self, manifest: ModelManifest, backend: Backend, settings: DetectorSettings | None = None
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.settings = settings or DetectorSettings()
        self.conf = self.settings.conf or float(manifest.accuracy.get("conf", 0.35))

    @property
    def gsd(self) -> float:
        return self.manifest.gsd

    @property
    def model_sha256(self) -> str:
        return self.manifest.sha256

    def detect(self, tiles: Iterable[Tile], region: BaseGeometry) -> Detections:
        """Cars whose centre lies in ``region`` (the tiles' CRS) on a valid pixel, each reported once."""
        parts: list[Detections] = []
        crs = None
        for tile in tiles:
            crs = tile.crs
            parts.append(self.detect_tile(tile, region))
        if crs is None:
            raise RailwatchError("no tile to detect in: the scene does not reach the counting areas")
        return Detections.concat(parts, crs)

    def detect_tile(self, tile: Tile, region: BaseGeometry) -> Detections:
        size = self.manifest.chip
        overlap = min(size - 1, int(np.ceil(self.settings.overlap_m / tile.gsd)))
        half_car = int(np.ceil(0.5 * self.settings.overlap_m / tile.gsd))
        wanted = _region_mask(tile, region.buffer(half_car * tile.gsd)) & tile.valid
        chips = plan_chips(wanted, size, overlap)
        corners, conf, cls = [], [], []
        for batch in _batches(chips, self.settings.batch):
            pixels = np.stack([_cut(tile, c) for c in batch])
            for chip, boxes in zip(batch, self.backend.predict(pixels, self.conf, self.settings.iou),
                                   strict=True):
                if len(boxes.confidence) == 0:
                    continue
                c = xywhr_to_corners(boxes.xywhr)
                whole = ~_touches_inner_edge(c, chip, tile.shape)
                c = c[whole]
                c[..., 0] += chip.col
                c[..., 1] += chip.row
                corners.append(c)
                conf.append(boxes.confidence[whole])
                cls.append(boxes.class_id[whole])
        if not corners:
            return Detections.empty(tile.crs)
        px = np.concatenate(corners)
        confidence = np.concatenate(conf)
        class_id = np.concatenate(cls).astype(np.int64)
        keep = merge_oriented(px, confidence, self.settings.iou)
        px, confidence, class_id = px[keep], confidence[keep], class_id[keep]
        centre = px.mean(axis=1)
        core = tile.core
        in_core = (
            (centre[:, 1] >= core.row_off) & (centre[:, 1] < core.row_off + core.rows)
            & (centre[:, 0] >= core.col_off) & (centre[:, 0] < core.col_off + core.cols)
        )
        rows, cols = tile.shape
        r = np.clip(centre[:, 1].astype(np.int64), 0, rows - 1)
        c = np.clip(centre[:, 0].astype(np.int64), 0, cols - 1)
        in_core &= tile.valid[r, c]  # no detection on nodata or cloud
        world = tile.pixels_to_map(px)
        wc = world.mean(axis=1)
        in_region = shapely.contains_xy(region, wc[:, 0], wc[:, 1])
        keep_mask = in_core & in_region
        n = int(keep_mask.sum())
        return Detections(
            world[keep_mask], class_id[keep_mask], confidence[keep_mask],
            np.full(n, None, dtype=object), np.full(n, tile.scene, dtype=object), tile.crs,
        )


def _touches_inner_edge(corners: np.ndarray, chip: Chip, tile_shape: tuple[int, int]) -> np.ndarray:
    """Boxes (chip pixels) reaching within ``EDGE_MARGIN`` of a chip edge inside the tile.

    Such a box is (probably) a car cut by the chip; chips overlap by more than a car, so the
    neighbouring chip sees that car whole. Edges on the tile's border are not inner edges.
    """
    rows, cols = tile_shape
    lo = corners.min(axis=1)
    hi = corners.max(axis=1)
    m = EDGE_MARGIN
    touch = np.zeros(len(corners), dtype=bool)
    if chip.col > 0:
        touch |= lo[:, 0] < m
    if chip.row > 0:
        touch |= lo[:, 1] < m
    if chip.col + chip.size < cols:
        touch |= hi[:, 0] > chip.size - m
    if chip.row + chip.size < rows:
        touch |= hi[:, 1] > chip.size - m
    return touch


def _region_mask(tile: Tile, region: BaseGeometry) -> np.ndarray:
    if region.is_empty:
        return np.zeros(tile.shape, dtype=bool)
    return rasterize(
        [(region, 1)], out_shape=tile.shape, transform=tile.transform, fill=0, dtype="uint8"
    ).astype(bool)


def _cut(tile: Tile, chip: Chip) -> np.ndarray:
    """The chip's pixels as ``(size, size, 3)`` RGB, padded past the tile's edge."""
    out = np.full((chip.size, chip.size, 3), PAD_VALUE, dtype=np.uint8)
    rows, cols = tile.shape
    r1, c1 = min(chip.row + chip.size, rows), min(chip.col + chip.size, cols)
    out[: r1 - chip.row, : c1 - chip.col] = tile.array[:, chip.row : r1, chip.col : c1].transpose(1, 2, 0)
    return out


def _batches(chips: list[Chip], n: int) -> Iterator[list[Chip]]:
    for i in range(0, len(chips), n):
        yield chips[i : i + n]


def load_detector(
    model: Path | None = None,
    trust_model: bool = False,
    settings: DetectorSettings | None = None,
) -> Detector:
    """The detector in ``model`` (a folder with ``manifest.json``; default: the shipped one)."""
    folder = Path(model) if model is not None else default_model_dir()
    if folder.is_file():
        folder = folder.parent
    if not (folder / "manifest.json").is_file():
        raise ModelError(
            f"{folder}: no manifest.json; pass --model with a model folder written by `railwatch train`"
        )
    manifest = ModelManifest.load(folder)
    settings = settings or DetectorSettings()
    if settings.runtime is Runtime.ONNX:
        backend: Backend = OnnxBackend(manifest.verified_path("onnx", trust=trust_model))
    else:
        backend = TorchBackend(manifest.verified_path("weights", trust=trust_model), manifest.chip)
    return Detector(manifest, backend, settings)
