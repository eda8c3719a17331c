"""What the store holds, as frozen records: models, runs, scenes, rejections; and the site as
the GeoJSON the store keeps of it."""

from __future__ import annotations

import json
import platform
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import shapely
from shapely.geometry import mapping

from railwatch import __version__
from railwatch.classes import CLASSES
from railwatch.count.errormatrix import ErrorMatrix
from railwatch.detect.manifest import ClassMetrics
from railwatch.errors import RailwatchError
from railwatch.site import Site

__all__ = [
    "SCENE_COLUMNS",
    "ModelRecord",
    "RejectionRecord",
    "RunRecord",
    "SceneRecord",
    "SceneStatus",
    "StoreError",
    "as_float",
    "as_int",
    "now_iso",
    "parse_time",
    "run_record",
    "scene_record",
    "site_geojson",
    "software_versions",
    "str_or_none",
]

SceneStatus = Literal["counted", "rejected"]


class StoreError(RailwatchError, OSError):
    """The store file cannot be opened, is not a railwatch store, or lacks what was asked."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model as the store knows it: identity, name and measured per-class accuracy, and the
    whole system's error matrix when one was measured (it then corrects the counts)."""

    sha256: str
    name: str
    metrics: Mapping[str, ClassMetrics]
    matrix: ErrorMatrix | None = None

    def __post_init__(self) -> None:
        if not self.sha256:
            raise ValueError("a model needs a sha256")
        missing = set(CLASSES) - set(self.metrics)
        if missing:
            raise ValueError(f"model {self.name!r} lacks metrics for {sorted(missing)}")

    @classmethod
    def unmeasured(cls, sha256: str, name: str = "unknown") -> ModelRecord:
        """A model with no measured accuracy: precision and recall taken as 1."""
        return cls(sha256, name, {c: ClassMetrics(1.0, 1.0) for c in CLASSES})

    @classmethod
    def describing(cls, detector: object) -> ModelRecord:
        """The record of a detector's model: its manifest's name and measured accuracy, or
        :meth:`unmeasured` for a detector without a manifest."""
        sha256 = str(getattr(detector, "model_sha256", ""))
        manifest = getattr(detector, "manifest", None)
        if manifest is None:
            return cls.unmeasured(sha256)
        system = manifest.accuracy.system or {}
        matrix = system.get("error_matrix")
        try:
            parsed = ErrorMatrix.from_json(matrix) if isinstance(matrix, dict) else None
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{manifest.folder}/manifest.json: malformed error matrix ({exc})") from exc
        if sha256 != manifest.sha256:  # a changed file, trusted: its accuracy was never measured
            return cls.unmeasured(sha256, f"{manifest.name} (sha256 {sha256[:12]}…, not the "
                                          "manifest's: a changed file loaded with --trust-model)")
        return cls(sha256, manifest.name, manifest.class_metrics(), parsed)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One batch run."""

    id: int
    started: datetime
    finished: datetime | None
    model_sha256: str
    site: str
    parameters: Mapping[str, object]
    versions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SceneRecord:
    """A scene row. Counted scenes have acquisition, CRS, gsd and footprint; rejected may not."""

    id: int
    content_sha256: str
    name: str
    path: str
    acquired: datetime | None
    crs: str | None
    gsd: float | None
    footprint_wkt: str | None
    #: Rendered by railwatch's simulator; ``None``: counted before the store recorded it.
    simulated: bool | None
    status: SceneStatus
    reason: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """A scene that could not be used, and why."""

    name: str
    path: str
    reason: str
    message: str
    recorded: datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def software_versions() -> dict[str, str]:
    """Versions of railwatch and the libraries whose behaviour shapes the numbers."""
    import rasterio

    return {
        "railwatch": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "shapely": shapely.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "sqlite": sqlite3.sqlite_version,
    }


def site_geojson(site: Site) -> dict[str, object]:
    """The site as a GeoJSON FeatureCollection (EPSG:4326), as ``load_site`` reads it."""

    def feature(role: str, name: str, geom: shapely.Geometry) -> dict[str, object]:
        return {"type": "Feature", "properties": {"role": role, "name": name},
                "geometry": mapping(geom)}

    return {
        "type": "FeatureCollection",
        "name": site.name,
        "description": site.description,
        "features": [
            feature("aoi", site.name, site.aoi),
            *(feature("track", t.name, t.line) for t in site.tracks),
            *(feature("zone", z.name, z.polygon) for z in site.zones),
        ],
    }


SCENE_COLUMNS = (
    "id, content_sha256, name, path, acquired, crs, gsd, footprint_wkt, status, reason, message, "
    "simulated"
)


def scene_record(row: Sequence[object]) -> SceneRecord:
    status = str(row[8])
    if status not in ("counted", "rejected"):
        raise StoreError(f"scene row {row[0]} has an unknown status {status!r}; is the store from "
                         "a newer railwatch?")
    return SceneRecord(
        id=as_int(row[0]),
        content_sha256=str(row[1]),
        name=str(row[2]),
        path=str(row[3]),
        acquired=parse_time(str_or_none(row[4])),
        crs=str_or_none(row[5]),
        gsd=None if row[6] is None else as_float(row[6]),
        footprint_wkt=str_or_none(row[7]),
        status="counted" if status == "counted" else "rejected",
        reason=str_or_none(row[9]),
        message=str_or_none(row[10]),
        simulated=None if row[11] is None else bool(row[11]),
    )


def run_record(row: Sequence[object]) -> RunRecord:
    return RunRecord(
        id=as_int(row[0]),
        started=datetime.fromisoformat(str(row[1])),
        finished=parse_time(str_or_none(row[2])),
        model_sha256=str(row[3]),
        site=str(row[4]),
        parameters=json.loads(str(row[5])),
        versions=json.loads(str(row[6])),
    )


def as_int(value: object) -> int:
    if not isinstance(value, int):
        raise StoreError(f"expected an integer in the store, found {value!r}")
    return value


def as_float(value: object) -> float:
    if not isinstance(value, int | float):
        raise StoreError(f"expected a number in the store, found {value!r}")
    return float(value)


def str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
