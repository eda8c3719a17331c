"""The main job as a library function: count a batch of scenes into the store.

``run_batch`` walks the inputs (directories recursively), skips scenes the store already holds
for this model and site (by content sha256, so a renamed file is recognised), and opens,
observes and records each remaining scene in its own transaction. A scene that cannot be used
is one line on stderr (``file: reason``) and a ``rejected`` row in the store; the batch goes
on. Killed at any moment, a batch loses nothing committed; rerun, it resumes where it stopped.
"""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from railwatch.detect.manifest import sha256_file
from railwatch.detect.observation import DetectorLike, observe_scene
from railwatch.errors import RailwatchError, SceneError
from railwatch.imagery.scene import open_scene
from railwatch.site import Site
from railwatch.store.database import ModelRecord, Store

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchSettings",
    "BatchSummary",
    "Rejection",
    "SceneOutcome",
    "find_images",
    "run_batch",
]

#: File suffixes taken as imagery when walking directories (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".vrt", ".jp2")


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """``force``: recount scenes already in the store; ``progress``: show the progress bar."""

    force: bool = False
    progress: bool = True


class SceneOutcome(enum.Enum):
    """What became of a usable scene of a batch (an unusable one is a :class:`Rejection`)."""

    COUNTED = "counted"
    ALREADY_STORED = "already_stored"  # counted before with this model and site: skipped


@dataclass(frozen=True, slots=True)
class Rejection:
    """A scene that could not be used: file, machine-readable reason, message."""

    path: Path
    reason: str
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a batch did."""

    run_id: int
    counted: tuple[Path, ...] = ()
    skipped: tuple[Path, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    seconds: float = 0.0
    inputs: int = field(default=0)

    @property
    def usable(self) -> int:
        """Scenes counted now or already in the store."""
        return len(self.counted) + len(self.skipped)

    def text(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"counted {len(self.counted)}, skipped {len(self.skipped)} (already in the store), "
            f"rejected {len(self.rejected)} of {self.inputs} scene(s) in {self.seconds:.1f} s"
        ]
        reasons: dict[str, int] = {}
        for r in self.rejected:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        lines += [f"  rejected, {reason}: {n}" for reason, n in sorted(reasons.items())]
        return "\n".join(lines)


def find_images(inputs: Iterable[Path]) -> list[Path]:
    """Files given directly, and imagery files found recursively in directories (sorted)."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            found.append(item)
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _stderr_line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def run_batch(
    inputs: Sequence[Path],
    site: Site,
    detector: DetectorLike,
    store: Store,
    model: ModelRecord | None = None,
    settings: BatchSettings | None = None,
    say: Callable[[str], None] = _stderr_line,
) -> BatchSummary:
    """Count every scene of ``inputs`` not yet in the store; see the module docstring.

    ``model`` describes the detector's model for the store (its sha256 must be the detector's;
    default: :meth:`ModelRecord.describing` the detector). ``say`` receives one line per
    rejected scene (default: stderr, above the progress bar).
    """
    s = settings or BatchSettings()
    model = model or ModelRecord.describing(detector)
    if model.sha256 != detector.model_sha256:
        raise ValueError("the model record does not describe this detector (sha256 differs)")
    paths = find_images(inputs)
    run_id = store.start_run(
        model, site,
        {"inputs": [str(p) for p in inputs], "scenes": len(paths), "force": s.force,
         "gsd": detector.gsd},
    )
    t0 = time.perf_counter()
    counted: list[Path] = []
    skipped: list[Path] = []
    rejected: list[Rejection] = []
    bar = tqdm(paths, unit="scene", disable=not s.progress, file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        bar.set_description(path.name[:40])
        outcome = _one_scene(path, site, detector, store, model, run_id, s.force)
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
            say(outcome.line())
        elif outcome is SceneOutcome.COUNTED:
            counted.append(path)
        else:
            skipped.append(path)
        minutes = (time.perf_counter() - t0) / 60
        if minutes > 0:
            bar.set_postfix_str(f"{len(counted) / minutes:.1f} scenes/min")
    bar.close()
    summary = BatchSummary(
        run_id, tuple(counted), tuple(skipped), tuple(rejected), time.perf_counter() - t0,
        len(paths),
    )
    store.finish_run(run_id, {
        "counted": len(counted), "skipped": len(skipped), "rejected": len(rejected),
        "seconds": round(summary.seconds, 2),
    })
    return summary


def _one_scene(
    path: Path,
    site: Site,
    detector: DetectorLike,
    store: Store,
    model: ModelRecord,
    run_id: int,
    force: bool,
) -> SceneOutcome | Rejection:
    """Count one scene into the store, or say why it cannot be used."""
    try:
        digest = sha256_file(path)  # a scene's identity, whatever its name
    except OSError as exc:
        rejection = Rejection(path, "unreadable", f"cannot read the file ({exc.strerror or exc})")
        store.record_rejection(run_id, path, None, model.sha256, site.name, rejection.reason,
                               rejection.message)
        return rejection
    known = store.find_scene(digest, model.sha256, site.name)
    if known is not None and known.status == "counted" and not force:
        if Path(known.path) != path.resolve() and not Path(known.path).exists():
            store.note_path(known.id, path)
        return SceneOutcome.ALREADY_STORED
    try:
        scene = open_scene(path, site.crs, site.aoi_local)
        observation = observe_scene(scene, site, detector)
    except SceneError as exc:
        rejection = Rejection(path, exc.reason, exc.message)
    except RailwatchError as exc:
        rejection = Rejection(path, "unusable", str(exc))
    else:
        recorded = store.record_scene(run_id, observation, digest, site, force=force)
        return SceneOutcome.COUNTED if recorded else SceneOutcome.ALREADY_STORED
    store.record_rejection(
        run_id, path, digest, model.sha256, site.name, rejection.reason, rejection.message
    )
    return rejection
