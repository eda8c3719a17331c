"""The embedded store: one SQLite file (standard library ``sqlite3``, WAL mode).

Tables:

- ``sites``: the site each scene was counted on (its GeoJSON, so outputs can be rebuilt
  without the original file) and its local CRS.
- ``models``: each model's sha256, name and measured per-class precision and recall.
- ``runs``: one row per batch: model, site, parameters, software versions, start and end time,
  summary. A run killed mid-way keeps ``finished`` empty; its committed scenes stay.
- ``scenes``: keyed by (content sha256, model sha256, site): a renamed or moved file is the
  same scene. Path, name, acquisition time (UTC), CRS, native ground sample distance, footprint
  (WKT, site CRS), whether it is simulated (its STAC sidecar's ``railwatch:simulated``; NULL for
  scenes counted before schema 3), status ``counted``.
- ``rejections``: keyed by (path, model sha256, site), so that every rejected file is listed,
  byte-identical ones too, and one whose bytes could not even be read (content sha256 empty):
  reason and message. Counting a file clears its rejection.
- ``detections``: every detected car of a counted scene: class, confidence, zone, corners (site CRS).
- ``counts``: per counted scene, zone and class: detector count and the zone's coverage.

Each scene is written in one ``BEGIN IMMEDIATE`` transaction: a process killed at any moment
leaves either the whole scene or nothing. Several processes may write at once: SQLite's lock
serialises the transactions and ``busy_timeout`` makes each wait its turn.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from railwatch.classes import CLASSES
from railwatch.count.errormatrix import ErrorMatrix
from railwatch.count.frames import CountedScene, frame_rows
from railwatch.detect.detections import Detections
from railwatch.detect.manifest import ClassMetrics
from railwatch.detect.observation import Observation
from railwatch.imagery.source import SceneSource
from railwatch.site import Site, site_from_geojson
from railwatch.store.records import (
    SCENE_COLUMNS,
    ModelRecord,
    RejectionRecord,
    RunRecord,
    SceneRecord,
    SceneStatus,
    StoreError,
    now_iso,
    run_record,
    scene_record,
    site_geojson,
    software_versions,
)
from railwatch.store.schema import create_or_migrate

__all__ = ["DEFAULT_STORE_NAME", "Store"]

#: File name of the store inside the output folder when ``--db`` is not given.
DEFAULT_STORE_NAME = "railwatch.sqlite"


class Store:
    """A railwatch store on disk. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._set_wal()
            self._db.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.OperationalError, OSError) as exc:
            raise StoreError(
                f"{self.path}: cannot open the store ({exc}); pass --db with a writable path "
                "to a railwatch store, or a new file name"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path}: not a railwatch store ({exc}); pass --db with another file"
            ) from exc
        self._create_schema()

    # -- plumbing -------------------------------------------------------------------------

    def _set_wal(self) -> None:
        for attempt in range(50):
            try:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch the store to WAL mode ({mode})")
                return
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _create_schema(self) -> None:
        try:
            with self._transaction() as db:
                create_or_migrate(db, self.path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path}: not a railwatch store ({exc}); pass --db with another file"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    def start_run(
        self, model: ModelRecord, site: Site, parameters: Mapping[str, object]
    ) -> int:
        """Register the model and site (if new) and open a run; returns its id."""
        metrics: dict[str, object] = {
            c: {"precision": m.precision, "recall": m.recall} for c, m in model.metrics.items()
        }
        if model.matrix is not None:
            metrics["error_matrix"] = model.matrix.as_json()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO models VALUES (?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
                "name = excluded.name, class_metrics = excluded.class_metrics",
                (model.sha256, model.name, json.dumps(metrics, sort_keys=True)),
            )
            db.execute(
                "INSERT INTO sites VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "crs_wkt = excluded.crs_wkt, geojson = excluded.geojson",
                (site.name, site.crs.to_wkt(), json.dumps(site_geojson(site))),
            )
            cur = db.execute(
                "INSERT INTO runs (started, model_sha256, site, parameters, versions, pid) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now_iso(), model.sha256, site.name, json.dumps(dict(parameters), default=str),
                 json.dumps(software_versions()), os.getpid()),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, summary: Mapping[str, object]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                (now_iso(), json.dumps(dict(summary), default=str), run_id),
            )

    def find_scene(self, content_sha256: str, model_sha256: str, site: str) -> SceneRecord | None:
        row = self._db.execute(
            f"SELECT {SCENE_COLUMNS} FROM scenes WHERE content_sha256 = ? AND model_sha256 = ? "
            "AND site = ?",
            (content_sha256, model_sha256, site),
        ).fetchone()
        return scene_record(row) if row else None

    def is_counted(self, content_sha256: str, model_sha256: str, site: str) -> bool:
        found = self.find_scene(content_sha256, model_sha256, site)
        return found is not None and found.status == "counted"

    def note_path(self, scene_id: int, path: Path) -> None:
        """Remember where a known scene now lives (a renamed or moved file)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE scenes SET path = ?, name = ? WHERE id = ?",
                (str(path.resolve()), path.name, scene_id),
            )

    def record_scene(
        self,
        run_id: int,
        observation: Observation,
        content_sha256: str,
        site: Site,
        force: bool = False,
    ) -> bool:
        """Write one counted scene (scene, detections, counts) in one transaction.

        Returns False, writing nothing, when the scene is already counted with this model and
        site (another process may have just done it) and ``force`` is not set.
        """
        scene, dets = observation.scene, observation.detections
        key = (content_sha256, observation.model_sha256, site.name)
        naming = dets.naming
        counted = CountedScene(scene.name, scene.acquisition.time, observation.coverage, dets,
                               float(scene.native_gsd), site.sun_elevation(scene.acquisition.time))
        count_rows = [  # raw detector counts of every zone, observed or not
            (r.zone, r.class_name, int(r.count), r.coverage)
            for r in frame_rows(counted, site.zone_names, min_coverage=0.0)
        ]
        names = dets.class_name if len(dets) else np.empty(0, dtype=object)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, status FROM scenes WHERE content_sha256 = ? AND model_sha256 = ? "
                "AND site = ?",
                key,
            ).fetchone()
            if row is not None and row[1] == "counted" and not force:
                return False
            if row is not None:
                db.execute("DELETE FROM scenes WHERE id = ?", (row[0],))
            db.execute("DELETE FROM rejections WHERE (path = ? OR content_sha256 = ?) AND "
                       "model_sha256 = ? AND site = ?",
                       (scene.location, content_sha256, key[1], site.name))
            cur = db.execute(
                "INSERT INTO scenes (content_sha256, model_sha256, site, name, path, acquired, "
                "crs, gsd, footprint_wkt, simulated, status, run_id, recorded) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'counted', ?, ?)",
                (*key, scene.name, scene.location,
                 scene.acquisition.time.astimezone(UTC).isoformat(), scene.crs.to_string(),
                 float(scene.native_gsd), scene.footprint.wkt, int(scene.simulated), run_id,
                 now_iso()),
            )
            scene_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO detections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (scene_id, i, str(names[i]), float(dets.confidence[i]),
                     None if dets.zone[i] is None else str(dets.zone[i]),
                     *(float(v) for v in dets.corners[i].ravel()),
                     None if np.isnan(naming[i]) else float(naming[i]))
                    for i in range(len(dets))
                ),
            )
            db.executemany(
                "INSERT INTO counts VALUES (?, ?, ?, ?, ?)",
                ((scene_id, *row) for row in count_rows),
            )
        return True

    def record_rejection(
        self,
        run_id: int,
        path: Path | SceneSource,
        content_sha256: str | None,
        model_sha256: str,
        site: str,
        reason: str,
        message: str,
    ) -> None:
        """Record (or refresh) the rejection of the scene at ``path`` (its file, or its source:
        a local file or a URL); ``content_sha256`` is ``None`` when its bytes could not be read
        or a remote scene not be identified. Nothing is recorded when the same bytes are
        already counted with this model and site."""
        source = path if isinstance(path, SceneSource) else SceneSource.local(path)
        with self._transaction() as db:
            if content_sha256 is not None and db.execute(
                "SELECT 1 FROM scenes WHERE content_sha256 = ? AND model_sha256 = ? AND site = ? "
                "AND status = 'counted'", (content_sha256, model_sha256, site),
            ).fetchone():
                return
            db.execute(
                "INSERT INTO rejections (path, model_sha256, site, name, content_sha256, reason, "
                "message, run_id, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path, model_sha256, site) DO UPDATE SET name = excluded.name, "
                "content_sha256 = excluded.content_sha256, reason = excluded.reason, "
                "message = excluded.message, run_id = excluded.run_id, "
                "recorded = excluded.recorded",
                (source.location, model_sha256, site, source.name, content_sha256, reason,
                 message, run_id, now_iso()),
            )

    # -- reading --------------------------------------------------------------------------

    def latest_run(self) -> RunRecord | None:
        row = self._db.execute(
            "SELECT id, started, finished, model_sha256, site, parameters, versions FROM runs "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return run_record(row) if row else None

    def runs(self) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT id, started, finished, model_sha256, site, parameters, versions FROM runs "
            "ORDER BY id"
        ).fetchall()
        return [run_record(r) for r in rows]

    def model(self, sha256: str) -> ModelRecord:
        row = self._db.execute(
            "SELECT sha256, name, class_metrics FROM models WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no model {sha256[:12]}… in the store")
        stored = json.loads(row[2])
        metrics: dict[str, ClassMetrics] = {
            c: ClassMetrics(float(stored[c]["precision"]), float(stored[c]["recall"]))
            for c in CLASSES if c in stored
        }
        matrix = ErrorMatrix.from_json(stored["error_matrix"]) if "error_matrix" in stored else None
        return ModelRecord(row[0], row[1], metrics, matrix)

    def site(self, name: str) -> Site:
        row = self._db.execute("SELECT geojson FROM sites WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no site {name!r} in the store")
        return site_from_geojson(json.loads(row[0]), default_name=name, source=f"{self.path}:{name}")

    def scenes(
        self, model_sha256: str, site: str, status: SceneStatus | None = None
    ) -> list[SceneRecord]:
        """Scene rows for a model and site, in acquisition order (then by name)."""
        sql = f"SELECT {SCENE_COLUMNS} FROM scenes WHERE model_sha256 = ? AND site = ?"
        args: list[object] = [model_sha256, site]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self._db.execute(sql + " ORDER BY acquired IS NULL, acquired, name", args).fetchall()
        return [scene_record(r) for r in rows]

    def rejections(self, model_sha256: str, site: str) -> list[RejectionRecord]:
        rows = self._db.execute(
            "SELECT name, path, reason, message, recorded FROM rejections WHERE model_sha256 = ? "
            "AND site = ? ORDER BY name, path",
            (model_sha256, site),
        ).fetchall()
        return [
            RejectionRecord(r[0], r[1], r[2] or "", r[3] or "", datetime.fromisoformat(r[4]))
            for r in rows
        ]

    def counted_scenes(self, model_sha256: str, site: Site) -> list[CountedScene]:
        """Every counted scene of this model and site with its detections and zone coverage."""
        records = self.scenes(model_sha256, site.name, status="counted")
        out = []
        for rec in records:
            cov = dict(
                self._db.execute(
                    "SELECT zone, MAX(coverage) FROM counts WHERE scene_id = ? GROUP BY zone",
                    (rec.id,),
                ).fetchall()
            )
            acquired = rec.acquired or datetime.min.replace(tzinfo=UTC)
            out.append(
                CountedScene(rec.name, acquired, cov, self._detections(rec, site.crs),
                             math.nan if rec.gsd is None else rec.gsd,
                             site.sun_elevation(acquired) if rec.acquired else math.nan)
            )
        return out

    def latest_detections(self, scene_name: str) -> Detections | None:
        """The boxes last counted on the scene of this file name (any model), in its site's CRS;
        ``None`` when the store never counted it. What an analyst's corrections are compared
        with: a box counted here and absent from the corrected file was deleted."""
        row = self._db.execute(
            f"SELECT {SCENE_COLUMNS}, site FROM scenes WHERE name = ? AND status = 'counted' "
            "ORDER BY id DESC LIMIT 1", (scene_name,),
        ).fetchone()
        if row is None:
            return None
        return self._detections(scene_record(row[:-1]), self.site(row[-1]).crs)

    def _detections(self, rec: SceneRecord, crs: CRS) -> Detections:
        rows = self._db.execute(
            "SELECT class, confidence, zone, x0, y0, x1, y1, x2, y2, x3, y3, class_confidence "
            "FROM detections "
            "WHERE scene_id = ? ORDER BY idx",
            (rec.id,),
        ).fetchall()
        if not rows:
            return Detections.empty(crs)
        index = {c: i for i, c in enumerate(CLASSES)}
        return Detections(
            corners=np.array([r[3:11] for r in rows], dtype=np.float64).reshape(-1, 4, 2),
            class_id=np.array([index[r[0]] for r in rows], dtype=np.int64),
            confidence=np.array([r[1] for r in rows], dtype=np.float64),
            zone=np.array([r[2] for r in rows], dtype=object),
            scene=np.full(len(rows), rec.name, dtype=object),
            crs=crs,
            class_confidence=np.array([np.nan if r[11] is None else r[11] for r in rows], dtype=np.float64),
        )

    def table_counts(self) -> dict[str, int]:
        """Row count of each table (for checks and the summary)."""
        tables: Sequence[str] = ("runs", "scenes", "rejections", "detections", "counts", "models",
                                 "sites")
        return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
