"""What makes a scene the same scene again: its key in the store.

A local file is its content: the sha256 of its bytes, so a renamed or moved file is the same
scene. A remote scene is not downloaded to be hashed: it is the STAC item id together with the
asset's ``file:checksum`` when the item gives one, else the ETag the server answers a HEAD
request with (``http(s)://``; or its Last-Modified and length), else, for ``s3://`` assets
without a checksum, the URL itself (a re-processed file at the same URL is then not seen as
new). A scene that cannot be identified (unreadable, unreachable) has no key: its rejection
is recorded by location.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from railwatch.detect.manifest import sha256_file
from railwatch.errors import SceneReadError, SceneUnreachableError
from railwatch.imagery.source import SceneSource

__all__ = ["HEAD_TIMEOUT_S", "scene_identity"]

#: Seconds to wait for the HEAD request that asks a server for a remote scene's ETag.
HEAD_TIMEOUT_S = 30.0


def scene_identity(source: SceneSource) -> str:
    """The scene's key in the store (a sha256 hex digest); see the module docstring.

    Raises :class:`OSError` for a local file that cannot be read and
    :class:`~railwatch.errors.SceneUnreachableError` for a URL whose server cannot be reached.
    """
    path = source.path
    if path is not None:
        return sha256_file(path)
    if source.checksum:
        version = f"file:checksum={source.checksum}"
    elif urlsplit(source.href).scheme in ("http", "https"):
        version = f"etag={_etag(source.href)}"
    else:
        version = f"url={source.href}"
    which = f"item={source.item_id}" if source.item_id else f"url={source.href}"
    text = f"railwatch remote scene v1\n{which}\n{version}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _etag(url: str) -> str:
    """The server's ETag for ``url`` (or, without one, its Last-Modified and length)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT_S) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        raise SceneUnreachableError(
            url, f"the server answered HTTP {exc.code} {exc.reason}; check the URL (or give the "
            "asset a file:checksum in its STAC item when the server needs credentials)"
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        raise SceneUnreachableError(
            url, f"cannot reach the server ({why}); check the URL and the network"
        ) from exc
    etag = headers.get("ETag")
    if etag:
        return str(etag)
    modified, length = headers.get("Last-Modified"), headers.get("Content-Length")
    if modified or length:
        return f"{modified or ''}/{length or ''}"
    raise SceneReadError(
        url, "the server gives neither an ETag nor Last-Modified, so the scene cannot be told "
        "apart from a later version of itself; add file:checksum to the asset in its STAC item"
    )

