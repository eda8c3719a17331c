"""Reliability: kill -9 at random times, two concurrent writers, and what each bad input gives.

Run from the repository root::

    .venv/bin/python benchmarks/bench_reliability.py --trials 10 --scenes 2 --out benchmarks/out/reliability

1. **kill -9 trials.** A reference `railwatch count` of the first N sample scenes (shipped
   model, bundled site) into a fresh folder and store gives the expected share. Each trial starts
   a fresh count, kills it with SIGKILL at a random time — half the trials anywhere in the run,
   half inside the output stage (between the batch summary and the moment ``run.json``
   appeared in the reference run: while the files are written) — records the state it left
   (does `check_outputs` call the set complete or incomplete? is any data file torn: empty,
   or not parseable?), reruns the same command and
   compares: every output file byte for byte with the reference (`report.md` without its two
   time-stamped lines), the store's scenes, detections and counts, `PRAGMA integrity_check`,
   `check_outputs`, leftover temporary files.
2. **Two concurrent writers.** Two counts of the same scenes into one folder and one store,
   started together: exit codes, each scene counted once, integrity, the final share against the
   reference.
3. **Bad inputs.** One command per bad input: exit code, the first line it printed, and for the
   200 000² px sparse GeoTIFF the peak memory with railwatch's bounded GDAL cache and with
   GDAL's default (``GDAL_CACHEMAX`` set to it, which railwatch honours).

Writes ``reliability.json`` and ``reliability.md`` (tables for RESULTS.md) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from common import REPO, machine, markdown_table, write_json

from railwatch.detect.manifest import default_model_dir
from railwatch.report.outputset import check_outputs
from railwatch.site import bundled_sites

SAMPLES = REPO / "sample_tiles"
DATA_FILES = ("detections.geojson", "frames.csv", "weekly.csv", "comparison.csv", "rejected.csv",
              "report.md")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--scenes", type=int, default=2, help="Sample scenes per count.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparse-side", type=int, default=200_000,
                   help="Side in pixels of the sparse GeoTIFF of the bad-input table.")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "reliability")
    p.add_argument("--only", nargs="+", choices=["kill", "concurrent", "bad", "train"],
                   default=["kill", "concurrent", "bad", "train"])
    return p.parse_args(argv)


# --- running railwatch -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


#: Runs the CLI and, at exit, writes the process's peak resident memory (VmHWM, which exec
#: resets; getrusage's ru_maxrss would carry this benchmark's own peak over the fork).
_CLI = ("import atexit, sys\n"
        "hwm = sys.argv.pop(1)\n"
        "def peak():\n"
        "    line = next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM'))\n"
        "    open(hwm, 'w').write(line.split()[1])\n"
        "atexit.register(peak)\n"
        "from railwatch.cli import main\n"
        "sys.argv[0] = 'railwatch'\n"
        "main()\n")


def _railwatch(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    hwm = log.with_suffix(".peak_kib")
    hwm.unlink(missing_ok=True)
    return subprocess.Popen([sys.executable, "-c", _CLI, str(hwm), *args],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=_env(**env))


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Exit code and peak resident memory (MiB; NaN if it could not say) of a child."""
    code = proc.wait()
    hwm = Path(str(proc.args[3])) if isinstance(proc.args, list) else None
    try:
        return code, int(hwm.read_text()) / 1024 if hwm else math.nan
    except (OSError, ValueError):
        return code, math.nan


def _count_args(scenes: list[Path], out: Path, *extra: str) -> list[str]:
    return ["count", *map(str, scenes), "--out", str(out), "--no-progress", *extra]


# --- comparing shares --------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _report_sha(path: Path) -> str:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if not ln.startswith("Generated ") and "Latest run:" not in ln]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _share(out: Path) -> dict[str, str]:
    """Fingerprint of an output folder: every data file and PNG, and the store's content."""
    found = {}
    for p in sorted(out.iterdir()):
        if p.name in ("run.json",) or p.name.startswith("railwatch.sqlite") or p.name.startswith("."):
            continue
        found[p.name] = _report_sha(p) if p.name == "report.md" else _sha(p)
    found["store content"] = _store_fingerprint(out / "railwatch.sqlite")
    return found


def _store_fingerprint(db: Path) -> str:
    with sqlite3.connect(db) as con:
        parts = [
            con.execute("SELECT content_sha256, model_sha256, site, name, path, acquired, crs, gsd, "
                        "footprint_wkt, status FROM scenes ORDER BY content_sha256").fetchall(),
            con.execute("SELECT s.content_sha256, d.idx, d.class, d.confidence, d.zone, d.x0, d.y0, "
                        "d.x1, d.y1, d.x2, d.y2, d.x3, d.y3 FROM detections d JOIN scenes s ON "
                        "s.id = d.scene_id ORDER BY s.content_sha256, d.idx").fetchall(),
            con.execute("SELECT s.content_sha256, c.zone, c.class, c.count, c.coverage FROM counts c "
                        "JOIN scenes s ON s.id = c.scene_id ORDER BY 1, 2, 3").fetchall(),
        ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])


def _torn(out: Path) -> list[str]:
    """Data files that are empty or do not parse."""
    torn = []
    for name in DATA_FILES:
        p = out / name
        if not p.exists():
            continue
        try:
            text = p.read_text(encoding="utf-8")
            if not text:
                raise ValueError("empty")
            if name.endswith(".geojson"):
                json.loads(text)
            elif name.endswith(".csv"):
                rows = list(csv.reader(io.StringIO(text)))
                if any(len(r) != len(rows[0]) for r in rows):
                    raise ValueError("ragged")
        except ValueError:
            torn.append(name)
    return torn


def _state(out: Path) -> str:
    problems = check_outputs(out)
    if not problems:
        return "complete"
    if problems[0].startswith("run.json: missing"):
        return "incomplete (no run.json)"
    return "INCONSISTENT: " + "; ".join(problems)


# --- 1. kill -9 trials -------------------------------------------------------------------------


def kill_trials(work: Path, scenes: list[Path], n: int, rng: random.Random) -> dict[str, object]:
    ref_out = work / "reference"
    t0 = time.monotonic()
    proc = _railwatch(_count_args(scenes, ref_out), work / "reference.log")
    batch_done = _wait_for_summary(proc, work / "reference.log")
    while proc.poll() is None and not (ref_out / "run.json").exists():
        time.sleep(0.01)
    output_stage = time.monotonic() - t0 - batch_done  # summary printed → run.json written
    code, _ = _wait(proc)
    total = time.monotonic() - t0
    if code != 0:
        raise SystemExit(f"reference run failed ({code}): {(work / 'reference.log').read_text()}")
    reference = _share(ref_out)
    trials = []
    for i in range(n):
        out = work / f"trial{i}"
        shutil.rmtree(out, ignore_errors=True)
        in_output = i % 2 == 1
        log = work / f"trial{i}.log"
        t0 = time.monotonic()
        proc = _railwatch(_count_args(scenes, out), log)
        if in_output:
            _wait_for_summary(proc, log)
            delay = rng.uniform(0.0, output_stage)
            time.sleep(delay)
            at = time.monotonic() - t0
        else:
            at = rng.uniform(0.5, total)
            time.sleep(at)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        after_kill = _state(out) if out.exists() else "no folder yet"
        torn = _torn(out) if out.exists() else []
        counted = _counted(out / "railwatch.sqlite")
        rerun = _railwatch(_count_args(scenes, out), work / f"trial{i}.rerun.log")
        rerun_code, _ = _wait(rerun)
        share = _share(out)
        differs = sorted(k for k in set(reference) | set(share) if reference.get(k) != share.get(k))
        trials.append({
            "trial": i, "target": "output stage" if in_output else "anywhere",
            "killed_at_s": round(at, 1), "killed": killed, "scenes_committed_at_kill": counted,
            "state_after_kill": after_kill, "torn_files_after_kill": torn,
            "rerun_exit": rerun_code, "integrity": _integrity(out / "railwatch.sqlite"),
            "check_outputs_after_rerun": check_outputs(out),
            "leftover_temporaries": sorted(p.name for p in out.glob(".*.tmp")),
            "differs_from_reference": differs,
        })
        print(f"trial {i}: {trials[-1]}", flush=True)
    return {"scenes": [p.name for p in scenes], "reference_seconds": round(total, 1),
            "output_stage_seconds": round(output_stage, 1), "trials": trials}


def _wait_for_summary(proc: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds from now until the batch summary ("counted N, ...") appears in the log."""
    t0 = time.monotonic()
    while proc.poll() is None:
        if log.exists() and b"counted " in log.read_bytes():
            return time.monotonic() - t0
        time.sleep(0.02)
    return time.monotonic() - t0


def _counted(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as con:
            return int(con.execute("SELECT COUNT(*) FROM scenes WHERE status='counted'").fetchone()[0])
    except sqlite3.Error:
        return None


# --- 2. concurrent writers ---------------------------------------------------------------------


def concurrent(work: Path, scenes: list[Path], reference: dict[str, str] | None) -> dict[str, object]:
    out = work / "concurrent"
    shutil.rmtree(out, ignore_errors=True)
    procs = [_railwatch(_count_args(scenes, out), work / f"concurrent{i}.log") for i in range(2)]
    codes = [_wait(p)[0] for p in procs]
    summaries = [next((ln for ln in (work / f"concurrent{i}.log").read_text().splitlines()
                       if ln.startswith("counted ")), "") for i in range(2)]
    share = _share(out)
    ref = reference or {}
    return {
        "exit_codes": codes, "summaries": summaries,
        "scenes_in_store": _counted(out / "railwatch.sqlite"),
        "integrity": _integrity(out / "railwatch.sqlite"),
        "check_outputs": check_outputs(out),
        "differs_from_reference": sorted(k for k in set(ref) | set(share)
                                         if ref.get(k) != share.get(k)) if ref else None,
    }


# --- 3. bad inputs -----------------------------------------------------------------------------


def bad_inputs(work: Path, good: Path, sparse_side: int) -> list[dict[str, object]]:
    d = work / "bad"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    site = bundled_sites()["tumangang_khasan"]
    cases: list[tuple[str, list[str], dict[str, str]]] = []

    def case(what: str, args: list[str], **env: str) -> None:
        cases.append((what, args, env))

    empty = d / "empty_20231005.tif"
    empty.write_bytes(b"")
    case("empty .tif (0 bytes)", _count_args([empty], d / "o1"))
    twins = d / "twins"
    twins.mkdir()
    for name in ("a_20231005.tif", "b_20231006.tif"):
        (twins / name).write_bytes(b"")
    case("two byte-identical empty .tifs + 1 good scene", _count_args([twins, good], d / "o2"))
    garbage = d / "garbage_20231005.tif"
    garbage.write_bytes(os.urandom(4096))
    case("random bytes named .tif", _count_args([garbage], d / "o3"))
    truncated = d / "truncated_20231005.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    case("sample scene cut in half", _count_args([truncated], d / "o4"))
    sidecar = d / "sidecar"
    sidecar.mkdir()
    bad_json = sidecar / good.name
    shutil.copyfile(good, bad_json)
    bad_json.with_suffix(".json").write_text("{not json")
    case("sample scene, STAC sidecar not JSON", _count_args([bad_json], d / "o5"))
    sidecar2 = d / "sidecar2"
    sidecar2.mkdir()
    bad_time = sidecar2 / good.name
    shutil.copyfile(good, bad_time)
    bad_time.with_suffix(".json").write_text(
        json.dumps({"type": "Feature", "properties": {"datetime": "not-a-date"}}))
    case("sample scene, sidecar datetime 'not-a-date'", _count_args([bad_time], d / "o6"))
    blank = d / "blank_rgbn16_20231005.tif"
    _write_like(good, blank, dtype="uint16", bands=4, fill=0)
    case("all-zero 16-bit RGBN scene", _count_args([blank], d / "o7"))
    sparse = d / f"sparse{sparse_side}_20231005.tif"
    _write_sparse(good, sparse, sparse_side)
    case(f"{sparse_side:,}² px sparse GeoTIFF, one block written",
         _count_args([sparse], d / "o8"))
    case(f"… the same with GDAL's default cache (GDAL_CACHEMAX={_gdal_default_mb()} MB)",
         _count_args([sparse], d / "o8b"), GDAL_CACHEMAX=str(_gdal_default_mb()))
    case("--site nosuchsite", _count_args([good], d / "o9", "--site", "nosuchsite"))
    no_aoi = d / "no_aoi.geojson"
    doc = json.loads(site.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["role"] != "aoi"]
    no_aoi.write_text(json.dumps(doc))
    case("site file without an aoi", _count_args([good], d / "o10", "--site", str(no_aoi)))
    reported = d / "reported.csv"
    reported.write_text("date,site,zone,class,count,qualifier,quantity,source,url\n"
                        "2023-10-05,tumangang_khasan,any,any,5,approximately,snapshot,x,,extra\n")
    case("reported CSV row with a surplus field",
         _count_args([good], d / "o11", "--reported", str(reported)))
    model = d / "model"
    model.mkdir()
    for name in ("manifest.json", "railcar-obb.onnx"):
        shutil.copyfile(default_model_dir() / name, model / name)
    with (model / "railcar-obb.onnx").open("ab") as f:
        f.write(b"\x00")
    case("ONNX file changed (one byte appended)",
         _count_args([good], d / "o12", "--model", str(model)))
    (model / "railcar-obb.onnx").write_bytes(b"not a protobuf" * 100)
    case("… replaced by garbage, with --trust-model",
         _count_args([good], d / "o13", "--model", str(model), "--trust-model"))
    slug_site = d / "slug_site.geojson"
    doc = json.loads(site.read_text())
    for f in doc["features"]:
        if f["properties"]["name"] == "tumangang_yard":
            f["properties"]["name"] = "x/../../name"
    slug_site.write_text(json.dumps(doc))
    slug_reported = d / "slug_reported.csv"
    date = good.name.split("_")[-1][:8]
    slug_reported.write_text("date,site,zone,class,count,qualifier,quantity,source,url\n"
                             f"{date[:4]}-{date[4:6]}-{date[6:]},tumangang_khasan,x/../../name,"
                             "any,5,approximately,snapshot,x,\n")
    case("zone named x/../../name (quicklook file name)",
         _count_args([good], d / "deep" / "o14", "--site", str(slug_site), "--reported",
                     str(slug_reported)))
    evil = d / "evil.pt"
    marker = d / "code-ran"
    subprocess.run([sys.executable, "-c", (
        "import os, sys, torch\n"
        "class E:\n    def __reduce__(self): return (os.mkdir, (sys.argv[1],))\n"
        "torch.save({'model': E()}, sys.argv[2])\n"), str(marker), str(evil)], check=True)
    data = d / "data"
    data.mkdir()
    (data / "data.yaml").write_text("train: images/train\nval: images/val\ngsd: 0.3\n")
    case("train --from a crafted .pt (its unpickling makes a folder)",
         ["train", "--out", str(d / "m"), "--data", str(data), "--from", str(evil), "--epochs", "1"])

    rows = []
    for what, args, env in cases:
        log = d / f"case{len(rows)}.log"
        t0 = time.monotonic()
        code, peak = _wait(_railwatch(args, log, **env))
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        said = _message(lines)
        row: dict[str, object] = {
            "input": what, "exit": code, "says": _shorten(said, d), "seconds": round(
                time.monotonic() - t0, 1), "peak_mib": round(peak), "traceback": any(
                "Traceback" in ln for ln in lines)}
        out = Path(args[args.index("--out") + 1]) if "--out" in args and args[0] == "count" else None
        if out is not None and (out / "frames.csv").exists():
            with (out / "frames.csv").open() as f:
                cov = [float(r["coverage"]) for r in csv.DictReader(f) if r["coverage"]]
            row["max_zone_coverage"] = max(cov) if cov else None
        if out is not None and (out / "rejected.csv").exists():
            with (out / "rejected.csv").open() as f:
                row["rejected_rows"] = sum(1 for _ in f) - 1
            summary = next((ln for ln in lines if ln.startswith("counted ")), "")
            row["summary"] = summary
        if what.startswith("zone named") and out is not None:
            pngs = list((d / "deep").rglob("*.png"))  # x/../../name would land in deep/ or d/
            row["pngs_outside_out"] = sum(1 for p in pngs if out not in p.parents) + sum(
                1 for p in d.glob("*.png"))
            row["quicklooks"] = sorted(p.name for p in out.glob("quicklook_*.png"))
        if what.startswith("train --from"):
            row["code_ran"] = marker.exists()
        rows.append(row)
        print(row, flush=True)
    return rows


def _message(lines: list[str]) -> str:
    """The line that says what went wrong: click's "Error: …", a "railwatch: …" line, or a
    rejection ("file: reason: message"); else the batch summary."""
    for ln in lines:
        if ln.startswith("Error:"):
            return ln
    for ln in lines:
        if re.match(r"^\S+: [a-z_]+: ", ln):  # a rejection: file: reason: message
            return ln
    for ln in lines:
        if ln.startswith("railwatch:"):
            return ln
    return next((ln for ln in lines if ln.startswith("counted ")), lines[0] if lines else "")


def _shorten(line: str, folder: Path) -> str:
    line = line.replace(str(folder) + "/", "").replace(str(REPO) + "/", "")
    return line if len(line) <= 170 else line[:167] + "…"


def _gdal_default_mb() -> int:
    """GDAL's default block cache: 5 % of the RAM."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(ram * 0.05 / 2**20)


def _write_like(good: Path, path: Path, dtype: str, bands: int, fill: int) -> None:
    with rasterio.open(good) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": bands,
                   "dtype": dtype, "crs": src.crs, "transform": src.transform, "tiled": True}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.full((bands, src.height, src.width), fill, dtype=dtype))
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.undefined]


def _write_sparse(good: Path, path: Path, side: int) -> None:
    """A ``side``² px tiled GeoTIFF centred on the sample scene, at its resolution, with one
    256² block of noise written in the corner and the rest never written (sparse)."""
    from affine import Affine

    with rasterio.open(good) as src:
        t, crs = src.transform, src.crs
        cx, cy = src.xy(src.height // 2, src.width // 2)
    transform = Affine(t.a, 0, cx - t.a * side / 2, 0, t.e, cy - t.e * side / 2)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
               "crs": crs, "transform": transform, "tiled": True, "blockxsize": 256,
               "blockysize": 256, "sparse_ok": True, "bigtiff": "YES"}
    with rasterio.open(path, "w", **profile) as dst:
        block = np.random.default_rng(0).integers(0, 255, (3, 256, 256), dtype=np.uint8)
        dst.write(block, window=rasterio.windows.Window(0, 0, 256, 256))


# --- report ------------------------------------------------------------------------------------


def train_kills(work: Path, n: int, rng: random.Random) -> dict[str, object]:
    """kill -9 of a tiny `railwatch train` (8 simulated 160 px chips, 8 epochs) at random
    moments from start-up to packaging, then `railwatch train --out OUT --resume`: exit code,
    a traceback or not, and whether the manifest's sha256 match the model's files."""
    from railwatch.detect.manifest import ModelManifest
    from railwatch.errors import RailwatchError
    from railwatch.simulate.chips import export_yolo_obb

    chips = work / "train-chips"
    if not chips.is_dir():
        export_yolo_obb(chips, 8, gsd=0.3, chip=160, seed=4, val_fraction=0.25)
    args = ["train", "--data", str(chips), "--epochs", "8", "--imgsz", "160", "--batch", "4",
            "--workers", "0"]
    cache = str(work / "train-cache")
    t0 = time.perf_counter()
    ref = _railwatch([*args, "--out", str(work / "train-ref")], work / "train-ref.log", RAILWATCH_CACHE=cache)
    _wait(ref)
    reference_s = round(time.perf_counter() - t0, 1)
    trials = []
    for k in range(n):
        out = work / f"train-{k}"
        shutil.rmtree(out, ignore_errors=True)
        at = round(rng.uniform(1.0, reference_s * 1.05), 1)
        proc = _railwatch([*args, "--out", str(out)], work / f"train-{k}.log", RAILWATCH_CACHE=cache)
        try:
            proc.wait(timeout=at)
            killed = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
        weights = sorted(p.name for p in (out / "run" / "weights").glob("*.pt")) if out.is_dir() else []
        log = work / f"train-{k}-resume.log"
        code, _ = _wait(_railwatch(["train", "--out", str(out), "--resume"], log, RAILWATCH_CACHE=cache))
        text = log.read_text(encoding="utf-8", errors="replace")
        try:
            manifest = ModelManifest.load(out)
            for kind in manifest.files:
                manifest.verified_path(kind)
            whole = "yes"
        except (RailwatchError, OSError, ValueError) as exc:
            whole = f"no: {exc}"
        trials.append({"trial": k + 1, "killed_at_s": at, "killed": killed,
                       "checkpoints_at_kill": weights, "resume_exit": code,
                       "traceback": "Traceback" in text, "manifest_matches_files": whole,
                       "resume_said": _last_word(text)})
        print(trials[-1], flush=True)
    return {"reference_seconds": reference_s, "command": " ".join(["railwatch", *args, "--out", "OUT"]),
            "trials": trials}


def _last_word(log: str) -> str:
    """The last line railwatch itself printed (not ultralytics' output)."""
    ours = ("railwatch", "model written", "Error")
    said = [ln.strip()[:120] for ln in log.splitlines() if ln.startswith(ours)]
    return said[-1] if said else ""


def markdown(doc: dict[str, object]) -> str:
    parts = []
    m = doc["machine"]
    parts.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, load "
                 f"{m['load_average_1_5_15']} at the start; {m['date']}; railwatch "
                 f"{m['git_commit']}.\n")
    if "kill" in doc:
        k = doc["kill"]
        parts.append(f"kill -9 trials on {', '.join(k['scenes'])} (reference run "
                     f"{k['reference_seconds']} s, of which the output stage "
                     f"{k['output_stage_seconds']} s):\n")
        rows = [(t["trial"], t["target"],
                 t["killed_at_s"] if t["killed"] else f"{t['killed_at_s']}: not killed, it had finished",
                 t["scenes_committed_at_kill"],
                 t["state_after_kill"], ", ".join(t["torn_files_after_kill"]) or "none",
                 t["rerun_exit"], t["integrity"],
                 "complete" if not t["check_outputs_after_rerun"] else "; ".join(
                     t["check_outputs_after_rerun"]),
                 ", ".join(t["differs_from_reference"]) or "identical")
                for t in k["trials"]]
        parts.append(markdown_table(
            ["trial", "kill aimed at", "killed at (s)", "scenes committed", "folder after kill",
             "torn files", "rerun exit", "integrity", "set after rerun", "vs reference"], rows))
    if "concurrent" in doc:
        c = doc["concurrent"]
        parts.append("\nTwo concurrent writers (same scenes, one folder, one store):\n")
        parts.append(markdown_table(
            ["exit codes", "what each did", "scenes in store", "integrity", "set", "vs reference"],
            [(c["exit_codes"], " / ".join(c["summaries"]), c["scenes_in_store"], c["integrity"],
              "complete" if not c["check_outputs"] else "; ".join(c["check_outputs"]),
              ", ".join(c["differs_from_reference"] or []) or "identical")]))
    if "bad" in doc:
        parts.append("\nBad inputs (`railwatch count` unless said otherwise):\n")
        rows = []
        for r in doc["bad"]:
            extra = []
            if r.get("max_zone_coverage") is not None:
                extra.append(f"max zone coverage {r['max_zone_coverage']}")
            if "rejected_rows" in r:
                extra.append(f"rejected.csv rows {r['rejected_rows']}; {r.get('summary', '')}")
            if "pngs_outside_out" in r:
                extra.append(f"PNGs outside --out: {r['pngs_outside_out']}; {r['quicklooks']}")
            if "code_ran" in r:
                extra.append(f"code ran: {r['code_ran']}")
            rows.append((r["input"], r["exit"], f"`{r['says']}`", r["peak_mib"], r["seconds"],
                         "; ".join(extra) or "", "yes" if r["traceback"] else "no"))
        parts.append(markdown_table(["input", "exit", "message (first line)", "peak MiB", "s",
                                     "also", "traceback"], rows))
    if "train" in doc:
        t = doc["train"]
        parts.append(f"\nkill -9 of `{t['command']}` at random moments (an uninterrupted run took "
                     f"{t['reference_seconds']} s, packaging included), then "
                     "`railwatch train --out OUT --resume`:\n")
        parts.append(markdown_table(
            ["trial", "killed at (s)", "checkpoints at the kill", "resume exit", "traceback",
             "manifest sha256 match the files", "resume said"],
            [(r["trial"], r["killed_at_s"] if r["killed"] else f"{r['killed_at_s']}: it had finished",
              ", ".join(r["checkpoints_at_kill"]) or "none", r["resume_exit"],
              "yes" if r["traceback"] else "no", r["manifest_matches_files"], f"`{r['resume_said']}`")
             for r in t["trials"]]))
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    scenes = sorted(SAMPLES.glob("*.tif"))[: args.scenes]
    doc: dict[str, object] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    rng = random.Random(args.seed)
    reference = None
    if "kill" in args.only:
        doc["kill"] = kill_trials(work, scenes, args.trials, rng)
        reference = _share(work / "reference")
    if "concurrent" in args.only:
        doc["concurrent"] = concurrent(work, scenes, reference)
        print(doc["concurrent"], flush=True)
    if "bad" in args.only:
        doc["bad"] = bad_inputs(work, scenes[0], args.sparse_side)
    if "train" in args.only:
        doc["train"] = train_kills(work, args.trials, rng)
    write_json(args.out / "reliability.json", doc)
    (args.out / "reliability.md").write_text(markdown(doc), encoding="utf-8")
    print((args.out / "reliability.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
