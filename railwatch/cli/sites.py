"""``railwatch sites``: list the bundled sites."""

from __future__ import annotations

import click

from railwatch.site import bundled_sites, load_site


@click.command("sites")
def sites() -> None:
    """List the bundled sites with their zones and local CRS."""
    for name, _path in sorted(bundled_sites().items()):
        site = load_site(name)
        click.echo(
            f"{name}\t{site.crs}\ttracks={len(site.tracks)}\tzones={','.join(site.zone_names)}"
        )
        if site.description:
            click.echo(f"\t{site.description}")
