"""Counting a batch on a Dask cluster (``dask.distributed``): one task per scene.

A task opens one scene, observes it and returns the :class:`~railwatch.detect.observation.Observation`
(detections and coverage: small, picklable) or a :class:`~railwatch.batch.job.Rejection`. The
driver — the process that runs ``railwatch count --cluster`` — stays the store's only writer: it
identifies the scenes, never submits one the store already holds for this model, and commits
each outcome in its own transaction as its future completes (:class:`~railwatch.batch.job.BatchDriver`,
shared with the serial loop), so the guarantees of a serial batch hold: a driver killed at any
moment loses nothing committed, a rerun resumes, a rejected scene is one line on stderr and a
row in ``rejected.csv``.

Each worker process loads the model once (:func:`worker_detector`, cached per worker and
keyed by the :class:`ModelLoader`) and checks that its sha256 is the driver's. A worker that
dies mid-scene does not lose the batch: the scheduler runs the scene elsewhere; a scene that
kills workers twice (``distributed.scheduler.allowed-failures`` = 1, set for a local cluster) is
rejected with reason ``killed_worker``.

Workers must reach the scenes: local files on a shared file system at the same path, or URLs.
``dask`` is imported only when a cluster is used.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from railwatch.batch.job import (
    BatchDriver,
    BatchSettings,
    BatchSummary,
    Rejection,
    _stderr_line,
    observe_source,
)
from railwatch.detect.detector import DetectorSettings, load_detector
from railwatch.detect.observation import DetectorLike, Observation
from railwatch.errors import ModelIntegrityError
from railwatch.imagery.source import SceneSource
from railwatch.site import Site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "ALLOWED_FAILURES",
    "ClusterSpec",
    "DetectorFactory",
    "ModelLoader",
    "connect",
    "count_scene",
    "run_batch_on_cluster",
    "worker_detector",
]

#: Workers a scene may kill and still be retried: the second death rejects it.
ALLOWED_FAILURES = 1

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/]+:\d+/?$")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Where to count: ``workers`` local worker processes, or the scheduler at ``address``."""

    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if (self.workers is None) == (self.address is None):
            raise ValueError("give either a number of local workers or a scheduler address")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"a local cluster needs at least one worker, got {self.workers}")
        if self.address is not None and not _ADDRESS.match(self.address):
            raise ValueError(f"{self.address!r} is not a scheduler address like tcp://HOST:8786")

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        """``local:N`` (a local cluster of N worker processes) or ``tcp://HOST:PORT``."""
        text = text.strip()
        if m := _LOCAL.match(text):
            return cls(workers=int(m.group(1)))
        if _ADDRESS.match(text):
            return cls(address=text)
        raise ValueError(
            f"{text!r}: give local:N for N worker processes on this machine, or the address of a "
            "running Dask scheduler, e.g. tcp://10.0.0.5:8786"
        )

    def threads_per_worker(self) -> int | None:
        """Model threads for each worker: a local cluster's workers share this machine's cores;
        ``None`` (every core of its machine) for a worker of a scheduler."""
        if self.workers is None:
            return None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.workers)

    def describe(self) -> str:
        return f"local:{self.workers}" if self.workers is not None else str(self.address)


class DetectorFactory(Protocol):
    """A picklable, hashable recipe a worker loads its detector from, and the sha256 the
    loaded model must have."""

    @property
    def sha256(self) -> str: ...

    def load(self) -> DetectorLike: ...


@dataclass(frozen=True, slots=True)
class ModelLoader:
    """How a worker loads the model: the driver's model options and the model's sha256.

    ``model=None`` is each worker's default model (``$RAILWATCH_MODEL_DIR`` or the shipped
    one); the sha256 check makes sure it is the driver's.
    """

    sha256: str
    model: Path | None = None
    trust: bool = False
    settings: DetectorSettings = field(default_factory=DetectorSettings)

    def load(self) -> DetectorLike:
        return load_detector(self.model, self.trust, self.settings)


_loaded: dict[object, DetectorLike] = {}


def worker_detector(factory: DetectorFactory) -> DetectorLike:
    """This process's detector for ``factory``: loaded on first use, then reused, so each
    worker loads the model once. Raises :class:`ModelIntegrityError` when the model loaded
    is not the one the driver counts with."""
    found = _loaded.get(factory)
    if found is None:
        found = factory.load()
        if found.model_sha256 != factory.sha256:
            raise ModelIntegrityError(
                f"worker pid {os.getpid()}: its model has sha256 {found.model_sha256[:12]}…, the "
                f"driver's {factory.sha256[:12]}…; give every worker the same model "
                "(--model on a shared path, or the same $RAILWATCH_MODEL_DIR)"
            )
        _loaded.clear()  # one model per worker at a time
        _loaded[factory] = found
    return found


def count_scene(source: SceneSource, site: Site, factory: DetectorFactory) -> Observation | Rejection:
    """One task: open and observe one scene on a worker (nothing is written there)."""
    return observe_source(source, site, worker_detector(factory))


def run_batch_on_cluster(
    inputs: Sequence[Path | SceneSource],
    site: Site,
    factory: DetectorFactory,
    store: Store,
    model: ModelRecord,
    cluster: ClusterSpec,
    settings: BatchSettings | None = None,
    say: Callable[[str], None] = _stderr_line,
    gsd: float | None = None,
) -> BatchSummary:
    """:func:`~railwatch.batch.job.run_batch` with the scenes spread over a Dask cluster.

    ``factory`` tells workers how to load the detector (:class:`ModelLoader` for a model
    folder); ``model`` describes it for the store and must carry the same sha256; ``gsd`` is
    recorded with the run. Scenes are submitted as soon as they are identified and recorded as
    they complete; the summary is the serial batch's. An error that is not the scene's (a
    worker with another model, a bug) stops the batch, as it would a serial one; what was
    committed stays.
    """
    from distributed import as_completed

    s = settings or BatchSettings()
    if model.sha256 != factory.sha256:
        raise ValueError("the model record does not describe this detector (sha256 differs)")
    with connect(cluster) as client:
        driver = BatchDriver(inputs, site, store, model, s,
                             {"gsd": gsd, "cluster": cluster.describe()}, say)
        pending: dict[Future[Observation | Rejection], tuple[SceneSource, str]] = {}
        completed = as_completed()
        try:
            for n, (source, digest) in enumerate(driver.pending()):
                # Workers may not share the driver's working folder: local paths go absolute.
                task = source if source.remote else replace(source, href=source.location)
                future = client.submit(count_scene, task, site, factory, pure=False,
                                       key=f"railwatch-scene-{n}-{digest[:12]}")
                pending[future] = (source, digest)
                completed.add(future)
            for future in completed:
                source, digest = pending.pop(future)
                driver.done(source, digest, _outcome(future, source))
                future.release()
        finally:
            for future in pending:
                future.cancel()
        return driver.finish()


def _outcome(future: Future[Observation | Rejection], source: SceneSource) -> Observation | Rejection:
    """A finished task's result, or the rejection of a scene that killed its workers."""
    from distributed import KilledWorker

    try:
        result = future.result()
    except KilledWorker:
        return Rejection(
            source, "killed_worker",
            f"killed {ALLOWED_FAILURES + 1} workers that were counting it (out of memory, or a "
            "crash in GDAL or the model); count it alone (railwatch count FILE) to see why",
        )
    if isinstance(result, Rejection):  # named as the driver was given it
        return Rejection(source, result.reason, result.message)
    return result


@contextmanager
def connect(spec: ClusterSpec) -> Iterator[Client]:
    """A Dask client on the scheduler at ``spec.address``, or on a new local cluster of
    ``spec.workers`` processes (one task at a time each) that is shut down on exit."""
    import dask
    from distributed import Client, LocalCluster

    if spec.address is not None:
        with Client(spec.address) as client:
            yield client
        return
    # One scene per worker thread at a time: a worker's death then implicates only the scene
    # it was counting, not scenes queued behind it.
    # The workers' scratch space (spill files, locks) in a folder of this run's own, removed
    # afterwards: a run leaves nothing in the system's temp folder.
    scratch = tempfile.mkdtemp(prefix="railwatch-dask-")
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                              "distributed.scheduler.worker-saturation": 1.0,
                              "temporary-directory": scratch}):
            cluster = LocalCluster(
                n_workers=spec.workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR, local_directory=scratch,
            )
        with cluster, Client(cluster) as client:
            yield client
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
