"""Benchmark 3: how time and peak memory grow with the scene and with the counting area.

Synthetic scenes of each side in ``profile.scaling_sides`` (2 000², 8 000², 20 000² px in the
full run), all with the same two tracks; each scene is counted once with one track as the
counting area and once with both (track length doubled). Every case runs in a fresh process
(:mod:`scaling_case`), so its peak resident set size is its own. Expected: time follows the
counting area (flat across scene sizes, about double with both tracks) and peak memory stays
flat as the scene grows (only windows around the tracks are read).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import Profile, markdown_table
from synthscene import ScalingLayout, write_scene, write_sites

from railwatch.detect.manifest import ModelManifest

__all__ = ["markdown", "plot", "run"]

WORKER = Path(__file__).resolve().parent / "scaling_case.py"


def _case(scene: Path, site: Path, model: Path, repeats: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(WORKER), str(scene), str(site), str(model), str(repeats)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scaling case {scene.name} × {site.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(profile: Profile, model: Path, work: Path) -> dict[str, object]:
    """Write each scene, run both counting areas on it in fresh processes, then delete it."""
    gsd = ModelManifest.load(model).gsd
    smallest = min(profile.scaling_sides) * gsd
    track_m, separation_m = round(0.7 * smallest, 1), round(0.25 * smallest, 1)
    rows = []
    for side in profile.scaling_sides:
        layout = ScalingLayout(side, gsd, track_m, separation_m)
        scene = work / f"scaling_{side}.tif"
        t0 = time.perf_counter()
        write_scene(scene, layout)
        write_s = time.perf_counter() - t0
        sites = write_sites(work, layout, f"scaling_{side}")
        for n_tracks, site in zip((1, 2), sites, strict=True):
            case = _case(scene, site, model, profile.repeats)
            median = statistics.median(case["seconds"])
            rows.append({
                "side_px": side, "megapixels": round(side * side / 1e6, 2), "tracks": n_tracks,
                "track_length_m": n_tracks * track_m, "counting_area_m2": case["counting_area_m2"],
                "chips": case["chips"], "median_s": round(median, 4),
                "model_median_s": round(statistics.median(case["model_seconds"]), 4),
                "runs_s": [round(s, 4) for s in case["seconds"]],
                "base_rss_mib": case["base_rss_mib"], "peak_rss_mib": case["peak_rss_mib"],
                "pipeline_rss_mib": round(case["peak_rss_mib"] - case["base_rss_mib"], 1),
                "file_mib": round(scene.stat().st_size / 2**20, 1), "write_s": round(write_s, 2),
            })
        scene.unlink()
    return {
        "benchmark": "scaling",
        "gsd_m": gsd,
        "repeats": profile.repeats,
        "track_length_m": track_m,
        "scene_format": "GeoTIFF, JPEG (YCbCr, q90) tiles of 512 px, overviews, UTM 52N, at the model gsd",
        "rows": rows,
    }


def plot(result: Mapping[str, Any], path: Path) -> Path:
    """Time and peak memory against scene size, one line per counting area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for n_tracks, style in ((1, "o-"), (2, "s--")):
        rows = [r for r in result["rows"] if r["tracks"] == n_tracks]
        mpx = [r["megapixels"] for r in rows]
        label = f"{n_tracks} track{'s' if n_tracks > 1 else ''} ({rows[0]['track_length_m']:.0f} m)"
        ax_t.plot(mpx, [r["median_s"] for r in rows], style, label=label)
        ax_m.plot(mpx, [r["peak_rss_mib"] for r in rows], style, label=f"peak, {label}")
        ax_m.plot(mpx, [r["base_rss_mib"] for r in rows], ":", color="grey",
                  label="after loading the model" if n_tracks == 1 else None)
    sides = sorted({r["side_px"] for r in result["rows"]})
    for ax, ylabel in ((ax_t, "median wall time per scene (s)"), (ax_m, "peak resident memory (MiB)")):
        ax.set_xscale("log")
        ax.set_xticks([s * s / 1e6 for s in sides], [f"{s}²" for s in sides])
        ax.minorticks_off()
        ax.set_xlabel("scene size (pixels, log scale)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("railwatch per-scene cost against scene size and counting area")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown section."""
    table = markdown_table(
        ["scene px", "Mpx", "tracks", "track m", "counting area m²", "chips", "median s", "of which model s",
         "peak RSS MiB", "RSS after model load MiB", "file MiB"],
        [[f"{r['side_px']}²", r["megapixels"], r["tracks"], r["track_length_m"], r["counting_area_m2"],
          r["chips"], r["median_s"], r["model_median_s"], r["peak_rss_mib"], r["base_rss_mib"], r["file_mib"]]
         for r in result["rows"]],
    )
    return "\n".join([
        "## 3. Scaling with scene size and counting area",
        "",
        f"Synthetic scenes at {result['gsd_m']} m ({result['scene_format']}); each case in a fresh "
        f"process, median of {result['repeats']} runs of open_scene + observe_scene; peak RSS = the "
        "high-water mark of the case's resident memory (VmHWM: the whole process, model included).",
        "",
        table,
        "",
        "![scaling](scaling.png)",
    ])
