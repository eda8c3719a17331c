"""Reported figures: counts of rail cars published by analysts and the press, with their sources.

Declared as data (``railwatch/data/reported_figures.csv``), not code. Columns:

- ``date``: ``YYYY-MM-DD`` (the image date) or a range ``YYYY-MM-DD/YYYY-MM-DD`` (inclusive).
- ``site``: the site name (e.g. ``tumangang_khasan``); ``zone``: a zone of that site, or ``any``.
- ``class``: a railwatch class, or ``any`` (any rail car: the classes are summed).
- ``count``: the number reported.
- ``qualifier``: ``at_least`` (a lower bound: N or more), ``approximately`` (± ``tolerance``, 10%
  unless the optional ``tolerance`` column says otherwise), ``at_most`` (a ceiling: N or fewer),
  ``up_to`` or ``as_many_as`` (an approximate upper value, as the press uses it: around N or
  fewer, so N + 1 does not contradict it: 0 to N × (1 + ``tolerance``)).
- ``quantity``: ``snapshot`` (cars present at one moment, in one image) or ``weekly`` (unique
  cars present during a week).
- ``source`` and ``url``: who published it (``url`` may be empty where no stable link is known).
- ``note`` (optional): anything a reader must know to interpret the figure.

Users pass their own table with ``--reported``; a malformed one raises
:class:`ReportedFiguresError` naming the file, the row and what to fix.
"""

from __future__ import annotations

import csv
import enum
import math
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TypeVar

from railwatch.classes import CLASSES
from railwatch.errors import RailwatchError

__all__ = [
    "ANY",
    "DEFAULT_TOLERANCE",
    "REQUIRED_COLUMNS",
    "Qualifier",
    "Quantity",
    "ReportedFigure",
    "ReportedFiguresError",
    "bundled_reported_path",
    "load_reported",
]

_E = TypeVar("_E", bound=enum.StrEnum)

#: Wildcard for ``zone`` and ``class``.
ANY = "any"

#: Relative half-width of "approximately" unless a row says otherwise.
DEFAULT_TOLERANCE = 0.10

REQUIRED_COLUMNS: tuple[str, ...] = (
    "date", "site", "zone", "class", "count", "qualifier", "quantity", "source", "url",
)


class ReportedFiguresError(RailwatchError, ValueError):
    """A reported-figures table is missing, unreadable or malformed."""


class Qualifier(enum.StrEnum):
    """How the reported number bounds the true one."""

    AT_LEAST = "at_least"
    APPROXIMATELY = "approximately"
    AT_MOST = "at_most"
    UP_TO = "up_to"
    AS_MANY_AS = "as_many_as"


class Quantity(enum.StrEnum):
    """What was counted: cars present at one moment, or unique cars present during a week."""

    SNAPSHOT = "snapshot"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class ReportedFigure:
    """One reported figure. ``start == end`` for a single image date."""

    start: date
    end: date
    site: str
    zone: str
    class_name: str
    count: float
    qualifier: Qualifier
    quantity: Quantity
    source: str
    url: str = ""
    note: str = ""
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date range ends before it starts ({self.start}/{self.end})")
        if self.class_name != ANY and self.class_name not in CLASSES:
            raise ValueError(
                f"class {self.class_name!r} is not one of {', '.join(CLASSES)} or {ANY!r}"
            )
        if not (math.isfinite(self.count) and self.count >= 0):
            raise ValueError(f"count must be a non-negative number, got {self.count}")
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"tolerance must be a fraction in [0, 1), got {self.tolerance}")
        if not self.site or not self.zone or not self.source:
            raise ValueError("site, zone and source must not be empty")

    @property
    def date_label(self) -> str:
        return self.start.isoformat() if self.start == self.end else (
            f"{self.start.isoformat()}/{self.end.isoformat()}"
        )

    @property
    def is_range(self) -> bool:
        return self.start != self.end

    def bounds(self) -> tuple[float, float]:
        """The interval of true values the figure asserts (``inf`` where unbounded)."""
        if self.qualifier is Qualifier.APPROXIMATELY:
            return self.count * (1 - self.tolerance), self.count * (1 + self.tolerance)
        if self.qualifier is Qualifier.AT_LEAST:
            return self.count, math.inf
        if self.qualifier in (Qualifier.UP_TO, Qualifier.AS_MANY_AS):  # an approximate upper value
            return 0.0, self.count * (1 + self.tolerance)
        return 0.0, self.count


def bundled_reported_path() -> Path:
    """The reported-figures table shipped with railwatch."""
    return Path(str(resources.files("railwatch") / "data" / "reported_figures.csv"))


def load_reported(path: str | Path | None = None) -> tuple[ReportedFigure, ...]:
    """Read a reported-figures table (default: the bundled one)."""
    path = Path(path) if path is not None else bundled_reported_path()
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ReportedFiguresError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header must hold "
                    f"{','.join(REQUIRED_COLUMNS)} (and optionally note,tolerance)"
                )
            rows = [(reader.line_num, row) for row in reader]  # a row's (last) line
    except FileNotFoundError as exc:
        raise ReportedFiguresError(f"{path}: no such file; pass --reported with a CSV") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportedFiguresError(f"{path}: not a readable CSV file ({exc})") from exc
    return tuple(_parse_row(path, line, row, len(header)) for line, row in rows)


def _parse_row(
    path: Path, line: int, raw: dict[str | None, str | list[str] | None], n_columns: int
) -> ReportedFigure:
    where = f"{path}: line {line}"
    extra = raw.get(None)
    if extra is not None:
        n = n_columns + (len(extra) if isinstance(extra, list) else 1)
        raise ReportedFiguresError(
            f"{where}: {n} fields, but the header has {n_columns}; quote a field that holds a "
            'comma ("a, b") or remove the surplus fields'
        )
    row = {(k or "").strip(): v.strip() if isinstance(v, str) else "" for k, v in raw.items()}
    start, end = _parse_dates(where, row["date"])
    try:
        count = float(row["count"])
    except ValueError:
        raise ReportedFiguresError(f"{where}: count {row['count']!r} is not a number") from None
    qualifier = _parse_enum(where, "qualifier", row["qualifier"], Qualifier)
    quantity = _parse_enum(where, "quantity", row["quantity"], Quantity)
    tolerance = DEFAULT_TOLERANCE
    if row.get("tolerance"):
        try:
            tolerance = float(row["tolerance"])
        except ValueError:
            raise ReportedFiguresError(
                f"{where}: tolerance {row['tolerance']!r} is not a fraction (e.g. 0.1)"
            ) from None
    try:
        return ReportedFigure(
            start=start, end=end, site=row["site"], zone=row["zone"] or ANY,
            class_name=row["class"] or ANY, count=count, qualifier=qualifier,
            quantity=quantity, source=row["source"], url=row["url"], note=row.get("note", ""),
            tolerance=tolerance,
        )
    except ValueError as exc:
        raise ReportedFiguresError(f"{where}: {exc}; fix the row") from None


def _parse_dates(where: str, text: str) -> tuple[date, date]:
    parts = text.split("/")
    try:
        if len(parts) == 1:
            d = date.fromisoformat(parts[0])
            return d, d
        if len(parts) == 2:
            return date.fromisoformat(parts[0]), date.fromisoformat(parts[1])
    except ValueError:
        pass
    raise ReportedFiguresError(
        f"{where}: date {text!r} is neither YYYY-MM-DD nor a range YYYY-MM-DD/YYYY-MM-DD"
    )


def _parse_enum(where: str, column: str, text: str, kind: type[_E]) -> _E:
    try:
        return kind(text)
    except ValueError:
        options = ", ".join(k.value for k in kind)
        raise ReportedFiguresError(
            f"{where}: {column} {text!r} is not one of {options}; fix the row"
        ) from None
