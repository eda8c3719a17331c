"""The GDAL settings scenes are read under, and what GDAL's errors mean.

Every open and read of a scene runs inside :func:`gdal_env`: a bounded block cache, and for a
remote scene bounded network timeouts (GDAL has none by default and would wait for ever on a
server that stops answering). A failed remote read becomes ``unreachable`` with what the server
or the network did (:func:`unreachable`), never GDAL's "Read failed. See previous exception".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import rasterio

from railwatch.errors import SceneUnreachableError
from railwatch.imagery.source import SceneSource

__all__ = ["GDAL_CACHE_MB", "REMOTE_GDAL_DEFAULTS", "first_line", "gdal_env", "in_gdal_env", "unreachable"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: GDAL's block cache while railwatch reads a scene, in MiB: bounded, so that memory stays flat
#: whatever the scene (GDAL's default, 5 % of RAM, let a 200 000² px sparse file take 1.46 GB).
#: A ``GDAL_CACHEMAX`` environment variable or an enclosing ``rasterio.Env`` setting wins.
GDAL_CACHE_MB = 64

#: GDAL settings for remote reads, unless the environment sets them: do not list the remote
#: "directory" looking for side-car files (one request saved per scene, and many servers
#: refuse listings).
REMOTE_GDAL_DEFAULTS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # GDAL waits for ever on a server that stops answering: bound every request. A connection
    # takes at most 10 s; a transfer slower than 1 byte/s for 15 s is abandoned, as is one
    # request longer than 120 s (a window is a few MB at most); failed requests are retried twice.
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_TIME": "15",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_TIMEOUT": "120",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def gdal_env(source: SceneSource | None = None) -> rasterio.Env:
    """The GDAL settings railwatch reads scenes under: a block cache of :data:`GDAL_CACHE_MB`,
    and for a remote ``source`` :data:`REMOTE_GDAL_DEFAULTS`.

    Entered around each open and read (never left open across a ``yield``), so no setting
    leaks into the caller; ``os.environ`` is never changed, and a setting the environment or
    an enclosing ``rasterio.Env`` makes wins.
    """
    outer = rasterio.env.getenv() if rasterio.env.hasenv() else {}
    options: dict[str, object] = {}
    if "GDAL_CACHEMAX" not in os.environ and "GDAL_CACHEMAX" not in outer:
        options["GDAL_CACHEMAX"] = GDAL_CACHE_MB * 2**20  # rasterio takes bytes
    if source is not None and source.remote:
        options.update({k: v for k, v in REMOTE_GDAL_DEFAULTS.items()
                        if k not in os.environ and k not in outer})
    return rasterio.Env(**options)


def in_gdal_env(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with gdal_env():
            return fn(*args, **kwargs)

    return wrapper


def unreachable(source: SceneSource, exc: BaseException, what: str, then: str) -> SceneUnreachableError:
    """A remote read failure as ``unreachable``, saying what the server or the network did (GDAL
    says only "Read failed" or "not recognized as a supported format": a probe asks)."""
    from railwatch.imagery.network import probe

    answer = probe(source.href)
    gdal = gdal_reason(exc)
    if answer is None:
        answer = ("the transfer broke off (the connection was closed or stalled mid-read; the "
                  f"server answers again now): {gdal}")
    return SceneUnreachableError(source.href, f"{what}: {answer}; {then}")


def gdal_reason(exc: BaseException) -> str:
    """The most telling line of a GDAL error and those chained to it (rasterio's "See previous
    exception for details" names one that is never shown)."""
    lines: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(lines) < 6:
        line = first_line(seen)
        if "see previous exception" not in line.lower():
            lines.append(line)
        seen = seen.__cause__ or seen.__context__
    return lines[-1] if lines else type(exc).__name__


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
