"""Scenes given as STAC Items or ItemCollections (JSON files, read with ``pystac``).

Each item is one scene. Its pixels are one asset: the one named by ``asset`` (``--asset``),
else ``visual``, else ``analytic``, else the first GeoTIFF asset (media type ``image/tiff``,
or an href ending in ``.tif``/``.tiff``). Its acquisition time is the item's ``datetime`` (or
``start_datetime``). Asset hrefs may be local paths (relative ones are taken from the JSON
file's folder), ``file://``, ``http(s)://`` or ``s3://`` URLs (see
:mod:`railwatch.imagery.source`). The scene's name in the outputs is the item id with the
asset's file suffix (``<id>.tif``).

An item that names no usable asset is a :class:`StacItemError` in :attr:`StacScenes.problems`;
a file that is not STAC JSON raises one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from railwatch.errors import SceneError
from railwatch.imagery.acquisition import Acquisition, TimeSource
from railwatch.imagery.scene import SIMULATED_PROPERTY
from railwatch.imagery.source import SceneSource

if TYPE_CHECKING:
    import pystac

__all__ = [
    "PREFERRED_ASSETS",
    "STAC_SUFFIXES",
    "StacItemError",
    "StacScenes",
    "is_stac_file",
    "read_stac",
]

#: Asset keys taken, in this order, when ``--asset`` is not given.
PREFERRED_ASSETS: tuple[str, ...] = ("visual", "analytic")

#: Suffixes of files given as inputs that are read as STAC JSON.
STAC_SUFFIXES: tuple[str, ...] = (".json", ".geojson")

_GEOTIFF_SUFFIXES = (".tif", ".tiff")


class StacItemError(SceneError, ValueError):
    """A STAC file or item that gives no scene to read (malformed, or no usable asset)."""

    reason = "bad_stac_item"


@dataclass(frozen=True, slots=True)
class StacScenes:
    """What a STAC file gives: the scenes of its items, and the items that give none."""

    sources: tuple[SceneSource, ...]
    problems: tuple[StacItemError, ...] = ()


def is_stac_file(path: Path) -> bool:
    """Whether an input file is read as STAC JSON (by its suffix)."""
    return path.suffix.lower() in STAC_SUFFIXES


def read_stac(path: Path, asset: str | None = None) -> StacScenes:
    """The scenes of a STAC Item or ItemCollection file; ``asset`` names the asset to read.

    Raises :class:`StacItemError` when the file is not a STAC Item or ItemCollection.
    """
    import pystac

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StacItemError(path, f"not a readable JSON file ({exc})") from exc
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "Feature":
            items = [pystac.Item.from_dict(doc)]
        elif kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(doc).items)
        else:
            raise StacItemError(
                path, f"JSON of type {kind!r} is not a STAC Item (\"Feature\") or ItemCollection "
                "(\"FeatureCollection\"); give image files, Items or ItemCollections"
            )
    except (pystac.STACError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, StacItemError):
            raise
        raise StacItemError(path, f"not a valid STAC Item or ItemCollection ({exc!r})") from exc
    sources: list[SceneSource] = []
    problems: list[StacItemError] = []
    for item in items:
        try:
            sources.append(_scene_of(item, path, asset))
        except StacItemError as exc:
            problems.append(exc)
    return StacScenes(tuple(sources), tuple(problems))


def _scene_of(item: pystac.Item, path: Path, asset: str | None) -> SceneSource:
    where = f"{path}#{item.id}"
    key = _asset_key(item, where, asset)
    href = _absolute(item.assets[key].href, path.parent)
    extra = item.assets[key].extra_fields
    checksum = extra.get("file:checksum")
    suffix = PurePosixPath(urlsplit(href).path).suffix if "://" in href else Path(href).suffix
    return SceneSource(
        href=href,
        name=f"{item.id}{suffix}",
        acquisition=_acquisition(item),
        item_id=str(item.id),
        checksum=str(checksum) if checksum else None,
        simulated=item.properties.get(SIMULATED_PROPERTY) is True,
    )


def _asset_key(item: pystac.Item, where: str, asset: str | None) -> str:
    keys = list(item.assets)
    if asset is not None:
        if asset not in item.assets:
            raise StacItemError(
                where, f"has no asset {asset!r} (it has {', '.join(keys) or 'none'}); "
                "pick one with --asset"
            )
        return asset
    for key in PREFERRED_ASSETS:
        if key in item.assets:
            return key
    for key, a in item.assets.items():
        suffix = PurePosixPath(urlsplit(a.href).path).suffix.lower()
        if (a.media_type or "").lower().startswith("image/tiff") or suffix in _GEOTIFF_SUFFIXES:
            return key
    raise StacItemError(
        where, f"has no 'visual', 'analytic' or GeoTIFF asset (it has {', '.join(keys) or 'none'}); "
        "name the asset to read with --asset"
    )


def _absolute(href: str, base: Path) -> str:
    """A URL as it is; a ``file://`` URL or a path relative to the JSON file's folder as a path."""
    parts = urlsplit(href)
    if parts.scheme == "file":
        return unquote(parts.path)
    if "://" in href:
        return href
    local = Path(href)
    return str(local if local.is_absolute() else (base / local))


def _acquisition(item: pystac.Item) -> Acquisition | None:
    for key, value in (("datetime", item.datetime),
                       ("start_datetime", item.common_metadata.start_datetime)):
        if value is not None:
            when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return Acquisition(when.astimezone(UTC), TimeSource.STAC, f"item {item.id} properties.{key}")
    return None
