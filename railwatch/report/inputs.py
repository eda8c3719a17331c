"""What a report is made of: its settings, its inputs read from the store, and the tables
computed from them (frames, weekly series, comparisons)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from railwatch.count.frames import DEFAULT_MIN_COVERAGE, CountedScene, frame_rows, frames_table
from railwatch.count.weekly import SeriesSettings, weekly_frame, weekly_rows
from railwatch.report.comparison import (
    Comparison,
    ComparisonSettings,
    compare,
)
from railwatch.report.reported import ReportedFigure
from railwatch.site import Site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord, RejectionRecord, RunRecord, SceneRecord, StoreError

__all__ = ["ReportInputs", "ReportSettings", "ReportTables", "build_tables", "iso_utc", "load_inputs"]


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """What goes into the outputs and how they are computed."""

    min_coverage: float = DEFAULT_MIN_COVERAGE
    comparison: ComparisonSettings = field(default_factory=ComparisonSettings)
    quicklooks: bool = True
    quicklook_max_side: int = 1600
    #: Crops of the busiest parts of each quicklook's zone, at the scene's native resolution.
    quicklook_crops: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError("min_coverage must be in (0, 1]")
        if self.quicklook_max_side < 64:
            raise ValueError("quicklook_max_side must be at least 64 pixels")
        if self.quicklook_crops < 0:
            raise ValueError("quicklook_crops must be non-negative")

    @property
    def series(self) -> SeriesSettings:
        return SeriesSettings(min_coverage=self.min_coverage, z=self.comparison.z)


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything a report is made of, read from a store."""

    site: Site
    model: ModelRecord
    run: RunRecord
    scenes: tuple[CountedScene, ...]
    records: tuple[SceneRecord, ...]
    rejections: tuple[RejectionRecord, ...]
    figures: tuple[ReportedFigure, ...]

    @property
    def zones(self) -> list[str]:
        return list(self.site.zone_names)


@dataclass(frozen=True, slots=True)
class ReportTables:
    """The computed tables: frames, weekly, comparisons."""

    frames: pd.DataFrame
    weekly: pd.DataFrame
    comparisons: tuple[Comparison, ...]


def load_inputs(
    store: Store,
    figures: Sequence[ReportedFigure],
    model_sha256: str | None = None,
    site_name: str | None = None,
) -> ReportInputs:
    """Read a model's and site's scenes from the store (default: those of the latest run)."""
    run = store.latest_run()
    if run is None:
        raise StoreError(f"{store.path}: the store holds no run yet; run `railwatch count` first")
    model_sha256 = model_sha256 or run.model_sha256
    site = store.site(site_name or run.site)
    return ReportInputs(
        site=site,
        model=store.model(model_sha256),
        run=run,
        scenes=tuple(store.counted_scenes(model_sha256, site)),
        records=tuple(store.scenes(model_sha256, site.name)),
        rejections=tuple(store.rejections(model_sha256, site.name)),
        figures=tuple(figures),
    )


def build_tables(inputs: ReportInputs, settings: ReportSettings | None = None) -> ReportTables:
    """frames, weekly and comparison tables of the inputs."""
    s = settings or ReportSettings()
    zones = inputs.zones
    rows = [r for c in inputs.scenes for r in frame_rows(c, zones, s.min_coverage)]
    weeks = weekly_rows(inputs.scenes, zones, inputs.model.metrics, s.series,
                        matrix=inputs.model.matrix)
    comparisons = compare(
        inputs.figures, rows, weeks, inputs.model.metrics, inputs.site.name, zones, s.comparison,
        matrix=inputs.model.matrix, conditions={c.scene: (c.gsd, c.sun_elevation) for c in inputs.scenes},
    )
    return ReportTables(frames_table(rows), weekly_frame(weeks), tuple(comparisons))


def iso_utc(t: datetime) -> str:
    """A time as ISO 8601 in UTC with a ``Z``."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")
