"""Exceptions raised by railwatch.

Every error derives from :class:`RailwatchError` and, where it fits, from the builtin
that callers would catch anyway (the rasterio pattern: ``RasterioIOError(RasterioError,
OSError)``). Messages name the file and say what to do next: the CLI prints them as one
line, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "BadSidecarError",
    "BadSiteError",
    "BlankSceneError",
    "ImpossibleTimeError",
    "ModelError",
    "ModelIntegrityError",
    "NoAcquisitionTimeError",
    "NoGeoreferenceError",
    "NoOverlapError",
    "RailwatchError",
    "ResolutionTooCoarseError",
    "SceneError",
    "SceneReadError",
    "SceneUnreachableError",
    "TrainingExtraError",
    "UnsupportedBandsError",
]


class RailwatchError(Exception):
    """Root of all railwatch errors."""

    #: The command line's exit status when this error ends a command: 1, or 2 for a usage
    #: error (a file named on the command line that cannot be used as what it was given for).
    exit_code = 1


class TrainingExtraError(RailwatchError, ImportError):
    """A command needs the training extra (torch, ultralytics), which is not installed."""


class BadSiteError(RailwatchError, ValueError):
    """A site file is missing, unreadable or geometrically invalid."""

    exit_code = 2


class SceneError(RailwatchError):
    """A scene cannot be used; the batch goes on without it.

    ``reason`` is a short machine-readable slug written to ``rejected.csv``.
    """

    reason = "unusable"

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class SceneReadError(SceneError, OSError):
    """The file is not a raster GDAL can read, or it is truncated or corrupt."""

    reason = "unreadable"


class BlankSceneError(SceneError, ValueError):
    """The raster holds no image: one value throughout (an empty export, unwritten blocks)."""

    reason = "blank"


class SceneUnreachableError(SceneReadError):
    """A remote scene (``http(s)://``, ``s3://``) cannot be reached or read over the network."""

    reason = "unreachable"


class NoGeoreferenceError(SceneError, ValueError):
    """The raster has no CRS or no geotransform."""

    reason = "no_georeference"


class NoOverlapError(SceneError, ValueError):
    """The scene's footprint does not intersect the site's area of interest."""

    reason = "no_overlap"


class BadSidecarError(SceneError, ValueError):
    """The STAC item beside the scene (``<stem>.json``) is malformed: bad JSON, or a time that
    is not one."""

    reason = "bad_sidecar"


class NoAcquisitionTimeError(SceneError, ValueError):
    """No acquisition time in a STAC sidecar, the metadata tags or the file name."""

    reason = "no_acquisition_time"


class ImpossibleTimeError(SceneError, ValueError):
    """The acquisition time found cannot be true: after the run, or before any satellite."""

    reason = "impossible_time"


class ResolutionTooCoarseError(SceneError, ValueError):
    """The ground sample distance is too coarse to resolve single rail cars."""

    reason = "too_coarse"


class UnsupportedBandsError(SceneError, ValueError):
    """The band layout cannot be mapped to RGB or panchromatic."""

    reason = "unsupported_bands"


class ModelError(RailwatchError, ValueError):
    """A model folder or its manifest is missing or malformed."""


class ModelIntegrityError(ModelError):
    """A model file's sha256 does not match its manifest."""
