"""Checkpoints (``.pt``) are pickles: loading one runs whatever code it names. Nothing is loaded
unless it is known or provably inert.

A checkpoint may be loaded when (in this order) the user vouches for it (``--trust-model``);
its sha256 is the one recorded for it (a model folder's manifest, or ``run/checkpoints.json``,
which a training run rewrites each time it saves); or ``torch.load(weights_only=True)`` reads it
while allowing no class but the ``torch.nn`` and ``ultralytics.nn`` modules a YOLO model is
made of (and railwatch's class names): a file that passes can name nothing else for the full
unpickler that ultralytics uses to call. Anything else is refused before it is unpickled, with
the names it would have called.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from railwatch.detect.manifest import sha256_file
from railwatch.errors import ModelIntegrityError

__all__ = [
    "CHECKPOINTS_FILE",
    "check_checkpoint",
    "record_checkpoints",
    "recorded_checkpoint",
    "save_atomically",
]

#: In a training run's folder (``OUT/run/``): the sha256 of each checkpoint it wrote last.
CHECKPOINTS_FILE = "checkpoints.json"

#: Modules whose ``nn.Module`` classes a checkpoint may name.
_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.")
#: Other classes a railwatch checkpoint names (its training arguments hold the class names).
_OTHER_CLASSES = ("railwatch.classes.CarClass",)

_TRUST_HINT = ("Loading a checkpoint runs code: pass --trust-model only if you know where this "
               "file came from")


def check_checkpoint(path: Path, expected_sha256: str | Sequence[str] | None, trust: bool = False) -> str:
    """The sha256 of ``path`` when it may be loaded; raises :class:`ModelIntegrityError` if not.

    ``expected_sha256``: what a manifest or the run's record says the file is (``None``: no
    record; several: any of them, as a run records while it replaces a checkpoint). See the
    module docstring for the rule.
    """
    actual = sha256_file(path)
    accepted = {expected_sha256} if isinstance(expected_sha256, str) else set(expected_sha256 or ())
    if trust or actual in accepted:
        return actual
    if isinstance(expected_sha256, Sequence) and not isinstance(expected_sha256, str):
        expected_sha256 = expected_sha256[0] if expected_sha256 else None
    problem = _weights_only_problem(path)
    if problem is None:
        return actual
    if expected_sha256 is not None:
        raise ModelIntegrityError(
            f"{path}: sha256 {actual[:12]}… does not match the one recorded for it "
            f"({expected_sha256[:12]}…), and {problem}: the file was changed or replaced. "
            + _TRUST_HINT
        )
    raise ModelIntegrityError(
        f"{path}: no recorded sha256 vouches for this checkpoint, and {problem}. " + _TRUST_HINT
    )


def recorded_checkpoint(run_dir: Path, name: str) -> tuple[str, ...]:
    """The sha256s a training run recorded for its checkpoint ``name`` (``last.pt``): one, or
    two while the run replaces the file (the new one, then the old); none without a record."""
    try:
        doc = json.loads((run_dir / CHECKPOINTS_FILE).read_text(encoding="utf-8"))
        value = doc[name]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(v for v in values if isinstance(v, str))


def record_checkpoints(weights_dir: Path, incoming: dict[str, Path] | None = None) -> None:
    """Record the sha256 of ``last.pt`` and ``best.pt`` in ``weights_dir``'s run folder (written
    to a temporary name and renamed: a reader sees the old record or the new one).

    ``incoming`` (name → staged file about to replace it): each such name is recorded with both
    the staged file's sha256 and the current file's, so that a kill before, during or after the
    rename leaves a file the record vouches for.
    """
    run_dir = weights_dir.parent
    doc: dict[str, list[str]] = {}
    for name in ("last.pt", "best.pt"):
        hashes = []
        if incoming and name in incoming:
            hashes.append(sha256_file(incoming[name]))
        if (weights_dir / name).is_file():
            hashes.append(sha256_file(weights_dir / name))
        if hashes:
            doc[name] = hashes
    tmp = run_dir / f".{CHECKPOINTS_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / CHECKPOINTS_FILE)


#: Where a run's checkpoints are written before they are renamed into place.
STAGING = ".staging"


def save_atomically(trainer: Any) -> None:
    """Make an ultralytics trainer write its checkpoints atomically, recorded in the same step.

    ultralytics writes ``last.pt`` and ``best.pt`` in place, at each save and again when it strips
    their optimizer at the end: a kill mid-write leaves a torn file. Here each save (and the
    final strip, done on copies) goes to ``weights/.staging/``, is fsynced, recorded (old and new
    sha256), then renamed over the old file, and recorded again (new only). A kill at any moment
    leaves whole checkpoints that the record vouches for. Install it from ``on_pretrain_routine_end``.
    """

    def staged_run(step: Callable[[], Any], copy_first: bool) -> Any:
        """Run ``step`` with the trainer's checkpoints pointed into the staging folder (copies of
        the current ones when ``copy_first``), then fsync, record and rename what it wrote."""
        wdir = Path(trainer.wdir)
        staging = wdir / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        for stale in staging.glob("*.pt"):
            stale.unlink()
        last, best = trainer.last, trainer.best
        if copy_first:
            for src in (Path(last), Path(best)):
                if src.is_file():
                    shutil.copyfile(src, staging / src.name)
        trainer.last, trainer.best = staging / Path(last).name, staging / Path(best).name
        try:
            result = step()
        finally:
            trainer.last, trainer.best = last, best
        staged = {p.name: p for p in staging.glob("*.pt")}
        for path in staged.values():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        record_checkpoints(wdir, staged)
        for name, path in staged.items():
            os.replace(path, wdir / name)
        record_checkpoints(wdir)
        return result

    save_model, final_eval = trainer.save_model, trainer.final_eval
    trainer.save_model = lambda: bool(staged_run(save_model, copy_first=False))
    # ultralytics strips the optimizer from last.pt and best.pt in place when training ends:
    # strip copies in the staging folder instead, recorded and renamed like every save.
    trainer.final_eval = lambda: staged_run(final_eval, copy_first=True)


def _weights_only_problem(path: Path) -> str | None:
    """Why ``torch.load(weights_only=True)`` will not read ``path`` with the allowed classes;
    ``None`` when it does."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # any failure to parse: not provably inert
        return f"it is not a torch checkpoint ({_first_line(exc)})"
    allowed: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = []
    refused: list[str] = []
    for name in names:
        cls = _allowed_class(name, torch.nn.Module)
        if cls is None:
            refused.append(name)
        else:
            allowed.append(cls)
    if refused:
        return f"loading it would call {', '.join(sorted(refused))}"
    try:
        with torch.serialization.safe_globals(allowed):
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler refused it
        return f"torch will not load it as weights only ({_first_line(exc)})"
    return None


def _allowed_class(name: str, module_base: type) -> type | None:
    if not (name.startswith(_MODULE_PREFIXES) or name in _OTHER_CLASSES):
        return None  # never import what the file names unless it is one of these
    if name.startswith("ultralytics."):
        from railwatch.detect.offline import import_ultralytics

        import_ultralytics()
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    if not isinstance(obj, type):
        return None
    if name in _OTHER_CLASSES or issubclass(obj, module_base):
        return obj
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
