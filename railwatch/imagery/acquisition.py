"""When a scene was acquired: from a STAC sidecar, the raster's metadata tags, or its file name.

Never a guess: a scene with no time from any of these sources is rejected, and so is a scene
whose STAC sidecar is malformed (a broken sidecar is never skipped in silence for a lesser
source).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from railwatch.errors import BadSidecarError

__all__ = [
    "NO_TIME",
    "Acquisition",
    "TimeSource",
    "from_file_name",
    "from_stac_sidecar",
    "from_tags",
    "parse_datetime",
    "stac_sidecar",
    "stac_sidecar_properties",
]


class TimeSource(enum.StrEnum):
    """Where an acquisition time came from, in order of precedence."""

    STAC = "stac"
    TAG = "tag"
    FILE_NAME = "file_name"
    NONE = "none"  # accepted only where time does not matter (detect, evaluate)


#: The stand-in time of a scene opened without one (``TimeSource.NONE``).
NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Acquisition:
    """An acquisition time (UTC) and where it was read."""

    time: datetime
    source: TimeSource
    detail: str

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("acquisition time must be timezone-aware")


#: Metadata tags that hold an acquisition time, most specific first. TIFFTAG_DATETIME comes
#: last: by the TIFF specification it is the file's creation time, which many producers set to
#: the acquisition time but some set to the processing time.
TIME_TAGS: tuple[str, ...] = (
    "ACQUISITION_DATETIME",
    "ACQUISITIONDATETIME",
    "ACQUISITION_DATE_TIME",
    "ACQUIRED",  # Planet
    "DATETIME_ACQUIRED",
    "FIRSTLINETIME",  # Maxar .IMD
    "IMAGING_DATETIME",
    "IMAGING_DATE",
    "ACQUISITION_DATE",
    "DATE_ACQUIRED",  # Landsat MTL style
    "SENSING_TIME",
    "DATETIME",
    "TIFFTAG_DATETIME",
)

_ISOISH = re.compile(
    r"^\s*(?P<y>\d{4})[-:/](?P<mo>\d{2})[-:/](?P<d>\d{2})"
    r"(?:[T\s_](?P<h>\d{2}):?(?P<mi>\d{2})(?::?(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)

# In file names: 20231005, 2023-10-05, optionally with a time T021500, _0215, T02:15:00Z.
_NAME_DATE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<sep>-?)(?P<mo>0[1-9]|1[0-2])(?P=sep)(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:[T_ -]?(?P<h>[01]\d|2[0-3])[:-]?(?P<mi>[0-5]\d)(?:[:-]?(?P<s>[0-5]\d))?(?!\d)Z?)?"
    r"(?!\d)"
)


def _datetime(m: re.Match[str], microsecond: int = 0) -> datetime:
    """A UTC datetime from a match with groups y, mo, d and optional h, mi, s."""
    return datetime(
        int(m.group("y")), int(m.group("mo")), int(m.group("d")),
        int(m.group("h") or 0), int(m.group("mi") or 0), int(m.group("s") or 0),
        microsecond, tzinfo=UTC,
    )


def parse_datetime(text: str) -> datetime | None:
    """Parse an ISO-8601-like or TIFF (``YYYY:MM:DD HH:MM:SS``) time; naive times are UTC."""
    m = _ISOISH.match(text)
    if not m:
        return None
    try:
        frac = (m.group("f") or "0")[:6].ljust(6, "0")
        dt = _datetime(m, int(frac)).replace(tzinfo=None)
    except ValueError:
        return None
    tz = (m.group("tz") or "").upper()
    if tz in ("", "Z", "UTC", "GMT"):
        return dt.replace(tzinfo=UTC)
    sign = 1 if tz[0] == "+" else -1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None  # not a UTC offset
    offset = timedelta(minutes=sign * (hours * 60 + minutes))
    try:
        return dt.replace(tzinfo=timezone(offset)).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        return None


def stac_sidecar_properties(image: Path) -> dict[str, object]:
    """``properties`` of the STAC item ``<stem>.json`` beside the image; empty when there is no
    readable one."""
    sidecar = stac_sidecar(image)
    if not sidecar.is_file():
        return {}
    try:
        props = json.loads(sidecar.read_text(encoding="utf-8")).get("properties")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    return dict(props) if isinstance(props, dict) else {}


def stac_sidecar(image: Path) -> Path:
    """Where a scene's STAC item is looked for: ``<stem>.json`` beside it."""
    return image.with_suffix(".json")


def from_stac_sidecar(image: Path) -> Acquisition | None:
    """``properties.datetime`` (or ``start_datetime``) of a STAC item ``<stem>.json`` beside the image.

    ``None`` when there is no sidecar or it gives no time (no such key); raises
    :class:`~railwatch.errors.BadSidecarError` when it is there but malformed: not JSON, not an
    object with ``properties``, or a time that does not parse.
    """
    sidecar = stac_sidecar(image)
    if not sidecar.is_file():
        return None

    def malformed(why: str) -> BadSidecarError:
        return BadSidecarError(
            image, f"{sidecar.name}: malformed STAC item: {why}; fix it or move it away"
        )

    try:
        item = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise malformed(f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise malformed(f"not valid JSON ({exc})") from None
    props = item.get("properties") if isinstance(item, dict) else None
    if not isinstance(props, dict):
        raise malformed("not a STAC item (a JSON object with properties)")
    if "datetime" in props and props["datetime"] is None and "start_datetime" not in props:
        raise malformed("properties.datetime is null and no start_datetime is given")
    for key in ("datetime", "start_datetime"):
        value = props.get(key)
        if value is None:
            continue
        dt = parse_datetime(value) if isinstance(value, str) else None
        if dt is None:
            raise malformed(f"properties.{key} {value!r} is not an ISO 8601 date-time")
        return Acquisition(dt, TimeSource.STAC, f"{sidecar.name} properties.{key}")
    return None


def from_tags(tags: Mapping[str, str]) -> Acquisition | None:
    """The first known time tag in GDAL metadata (any domain, merged by the caller)."""
    upper = {k.upper(): v for k, v in tags.items()}
    for key in TIME_TAGS:
        value = upper.get(key)
        if value and (dt := parse_datetime(value.strip().strip('"'))) is not None:
            return Acquisition(dt, TimeSource.TAG, key)
    return None


def from_file_name(image: Path) -> Acquisition | None:
    """A date (``YYYYMMDD`` or ``YYYY-MM-DD``, optionally with a time) in the file name; UTC."""
    for m in _NAME_DATE.finditer(image.stem):
        try:
            dt = _datetime(m)
        except ValueError:
            continue
        return Acquisition(dt, TimeSource.FILE_NAME, m.group(0))
    return None
