"""The ``railwatch`` command line: thin wrappers over the library, one module per command.

Commands are imported only when they run, so ``railwatch --help`` stays fast and never
imports torch or ultralytics.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator

import click

from railwatch import __version__
from railwatch.errors import RailwatchError

__all__ = ["main"]

# name -> (module, attribute, one-line help). Help is duplicated here so that listing
# commands imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sites": ("railwatch.cli.sites", "sites", "List the bundled sites."),
    "inspect": ("railwatch.cli.inspect", "inspect", "Check scenes against a site without counting."),
    "count": ("railwatch.cli.count", "count", "Count a batch of scenes into the store; write outputs."),
    "series": ("railwatch.cli.series", "series", "Rebuild the outputs from the store, no imagery."),
    "simulate": ("railwatch.cli.simulate", "simulate", "Render a simulated scenario (scenes + truth)."),
    "dataset": ("railwatch.cli.dataset", "dataset", "Build training datasets (simulated or labelled)."),
    "detect": ("railwatch.cli.detect", "detect", "Detect rail cars; GeoJSON and quicklooks, no store."),
    "evaluate": ("railwatch.cli.evaluate", "evaluate", "Score detections against ground truth."),
    "train": ("railwatch.cli.train", "train", "Train or fine-tune the detector."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attr} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            with _own_scratch():
                return super().invoke(ctx)
        except RailwatchError as exc:
            click.echo(f"railwatch: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (OSError, sqlite3.OperationalError) as exc:
            if not _disk_full(exc):
                raise
            where = getattr(exc, "filename", None) or "the store or the output folder"
            click.echo(
                f"railwatch: the disk is full (while writing {where}): every scene committed to the "
                "store before it is kept and the store is intact; the output folder has no run.json "
                "(an unfinished set). Free some space and run the same command again: it resumes "
                "where it stopped", err=True)
            sys.exit(1)


@contextlib.contextmanager
def _own_scratch() -> Iterator[None]:
    """For the command's run: matplotlib's font cache in a temporary folder removed afterwards,
    and ONNX Runtime's telemetry off, so that a run writes only to its outputs, its store and
    the system's temp folder (which it cleans). A user's own settings win."""
    added: list[str] = []
    scratch = None
    if "MPLCONFIGDIR" not in os.environ:
        scratch = tempfile.mkdtemp(prefix="railwatch-mpl-")
        os.environ["MPLCONFIGDIR"] = scratch
        added.append("MPLCONFIGDIR")
    if "ORT_DISABLE_TELEMETRY" not in os.environ:
        os.environ["ORT_DISABLE_TELEMETRY"] = "1"
        added.append("ORT_DISABLE_TELEMETRY")
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk or the quota is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(seen, sqlite3.OperationalError) and "full" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="railwatch")
def main() -> None:
    """Count rail cars in satellite imagery of a border rail crossing.

    The bundled sample imagery is simulated; see the README.
    """
