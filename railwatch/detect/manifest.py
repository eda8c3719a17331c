"""The model manifest (``models/manifest.json``): classes, ground sample distance, chip size,
file hashes, how the model was trained and how well it did.

Format::

    {
      "name": "railcar-obb-n",
      "classes": ["covered_car", "open_car", "tank_car", "flat_car", "locomotive"],
      "gsd": 0.3,                       # metres per pixel the model works at
      "chip": 320,                      # chip side in pixels
      "files": {"weights": {"path": "railcar-obb.pt", "sha256": "..."},
                "onnx": {"path": "railcar-obb.onnx", "sha256": "..."}},
      "training": {...},                # command, seed, data recipe, epochs, base model
      "accuracy": {"per_class": {"covered_car": {"precision": 0.97, "recall": 0.95, "f1": 0.96},
                                  ...},
                   ...}                 # what it was measured on, and how
    }
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from railwatch.classes import CLASSES
from railwatch.detect.crops import CropSpec
from railwatch.detect.namer import NamerSpec
from railwatch.errors import ModelError, ModelIntegrityError

__all__ = [
    "DEFAULT_CONF",
    "DEFAULT_GSD",
    "MODEL_DIR_ENV",
    "NAMER_FILE",
    "NAMER_WEIGHTS",
    "Accuracy",
    "ClassMetrics",
    "ClassScores",
    "FileEntry",
    "JsonObject",
    "ModelFile",
    "ModelManifest",
    "default_model_dir",
    "sha256_file",
]

#: Grid ground sample distance used when no model manifest exists.
DEFAULT_GSD = 0.5

#: Confidence threshold of a model whose manifest names no tuned one (``accuracy.conf``).
DEFAULT_CONF = 0.35


class ModelFile(enum.StrEnum):
    """The files a manifest lists (keys of ``files``)."""

    WEIGHTS = "weights"  # the finder's ultralytics .pt: a pickle, loading one runs code
    ONNX = "onnx"  # the finder's ONNX export
    NAMER_ONNX = "namer_onnx"  # the namer (two-stage models)
    NAMER_WEIGHTS = "namer_weights"  # the namer's torch weights, for fine-tuning


#: The ``files`` key of the namer's ONNX file, and of its torch weights (for fine-tuning).
NAMER_FILE = ModelFile.NAMER_ONNX
NAMER_WEIGHTS = ModelFile.NAMER_WEIGHTS


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """Measured precision and recall of one class (fractions)."""

    precision: float
    recall: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.precision <= 1.0 and 0.0 <= self.recall <= 1.0):
            raise ValueError(f"precision and recall must be in [0, 1], got {self}")


#: A JSON object as read from a manifest: the parts kept as written (a record, not parsed).
JsonObject = Mapping[str, object]


def _fraction(value: object, what: str) -> float | None:
    """A score in [0, 1], or ``None`` (JSON null, or a NaN an older fine-tune wrote) for a
    score that could not be measured."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]  # a TypeError or ValueError is a malformed manifest
    if number != number:
        return None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{what} {number} is not in [0, 1]")
    return number


@dataclass(frozen=True, slots=True)
class ClassScores:
    """One class's scores on the data a model was measured on: ``None`` where nothing could be
    measured (no car of the class in that data: ``n_true`` 0)."""

    precision: float | None
    recall: float | None
    f1: float | None
    n_true: int
    n_pred: int
    count_error: float | None = None

    def __post_init__(self) -> None:
        for name in ("precision", "recall", "f1"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or None, got {value}")
        if self.n_true < 0 or self.n_pred < 0:
            raise ValueError("n_true and n_pred must be non-negative")

    @classmethod
    def parse(cls, doc: JsonObject, what: str) -> ClassScores:
        ce = doc.get("count_error")
        return cls(_fraction(doc.get("precision"), f"{what} precision"),
                   _fraction(doc.get("recall"), f"{what} recall"), _fraction(doc.get("f1"), f"{what} f1"),
                   int(doc.get("n_true", 0) or 0), int(doc.get("n_pred", 0) or 0),  # type: ignore[call-overload]
                   None if ce is None or ce != ce else float(ce))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Accuracy:
    """The ``accuracy`` block: the finder's threshold and its scores where it was measured, and
    the whole system's error matrix (``system``, parsed by :mod:`railwatch.count.errormatrix`).
    ``document`` is the block as written (its other keys: the F1 curve, how the threshold was
    chosen, scores at IoU 0.3)."""

    conf: float = DEFAULT_CONF
    evaluated_on: str = ""
    per_class: Mapping[str, ClassScores] = field(default_factory=dict)
    any_class: ClassScores | None = None
    system: JsonObject | None = None
    document: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.conf < 1.0:
            raise ValueError(f"accuracy.conf {self.conf} is not in (0, 1)")
        unknown = set(self.per_class) - set(CLASSES)
        if unknown:
            raise ValueError(f"accuracy.per_class names unknown classes {sorted(unknown)}")

    @classmethod
    def parse(cls, doc: JsonObject) -> Accuracy:
        per_class = doc.get("per_class") or {}
        any_class = doc.get("any_class")
        system = doc.get("system")
        if not isinstance(per_class, Mapping) or not (any_class is None or isinstance(any_class, Mapping)):
            raise ValueError("accuracy.per_class and accuracy.any_class must be objects")
        return cls(
            conf=float(doc.get("conf", DEFAULT_CONF)),  # type: ignore[arg-type]
            evaluated_on=str(doc.get("evaluated_on", "")),
            per_class={str(c): ClassScores.parse(v, str(c)) for c, v in per_class.items()
                       if isinstance(v, Mapping)},
            any_class=None if any_class is None else ClassScores.parse(any_class, "any_class"),
            system=system if isinstance(system, Mapping) else None,
            document=dict(doc),
        )


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a model folder: where it is (relative to the folder) and its sha256."""

    path: str
    sha256: str

    def __post_init__(self) -> None:
        if not self.path or Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError(f"file path {self.path!r} must be relative, inside the model folder")


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """A model folder's manifest, parsed once into frozen types; ``folder`` is where its files
    are. ``training`` is the record of how the model was made (command, settings, versions),
    kept as written."""

    folder: Path
    name: str
    classes: tuple[str, ...]
    gsd: float
    chip: int
    files: Mapping[ModelFile, FileEntry]
    training: JsonObject = field(default_factory=dict)
    accuracy: Accuracy = field(default_factory=Accuracy)
    namer: JsonObject = field(default_factory=dict)
    #: How many classes the finder itself tells apart: 1 ("a rail car is here", the namer names
    #: the kind; manifest ``finder.classes: ["rail_car"]``) or the five classes.
    finder_classes: int = len(CLASSES)

    def __post_init__(self) -> None:
        if self.classes != CLASSES:
            raise ModelError(
                f"{self.folder}: model classes {list(self.classes)} differ from railwatch's "
                f"{list(CLASSES)}; retrain with `railwatch train`"
            )
        if self.finder_classes not in (1, len(CLASSES)):
            raise ModelError(f"{self.folder}/manifest.json: a finder of {self.finder_classes} classes; "
                             f"railwatch runs finders of 1 or {len(CLASSES)}")
        if not (0.05 <= self.gsd <= 1.0) or self.chip < 32:
            raise ModelError(f"{self.folder}/manifest.json: implausible gsd {self.gsd} or chip {self.chip}")

    @property
    def conf(self) -> float:
        """The confidence threshold chosen when the finder was measured (``accuracy.conf``)."""
        return self.accuracy.conf

    @classmethod
    def load(cls, folder: str | Path) -> ModelManifest:
        folder = Path(folder)
        path = folder / "manifest.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            finder = doc.get("finder") or {}
            files = {ModelFile(k): FileEntry(str(v["path"]), str(v.get("sha256", "")))
                     for k, v in doc["files"].items()}
            return cls(
                folder=folder,
                name=str(doc["name"]),
                classes=tuple(doc["classes"]),
                gsd=float(doc["gsd"]),
                chip=int(doc["chip"]),
                files=files,
                training=dict(doc.get("training", {})),
                accuracy=Accuracy.parse(dict(doc.get("accuracy", {}))),
                namer=dict(doc.get("namer", {})),
                finder_classes=len(finder.get("classes", CLASSES)),
            )
        except ModelError:
            raise
        except FileNotFoundError as exc:
            raise ModelError(
                f"{path}: no model manifest; pass --model with a folder made by `railwatch train`"
            ) from exc
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path}: malformed model manifest ({exc!r})") from exc

    def path_of(self, kind: ModelFile) -> Path:
        """Where the manifest says the ``kind`` file is (not checked; see :meth:`verified_path`)."""
        if kind not in self.files:
            raise ModelError(f"{self.folder}/manifest.json lists no {kind.value!r} file")
        return self.folder / self.files[kind].path

    def verified_path(self, kind: ModelFile, trust: bool = False) -> Path:
        """The file's path after checking its sha256 against the manifest.

        A ``.pt`` file is a pickle: loading an untrusted one runs code. A mismatch is refused
        unless ``trust`` is set.
        """
        path = self.path_of(kind)
        if not path.is_file():
            raise ModelError(f"{path}: model file listed in the manifest is missing")
        self._check(kind, path, sha256_file(path), trust)
        return path

    def read_verified(self, kind: ModelFile, trust: bool = False) -> tuple[bytes, str]:
        """The file's bytes and their sha256, checked against the manifest as
        :meth:`verified_path` does; the bytes checked are the bytes loaded."""
        path = self.path_of(kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{path}: model file listed in the manifest is missing") from None
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the model file ({exc})") from exc
        actual = hashlib.sha256(data).hexdigest()
        self._check(kind, path, actual, trust)
        return data, actual

    def identity(self, loaded: Mapping[ModelFile, str]) -> str:
        """The model's identity in the store, from the sha256 of the files actually loaded
        (kind → sha256): :attr:`sha256` when each is the file the manifest lists; a changed file
        (loaded with ``--trust-model``) puts the sha256 of its own bytes in its stage's place,
        so the store never files its counts under the genuine model."""
        listed = self.files.get(ModelFile.WEIGHTS) or self.files.get(ModelFile.ONNX)
        finder = listed.sha256 if listed is not None else ""
        for kind in (ModelFile.ONNX, ModelFile.WEIGHTS):
            if kind in loaded and kind in self.files and loaded[kind] != self.files[kind].sha256:
                finder = loaded[kind]
        if NAMER_FILE not in self.files:
            return finder
        namer = self.files[NAMER_FILE].sha256
        if NAMER_FILE in loaded and loaded[NAMER_FILE] != namer:
            namer = loaded[NAMER_FILE]
        return hashlib.sha256(f"{finder}:{namer}".encode()).hexdigest()

    def _check(self, kind: ModelFile, path: Path, actual: str, trust: bool) -> None:
        expected = self.files[kind].sha256
        if actual != expected and not trust:
            raise ModelIntegrityError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest ({expected[:12]}…); "
                "the file was changed or replaced. Loading a model runs code: pass --trust-model "
                "only if you know where this file came from"
            )

    def class_metrics(self) -> dict[str, ClassMetrics]:
        """Measured precision/recall per class; classes not measured get (1.0, 1.0) — none
        measured means the intervals reflect sampling only, and the report says so."""
        def metrics(scores: ClassScores | None) -> ClassMetrics:
            if scores is None:
                return ClassMetrics(1.0, 1.0)
            return ClassMetrics(1.0 if scores.precision is None else scores.precision,
                                1.0 if scores.recall is None else scores.recall)

        return {c: metrics(self.accuracy.per_class.get(c)) for c in CLASSES}

    def namer_spec(self) -> NamerSpec | None:
        """The namer's crop, labels and veto when the model has a namer (two-stage), else None."""
        if NAMER_FILE not in self.files:
            return None
        try:
            crop_doc = self.namer["crop"]
            if not isinstance(crop_doc, Mapping):
                raise TypeError("namer.crop must be an object")
            crop = CropSpec(**{str(k): float(v) for k, v in crop_doc.items()})
            finder_conf = self.namer.get("finder_conf")
            labels = self.namer.get("labels", NamerSpec(crop).labels)
            return NamerSpec(crop, tuple(str(x) for x in labels),  # type: ignore[attr-defined]
                             float(self.namer.get("veto", 0.5)),  # type: ignore[arg-type]
                             None if finder_conf is None else float(finder_conf))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{self.folder}/manifest.json: malformed namer section ({exc!r})") from exc

    @property
    def sha256(self) -> str:
        """The identity of the model as its manifest lists it: the sha256 of its weights file;
        with a namer, the sha256 of both stages' hashes (finder, then namer)."""
        return self.identity({})


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks: a model file's or a scene's identity."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: Environment variable naming a model folder to use instead of the shipped one.
MODEL_DIR_ENV = "RAILWATCH_MODEL_DIR"


def default_model_dir() -> Path:
    """The model folder used when ``--model`` is not given.

    ``$RAILWATCH_MODEL_DIR`` when set; in a checkout of the repository, its top-level
    ``models/``; in an installed wheel, the same files, mapped into the package at build time
    (``railwatch/models/``, package data: ``[tool.setuptools.package-dir]`` in pyproject.toml).
    """
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "models" / "manifest.json").is_file():
        return checkout / "models"
    return Path(str(resources.files("railwatch") / "models"))
