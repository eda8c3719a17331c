"""The rail-car detector: an oriented-box YOLO model run over the chips of a scene's tiles.

Two runtimes behind one interface: ONNX Runtime (default; needs no torch at run time) and
torch through ultralytics. The model folder's sha256 hashes are checked before anything is
loaded. Chips of all tiles go through the model in full batches; boxes cut by a chip edge are
dropped, the rest kept when centred in their tile's own core, merged across chip and tile seams
on rotated overlap, and kept when centred in the counting region: each car is reported once.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from railwatch.classes import CLASSES
from railwatch.detect.chipplan import CAR_OVERLAP_M, Chip, ChipLayout, chip_layout, plan_chips
from railwatch.detect.detections import Detections
from railwatch.detect.manifest import NAMER_FILE, ModelFile, ModelManifest, default_model_dir, sha256_file
from railwatch.detect.namer import Namer
from railwatch.detect.obb import merge_oriented, rotated_nms, xywhr_to_corners
from railwatch.errors import ModelError, RailwatchError
from railwatch.imagery.tile import Tile

__all__ = ["DetectionPass", "Detector", "DetectorSettings", "Runtime", "load_detector"]

#: Pad colour for chips that reach past a tile's edge (ultralytics' letterbox grey).
PAD_VALUE = 114
#: A box reaching this close (pixels) to an inner chip edge is taken as cut by the chip.
EDGE_MARGIN = 2.0
#: A box counts in a tile when its centre lies this close (pixels) to the tile's core or inside
#: it: a car on the line between two cores, seen whole by both, is kept by both and merged.
CORE_SLACK = 4.0


class Runtime(enum.StrEnum):
    """Which engine runs the model."""

    ONNX = "onnx"
    TORCH = "torch"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Inference options. ``conf=None`` takes the manifest's tuned threshold; ``threads=None``
    lets ONNX Runtime (finder and namer) use every core; set it when several detectors share a
    machine."""

    runtime: Runtime = Runtime.ONNX
    conf: float | None = None
    iou: float = 0.5
    batch: int = 8
    overlap_m: float = CAR_OVERLAP_M
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.conf is not None and not 0.0 < self.conf < 1.0:
            raise ValueError(f"conf must be in (0, 1), got {self.conf}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
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
    """ONNX Runtime; decodes the raw ``(n, 4 + classes + 1, anchors)`` OBB head itself (the
    layout of ultralytics' YOLOv8 and YOLO11 OBB exports alike: box ``xywh`` in input pixels,
    the class scores after their sigmoid, the angle in radians; a one-class finder has one
    score row).

    ``model``: the ONNX file's bytes (those whose sha256 was checked) or its path; ``path``
    names it in messages; ``threads``: intra-op threads (default: every core).
    """

    def __init__(self, model: bytes | Path, path: Path | None = None, threads: int | None = None) -> None:
        from railwatch.detect.offline import import_onnxruntime

        ort = import_onnxruntime()
        where = path or (model if isinstance(model, Path) else Path("model.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _cores()
        options.log_severity_level = 3
        # Idle threads sleep instead of busy-waiting: on a machine shared with other work (the
        # usual case here) spinning threads fight for the cores; measured 31 -> 49 chips/s at
        # batch 8 with a training run on the other cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
            self.input = self.session.get_inputs()[0].name
        except Exception as exc:  # onnxruntime's errors share no base class
            raise ModelError(
                f"{where}: not a loadable ONNX model ({_first_line(exc)}); restore the model "
                "folder, or export the model again (`railwatch train` writes both files)"
            ) from exc

    def predict(self, chips: np.ndarray, conf: float, iou: float) -> list[ChipBoxes]:
        x = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        (raw,) = self.session.run(None, {self.input: x})
        n_cls = raw.shape[1] - 5
        if n_cls not in (1, len(CLASSES)):
            raise ModelError(f"the ONNX finder gives {raw.shape[1]} rows per anchor; railwatch reads "
                             f"4 + 1 + 1 (one class) or 4 + {len(CLASSES)} + 1")
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
        from railwatch.detect.offline import import_ultralytics

        ultralytics = import_ultralytics()
        try:
            self.model = ultralytics.YOLO(str(path), task="obb")
        except Exception as exc:  # torch and ultralytics raise anything here
            raise ModelError(
                f"{path}: not a loadable model checkpoint ({_first_line(exc)}); restore the "
                "model folder, or train it again"
            ) from exc
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
        self,
        manifest: ModelManifest,
        backend: Backend,
        settings: DetectorSettings | None = None,
        namer: Namer | None = None,
        model_sha256: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.namer = namer
        self.settings = settings or DetectorSettings()
        after_namer = namer.spec.finder_conf if namer is not None else None
        self.conf = self.settings.conf or after_namer or manifest.conf
        self._sha256 = model_sha256 or manifest.sha256

    @property
    def gsd(self) -> float:
        return self.manifest.gsd

    @property
    def model_sha256(self) -> str:
        """The model's identity: the manifest's sha256 when the file loaded is the one it
        lists, else the sha256 of the bytes actually loaded (a file trusted with
        ``--trust-model``)."""
        return self._sha256

    @property
    def genuine(self) -> bool:
        """Whether the file loaded is the one the manifest lists (its accuracy is this model's)."""
        return self._sha256 == self.manifest.sha256

    @property
    def chip_layout(self) -> ChipLayout:
        """How this model's chips are laid on the grid (chip size, overlap of a car + margin)."""
        return chip_layout(self.manifest.chip, self.gsd, self.settings.overlap_m)

    def start(self, region: BaseGeometry) -> DetectionPass:
        """Begin a pass over one scene's tiles for cars centred in ``region`` (the tiles' CRS)."""
        return DetectionPass(self, region)

    def detect(self, tiles: Iterable[Tile], region: BaseGeometry) -> Detections:
        """All of a pass at once: every tile added, then the result (see :class:`DetectionPass`)."""
        detection = self.start(region)
        for tile in tiles:
            detection.add(tile)
        return detection.result()

    def _run(self, batch: list[tuple[Tile, Chip]]) -> list[_Boxes]:
        """One batch of chips through the model: the whole boxes centred in each tile's core."""
        if not batch:
            return []
        pixels = np.stack([_cut(tile, chip) for tile, chip in batch])
        out = []
        for (tile, chip), boxes in zip(
            batch, self.backend.predict(pixels, self.conf, self.settings.iou), strict=True
        ):
            if len(boxes.confidence) == 0:
                continue
            px = xywhr_to_corners(boxes.xywhr)
            keep = ~_touches_cut_edge(px, chip, tile)
            px = px[keep]
            px[..., 0] += chip.col
            px[..., 1] += chip.row
            keep_own = _in_own_part(px.mean(axis=1), tile)
            if not keep_own.any():
                continue
            own = px[keep_own]
            class_id = boxes.class_id[keep][keep_own].astype(np.int64)
            confidence = boxes.confidence[keep][keep_own]
            crops, size = (self.namer.crops(tile.array, own, tile.gsd) if self.namer is not None
                           else (None, None))  # named once per car, after the seams are merged
            out.append(_Boxes(tile.pixels_to_map(own), confidence, class_id, tile.scene, crops, size))
        return out


class DetectionPass:
    """Cars whose centre lies in ``region`` on a valid pixel, each reported once, found in the
    tiles of one scene: :meth:`add` each tile, then take :meth:`result` once.

    The tiles are windows of one grid whose cores do not overlap (as
    :func:`~railwatch.detect.chipplan.plan_region_windows` or :func:`~railwatch.imagery.grid.plan_windows`
    make them). Chips are planned in each tile and run through the model in batches across
    tiles (a tile's chips may wait for the next tile to fill a batch). A box reaching a chip edge
    beyond which there is more to see (an inner chip edge, or a tile edge past the tile's core) is
    a cut car and dropped: chips overlap by more than a car, so another chip holds it whole. A box
    is kept when its centre lies in its tile's core (give or take ``CORE_SLACK`` pixels) on a
    valid pixel; the boxes of all tiles are then merged on rotated overlap, so a car seen whole by
    two chips is reported once.
    """

    def __init__(self, detector: Detector, region: BaseGeometry) -> None:
        self._detector = detector
        self._region = shapely.normalize(region)
        shapely.prepare(self._region)
        self._found: list[_Boxes] = []
        self._pending: list[tuple[Tile, Chip]] = []
        self._crs: CRS | None = None
        self._done = False

    def add(self, tile: Tile) -> None:
        """Plan the tile's chips and run every full batch."""
        if self._done:
            raise RuntimeError("this detection pass has given its result; start a new one")
        d = self._detector
        self._crs = tile.crs
        layout = chip_layout(d.manifest.chip, tile.gsd, d.settings.overlap_m)
        # all touched: a car centred in the region is never left out by rasterisation
        wanted = tile.mask(self._region, all_touched=True) & tile.valid
        for chip in plan_chips(wanted, layout.size, layout.overlap):
            self._pending.append((tile, chip))
            if len(self._pending) == d.settings.batch:
                self._found.extend(d._run(self._pending))
                self._pending = []

    def result(self) -> Detections:
        """The merged detections of every tile added (the last, partial batch is run now)."""
        if self._done:
            raise RuntimeError("this detection pass has given its result already")
        if self._crs is None:
            raise RailwatchError("no tile to detect in: the scene does not reach the counting areas")
        self._done = True
        self._found.extend(self._detector._run(self._pending))
        self._pending = []
        return _merged(self._found, self._region, self._detector.settings.iou, self._crs,
                       self._detector.namer)


@dataclass(frozen=True, slots=True)
class _Boxes:
    """Boxes of one chip in map coordinates, before merging; with a namer, each box's canonical
    crop and size, to be named after the merge."""

    corners: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    scene: str
    crops: np.ndarray | None = None
    size: np.ndarray | None = None


def _merged(found: list[_Boxes], region: BaseGeometry, iou: float, crs: CRS, namer: Namer | None = None
            ) -> Detections:
    """All chips' boxes merged on rotated overlap, kept when centred in ``region``, and then —
    each car once, in one batch — named by ``namer``, which drops what it calls not a car."""
    if not found:
        return Detections.empty(crs)
    world = np.concatenate([f.corners for f in found])
    if not len(world):
        return Detections.empty(crs)
    confidence = np.concatenate([f.confidence for f in found])
    class_id = np.concatenate([f.class_id for f in found])
    scene = np.concatenate([np.full(len(f.confidence), f.scene, dtype=object) for f in found])
    origin = world[0, 0]  # merge near the origin: rotated overlap in small numbers
    keep = merge_oriented(world - origin, confidence, iou)
    centre = world[keep].mean(axis=1)
    keep = keep[shapely.contains_xy(region, centre[:, 0], centre[:, 1])]
    naming = np.full(len(keep), np.nan)
    if namer is not None:
        crops = np.concatenate([f.crops for f in found if f.crops is not None])[keep]
        size = np.concatenate([f.size for f in found if f.size is not None])[keep]
        named = namer.name_crops(crops, size)
        car = named.not_a_car < namer.spec.veto
        keep, naming = keep[car], named.class_confidence[car]
        class_id = class_id.copy()
        class_id[keep] = named.class_id[car]
    n = len(keep)
    return Detections(world[keep], class_id[keep], confidence[keep], np.full(n, None, dtype=object),
                      scene[keep], crs, naming)


def _in_own_part(centre: np.ndarray, tile: Tile) -> np.ndarray:
    """Box centres (tile pixels, (col, row)) in the tile's core (± ``CORE_SLACK``), on a valid pixel."""
    core = tile.core
    col, row = centre[:, 0], centre[:, 1]
    s = CORE_SLACK
    inside = (
        (row >= core.row_off - s) & (row < core.row_off + core.rows + s)
        & (col >= core.col_off - s) & (col < core.col_off + core.cols + s)
    )
    rows, cols = tile.shape
    r = np.clip(row.astype(np.int64), 0, rows - 1)
    c = np.clip(col.astype(np.int64), 0, cols - 1)
    return np.asarray(inside & tile.valid[r, c])  # no detection on nodata or cloud


def _touches_cut_edge(corners: np.ndarray, chip: Chip, tile: Tile) -> np.ndarray:
    """Boxes (chip pixels) reaching within ``EDGE_MARGIN`` of an edge that may cut a car.

    A chip's edge cuts when it lies inside the tile (another chip of the tile goes on), or on
    the tile's border where the tile's core stops short of it (a neighbouring tile goes on).
    Where the core reaches the tile's border (the grid's edge), nothing lies beyond: the box is
    kept. A chip reaching past the tile's edge is cut by the tile's edge, not its own.
    """
    rows, cols = tile.shape
    core = tile.core
    right = min(chip.size, cols - chip.col)  # the chip's visible extent
    bottom = min(chip.size, rows - chip.row)
    lo = corners.min(axis=1)
    hi = corners.max(axis=1)
    m = EDGE_MARGIN
    touch = np.zeros(len(corners), dtype=bool)
    if chip.col > 0 or core.col_off > 0:
        touch |= lo[:, 0] < m
    if chip.row > 0 or core.row_off > 0:
        touch |= lo[:, 1] < m
    if chip.col + right < cols or core.col_off + core.cols < cols:
        touch |= hi[:, 0] > right - m
    if chip.row + bottom < rows or core.row_off + core.rows < rows:
        touch |= hi[:, 1] > bottom - m
    return touch


def _cut(tile: Tile, chip: Chip) -> np.ndarray:
    """The chip's pixels as ``(size, size, 3)`` RGB, padded past the tile's edge."""
    out = np.full((chip.size, chip.size, 3), PAD_VALUE, dtype=np.uint8)
    rows, cols = tile.shape
    r1, c1 = min(chip.row + chip.size, rows), min(chip.col + chip.size, cols)
    out[: r1 - chip.row, : c1 - chip.col] = tile.array[:, chip.row : r1, chip.col : c1].transpose(1, 2, 0)
    return out


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
    loaded: dict[ModelFile, str] = {}  # kind -> sha256 of the bytes loaded: the model's identity
    if settings.runtime is Runtime.ONNX:
        data, loaded[ModelFile.ONNX] = manifest.read_verified(ModelFile.ONNX, trust=trust_model)
        backend: Backend = OnnxBackend(data, manifest.path_of(ModelFile.ONNX), settings.threads)
    else:
        path = manifest.verified_path(ModelFile.WEIGHTS, trust=trust_model)
        loaded[ModelFile.WEIGHTS] = sha256_file(path)
        backend = TorchBackend(path, manifest.chip)
    spec = manifest.namer_spec()
    if spec is None and manifest.finder_classes == 1:
        raise ModelError(
            f"{folder}: a one-class finder without a namer finds cars but cannot name them; give "
            f"it one: railwatch train --stage namer --from {folder} --simulate 300 --out NEW_MODEL"
        )
    namer = None
    if spec is not None:
        namer_bytes, loaded[NAMER_FILE] = manifest.read_verified(NAMER_FILE, trust=trust_model)
        namer = Namer(namer_bytes, spec, path=manifest.path_of(NAMER_FILE), threads=settings.threads)
    return Detector(manifest, backend, settings, namer, manifest.identity(loaded))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
