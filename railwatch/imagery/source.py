"""Where a scene's pixels are, and what makes it the same scene again.

A :class:`SceneSource` is a local file, or an ``http(s)://`` or ``s3://`` URL that GDAL reads
window by window (``/vsicurl/``, ``/vsis3/``: only the byte ranges of the windows needed from a
Cloud-Optimized GeoTIFF). Credentials for remote imagery come only from GDAL's own environment
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_S3_ENDPOINT``,
``GDAL_HTTP_HEADERS``, ``GDAL_HTTP_USERPWD``, ...); railwatch never reads or stores them.

Which scenes the store already holds is :mod:`railwatch.store.identity`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from railwatch.imagery.acquisition import Acquisition

__all__ = ["REMOTE_SCHEMES", "SceneSource"]

#: URL schemes read remotely, and the GDAL virtual file system each goes through.
REMOTE_SCHEMES: dict[str, str] = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/"}


@dataclass(frozen=True, slots=True)
class SceneSource:
    """A scene to read: ``href`` (a local path or a URL) and the ``name`` used in the outputs.

    ``acquisition``, ``item_id``, ``checksum`` (the asset's ``file:checksum`` multihash) and
    ``simulated`` (``railwatch:simulated``) come from a STAC item when the scene was given as
    one; a scene given as a file has none (its side-car, if any, is read when it is opened).
    """

    href: str
    name: str
    acquisition: Acquisition | None = None
    item_id: str | None = None
    checksum: str | None = None
    simulated: bool = False

    def __post_init__(self) -> None:
        if not self.href or not self.name:
            raise ValueError(f"a scene source needs an href and a name, got {self.href!r}, {self.name!r}")
        if "://" in self.href and urlsplit(self.href).scheme not in REMOTE_SCHEMES:
            raise ValueError(
                f"{self.href}: unsupported URL scheme; use a local path, http(s):// or s3://"
            )

    @classmethod
    def local(cls, path: str | Path) -> SceneSource:
        """A scene given as a local file."""
        path = Path(path)
        return cls(str(path), path.name)

    @property
    def remote(self) -> bool:
        """Whether the pixels are read over the network (``http(s)://``, ``s3://``)."""
        return urlsplit(self.href).scheme in REMOTE_SCHEMES and "://" in self.href

    @property
    def path(self) -> Path | None:
        """The local file, or None for a remote scene."""
        return None if self.remote else Path(self.href)

    @property
    def gdal_path(self) -> str:
        """What GDAL opens: the local path, or the URL behind ``/vsicurl/`` or ``/vsis3/``."""
        if not self.remote:
            return self.href
        parts = urlsplit(self.href)
        if parts.scheme == "s3":
            return f"{REMOTE_SCHEMES['s3']}{parts.netloc}{parts.path}"
        return f"{REMOTE_SCHEMES[parts.scheme]}{self.href}"

    @property
    def location(self) -> str:
        """Where the store remembers the scene: the URL, or the local file's absolute path."""
        return self.href if self.remote else str(Path(self.href).resolve())

    @property
    def url_name(self) -> str:
        """The last part of the href's path (a file name, local or remote)."""
        return PurePosixPath(urlsplit(self.href).path).name if self.remote else Path(self.href).name
