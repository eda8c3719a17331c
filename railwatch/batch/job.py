"""The main job as a library function: count a batch of scenes into the store.

``run_batch`` walks the inputs (directories recursively; STAC Items and ItemCollections given
as JSON files, see :mod:`railwatch.imagery.stac`), skips scenes the store already holds for
this model and site (by content sha256, so a renamed file is recognised; remote scenes by STAC
item and checksum or ETag, see :mod:`railwatch.imagery.source`), and opens, observes and
records each remaining scene in its own transaction. A scene that cannot be used is one line on
stderr (``file: reason``) and a ``rejected`` row in the store; the batch goes on. Killed at any
moment, a batch loses nothing committed; rerun, it resumes where it stopped.

:class:`BatchDriver` is the store's side of a batch (identify, skip, record, tally), shared by
the serial loop here and the Dask cluster in :mod:`railwatch.batch.cluster`, where only
:func:`observe_source` runs on the workers.
"""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from railwatch.detect.observation import DetectorLike, Observation, observe_scene
from railwatch.errors import RailwatchError, SceneError
from railwatch.imagery.scene import open_scene
from railwatch.imagery.source import SceneSource
from railwatch.imagery.stac import StacItemError, is_stac_file, read_stac
from railwatch.site import Site
from railwatch.store.database import Store
from railwatch.store.identity import scene_identity
from railwatch.store.records import ModelRecord

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchDriver",
    "BatchSettings",
    "BatchSummary",
    "Rejection",
    "SceneOutcome",
    "find_images",
    "find_scenes",
    "observe_source",
    "run_batch",
]

#: File suffixes taken as imagery when walking directories (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".vrt", ".jp2")


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """``force``: recount scenes already in the store; ``progress``: show the progress bar;
    ``asset``: the asset of STAC items to read (default: visual, analytic, first GeoTIFF)."""

    force: bool = False
    progress: bool = True
    asset: str | None = None


class SceneOutcome(enum.Enum):
    """What became of a usable scene of a batch (an unusable one is a :class:`Rejection`)."""

    COUNTED = "counted"
    ALREADY_STORED = "already_stored"  # counted before with this model and site: skipped


@dataclass(frozen=True, slots=True)
class Rejection:
    """A scene that could not be used: where it is, machine-readable reason, message."""

    source: SceneSource
    reason: str
    message: str

    def line(self) -> str:
        return f"{self.source.href}: {self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a batch did."""

    run_id: int
    counted: tuple[SceneSource, ...] = ()
    skipped: tuple[SceneSource, ...] = ()
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


def find_scenes(
    inputs: Iterable[Path | SceneSource], asset: str | None = None
) -> tuple[list[SceneSource], list[Rejection]]:
    """The scenes of the inputs, and the inputs that give none.

    Image files given directly or found in directories (:func:`find_images`); the items of
    STAC files (``.json``, ``.geojson``) given directly — JSON files inside directories are
    not read, they are often STAC side-cars of images found there; sources as they are.
    Duplicates (same file or URL) are dropped.
    """
    sources: list[SceneSource] = []
    problems: list[Rejection] = []
    files: list[Path] = []
    for item in inputs:
        if isinstance(item, SceneSource):
            sources.append(item)
        elif item.is_file() and is_stac_file(item):
            try:
                found = read_stac(item, asset)
            except StacItemError as exc:
                problems.append(Rejection(SceneSource.local(item), exc.reason, exc.message))
                continue
            sources += found.sources
            problems += [
                Rejection(SceneSource(p.path, p.path.rsplit("/", 1)[-1]), p.reason, p.message)
                for p in found.problems
            ]
        else:
            files.append(item)
    sources += [SceneSource.local(p) for p in find_images(files)]
    seen: set[str] = set()
    unique = []
    for source in sources:
        if source.location not in seen:
            seen.add(source.location)
            unique.append(source)
    return unique, problems


def _stderr_line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def observe_source(source: SceneSource, site: Site, detector: DetectorLike) -> Observation | Rejection:
    """Open and observe one scene, touching no store: what a cluster worker runs per scene."""
    try:
        scene = open_scene(source, site.crs, site.aoi_local)
        return observe_scene(scene, site, detector)
    except SceneError as exc:
        return Rejection(source, exc.reason, exc.message)
    except RailwatchError as exc:
        return Rejection(source, "unusable", str(exc))


class BatchDriver:
    """The store's side of one batch: the run row, which scenes to count, recording each
    outcome in its own transaction, the progress bar and the tally.

    Use: iterate :meth:`pending` (scenes to count, with their identity; scenes already
    counted are skipped and unidentifiable ones rejected on the way), hand each outcome to
    :meth:`done` in any order, then :meth:`finish`. Only the driver writes to the store.
    """

    def __init__(
        self,
        inputs: Sequence[Path | SceneSource],
        site: Site,
        store: Store,
        model: ModelRecord,
        settings: BatchSettings,
        parameters: dict[str, object],
        say: Callable[[str], None] = _stderr_line,
    ) -> None:
        self.site, self.store, self.model, self.settings, self.say = site, store, model, settings, say
        self.sources, problems = find_scenes(inputs, settings.asset)
        self.inputs = len(self.sources) + len(problems)
        self.run_id = store.start_run(
            model, site,
            {"inputs": [str(getattr(p, "href", p)) for p in inputs], "scenes": self.inputs,
             "force": settings.force, **parameters},
        )
        self.counted: list[SceneSource] = []
        self.skipped: list[SceneSource] = []
        self.rejected: list[Rejection] = []
        self._t0 = time.perf_counter()
        self._bar = tqdm(total=self.inputs, unit="scene", disable=not settings.progress,
                         file=sys.stderr, dynamic_ncols=True)
        for problem in problems:
            self._reject(problem, None)

    def pending(self) -> Iterator[tuple[SceneSource, str]]:
        """Scenes to count and their identity in the store, in input order."""
        for source in self.sources:
            self._bar.set_description(source.name[:40])
            try:
                digest = scene_identity(source)
            except SceneError as exc:  # a remote scene that cannot be reached
                self._reject(Rejection(source, exc.reason, exc.message), None)
                continue
            except OSError as exc:
                self._reject(Rejection(source, "unreadable",
                                       f"cannot read the file ({exc.strerror or exc})"), None)
                continue
            known = self.store.find_scene(digest, self.model.sha256, self.site.name)
            if known is not None and known.status == "counted" and not self.settings.force:
                local = source.path
                if local is not None and Path(known.path) != local.resolve() \
                        and not Path(known.path).exists():
                    self.store.note_path(known.id, local)
                self._tally(SceneOutcome.ALREADY_STORED, source)
                continue
            yield source, digest

    def done(self, source: SceneSource, digest: str, outcome: Observation | Rejection) -> None:
        """Record one scene's outcome (its own transaction) and count it."""
        if isinstance(outcome, Rejection):
            self._reject(outcome, digest)
        else:
            fresh = self.store.record_scene(self.run_id, outcome, digest, self.site,
                                            force=self.settings.force)
            self._tally(SceneOutcome.COUNTED if fresh else SceneOutcome.ALREADY_STORED, source)

    def finish(self) -> BatchSummary:
        """Close the run row and the progress bar; what the batch did."""
        self._bar.close()
        summary = BatchSummary(
            self.run_id, tuple(self.counted), tuple(self.skipped), tuple(self.rejected),
            time.perf_counter() - self._t0, self.inputs,
        )
        self.store.finish_run(self.run_id, {
            "counted": len(self.counted), "skipped": len(self.skipped),
            "rejected": len(self.rejected), "seconds": round(summary.seconds, 2),
        })
        return summary

    def _reject(self, rejection: Rejection, digest: str | None) -> None:
        """Record a rejection (``digest``: the scene's identity, None when it has none)."""
        self.store.record_rejection(
            self.run_id, rejection.source, digest, self.model.sha256, self.site.name,
            rejection.reason, rejection.message,
        )
        self._tally(rejection)

    def _tally(self, outcome: SceneOutcome | Rejection, source: SceneSource | None = None) -> None:
        if isinstance(outcome, Rejection):
            self.rejected.append(outcome)
            self.say(outcome.line())
        elif source is not None:
            (self.counted if outcome is SceneOutcome.COUNTED else self.skipped).append(source)
        self._bar.update(1)
        minutes = (time.perf_counter() - self._t0) / 60
        if minutes > 0:
            self._bar.set_postfix_str(f"{len(self.counted) / minutes:.1f} scenes/min")


def run_batch(
    inputs: Sequence[Path | SceneSource],
    site: Site,
    detector: DetectorLike,
    store: Store,
    model: ModelRecord | None = None,
    settings: BatchSettings | None = None,
    say: Callable[[str], None] = _stderr_line,
) -> BatchSummary:
    """Count every scene of ``inputs`` not yet in the store, one after another; see the module
    docstring (:func:`railwatch.batch.cluster.run_batch_on_cluster` spreads them on a cluster).

    ``model`` describes the detector's model for the store (its sha256 must be the detector's;
    default: :meth:`ModelRecord.describing` the detector). ``say`` receives one line per
    rejected scene (default: stderr, above the progress bar).
    """
    s = settings or BatchSettings()
    model = model or ModelRecord.describing(detector)
    if model.sha256 != detector.model_sha256:
        raise ValueError("the model record does not describe this detector (sha256 differs)")
    driver = BatchDriver(inputs, site, store, model, s, {"gsd": detector.gsd}, say)
    for source, digest in driver.pending():
        driver.done(source, digest, observe_source(source, site, detector))
    return driver.finish()
