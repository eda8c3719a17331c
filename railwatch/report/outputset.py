"""An output folder written as one set, so that a reader can tell a complete set from a partial
one: ``run.json`` is removed first and written last, each file goes to a temporary name and is
renamed into place (never half written), and ``run.json`` lists every file with its sha256.
:func:`check_outputs` says whether a folder is such a complete set."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from railwatch import __version__
from railwatch.detect.manifest import sha256_file

__all__ = ["RUN_FILE", "OutputSet", "check_outputs", "file_slug", "write_atomic"]

#: Written last: the run the outputs describe and every file of the set with its sha256.
RUN_FILE = "run.json"

_TEMPORARY = re.compile(r"^\.(?P<name>[^/]+)\.(?P<pid>\d+)\.tmp$")


class OutputSet:
    """A folder being written as one set: :meth:`put` each file, then :meth:`finish`.

    Opening removes ``run.json`` (the folder is now incomplete) and the temporaries of writers
    killed mid-write; finishing removes the files the previous set listed that this one did not
    write, and writes ``run.json``. Nothing else in the folder is touched.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_temporaries(out)
        self._previous = _listed_files(out)
        (out / RUN_FILE).unlink(missing_ok=True)
        _fsync_dir(out)
        self.written: list[str] = []

    def put(self, name: str, write: Callable[[Path], object]) -> None:
        """``write`` the file ``name`` of the set (to a temporary name, then renamed)."""
        write_atomic(self.out, name, write)
        self.written.append(name)

    def finish(self, description: Mapping[str, object]) -> None:
        """Close the set: ``run.json`` with ``description`` (the run, site, model) and every file."""
        for name in sorted(self._previous - set(self.written)):
            (self.out / name).unlink(missing_ok=True)
        _fsync_dir(self.out)  # the renamed files are on disk before run.json says they are complete
        doc = {
            "complete": True,
            "written": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "railwatch": __version__,
            **description,
            "files": [{"path": n, "sha256": sha256_file(self.out / n), "bytes": (self.out / n).stat().st_size}
                      for n in self.written],
        }
        write_atomic(self.out, RUN_FILE,
                     lambda p: p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"))
        _fsync_dir(self.out)


def file_slug(name: str, fallback: str = "x") -> str:
    """``name`` as one safe file-name component: letters, digits, ``_`` and ``-`` only.

    A name that had to change carries the first 8 hex digits of its sha256, so that two
    names never share a slug (``a/b`` and ``a-b`` stay apart); an empty result is ``fallback``.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:60] or fallback
    if slug == name:
        return slug
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def check_outputs(out: str | Path) -> list[str]:
    """What is wrong with an output folder as a set; empty when it is complete and intact.

    Complete means: ``run.json`` is there and every file it lists is there with the sha256 it
    lists. An interrupted ``count`` or ``series`` leaves no ``run.json``.
    """
    out = Path(out)
    run_file = out / RUN_FILE
    if not run_file.is_file():
        return [f"{RUN_FILE}: missing; the outputs are incomplete (a run was interrupted while "
                "writing them): rebuild them with `railwatch series`"]
    try:
        doc = json.loads(run_file.read_text(encoding="utf-8"))
        files = [(str(f["path"]), str(f["sha256"])) for f in doc["files"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return [f"{RUN_FILE}: unreadable ({exc!r}); rebuild the outputs with `railwatch series`"]
    problems = []
    for name, sha in files:
        path = out / name
        if Path(name).name != name or name in ("", ".", ".."):
            problems.append(f"{name}: not a file name of this folder")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != sha:
            problems.append(f"{name}: sha256 differs from {RUN_FILE}")
    return problems


def write_atomic(out: Path, name: str, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file in ``out``, flush it to disk, rename it to ``name``."""
    if Path(name).name != name or name in ("", ".", "..") or name.startswith("."):
        raise ValueError(f"{name!r} is not a plain file name; outputs stay inside {out}")
    tmp = out / f".{name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_orphaned_temporaries(out: Path) -> None:
    """Temporary files of writers killed mid-write (their process is gone); a live writer's
    (two ``count`` runs on one folder) are left alone."""
    for path in out.iterdir():
        m = _TEMPORARY.match(path.name)
        if m is None or not path.is_file():
            continue
        try:
            os.kill(int(m.group("pid")), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (PermissionError, OverflowError):
            continue  # alive under another user, or not a pid


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _listed_files(out: Path) -> set[str]:
    """Plain file names the folder's current ``run.json`` lists (none if it is missing or bad)."""
    try:
        doc = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
        names = {str(f["path"]) for f in doc["files"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if Path(n).name == n and n not in ("", ".", "..", RUN_FILE)}
