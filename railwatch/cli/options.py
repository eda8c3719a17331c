"""Options shared by several commands."""

from __future__ import annotations

import click

site_option = click.option(
    "--site",
    "site_name",
    default="tumangang_khasan",
    show_default=True,
    help="A bundled site name (see `railwatch sites`) or a site GeoJSON file.",
)
