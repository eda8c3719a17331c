"""Counts on the bundled (SIMULATED) sample against its truth: what `railwatch count sample_tiles`
gets right and wrong with a given model.

Counts the 11 scenes of ``sample_tiles/`` with the model into a fresh store, writes the report,
and compares it with ``sample_tiles/truth/``: the per-scene count error per class over observed
zones holding at least 5 cars of the class, the 2023-10-05 Tumangang covered-car count (truth 73),
how many weekly truth values lie inside ``low``–``high``, and the mean width of the covered-car
intervals.

    python benchmarks/bench_sample.py --model models
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from railwatch.batch.job import BatchSettings, run_batch
from railwatch.detect.detector import load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.report.inputs import ReportSettings, load_inputs
from railwatch.report.outputs import write_report
from railwatch.report.reported import load_reported
from railwatch.site import load_site
from railwatch.store.database import Store
from railwatch.store.records import ModelRecord

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_tiles"


def evaluate(out: Path) -> dict[str, object]:
    """Compare the report in ``out`` with the sample's truth."""
    truth = pd.read_csv(SAMPLE / "truth" / "frames.csv")
    ours = pd.read_csv(out / "frames.csv")
    both = truth.merge(ours, on=["scene", "zone", "class"], suffixes=("_truth", ""))
    both = both.dropna(subset=["count"])
    per_class = {}
    for cls, g in both.groupby("class"):
        g = g[g["count_truth"] >= 5]
        if len(g):
            err = (g["count"] - g["count_truth"]).abs() / g["count_truth"]
            total = float(g["count"].sum() / g["count_truth"].sum() - 1)
            per_class[str(cls)] = {"zones": len(g), "mean_abs_error": round(float(err.mean()), 4),
                                   "signed_total": round(total, 4)}
    snap = both[(both["scene"].str.contains("20231005")) & (both["zone"] == "tumangang_yard")
                & (both["class"] == "covered_car")]
    weekly_truth = pd.read_csv(SAMPLE / "truth" / "weekly.csv")
    weekly = pd.read_csv(out / "weekly.csv")
    w = weekly_truth.merge(weekly, on=["week", "zone", "class"])
    inside = (w["low"] <= w["unique_cars"]) & (w["high"].isna() | (w["unique_cars"] <= w["high"]))
    covered = w[w["class"] == "covered_car"]
    width = (covered["high"] - covered["low"]).dropna()
    comp = pd.read_csv(out / "comparison.csv")
    row = comp[(comp["date"] == "2023-10-05") & (comp["qualifier"] == "approximately")]
    return {
        "per_class_scene_error": per_class,
        "tumangang_20231005_covered": {"count": float(snap["count"].sum()),
                                       "truth": float(snap["count_truth"].sum())},
        "weekly_inside": f"{int(inside.sum())}/{len(w)}",
        "weekly_outside": w[~inside][["week", "zone", "class", "unique_cars", "low", "high"]]
        .to_dict("records"),
        "covered_interval_mean_width": round(float(width.mean()), 2) if len(width) else None,
        "snapshot_comparison": row[["measured", "low", "high", "verdict"]].to_dict("records"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=default_model_dir())
    p.add_argument("--out", type=Path, default=None,
                   help="keep the report here (default: a temporary folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        site = load_site("tumangang_khasan")
        detector = load_detector(args.model)
        with Store(out / "railwatch.sqlite") as store:
            run_batch([SAMPLE], site, detector, store, ModelRecord.describing(detector),
                      BatchSettings(progress=False))
            write_report(out, load_inputs(store, load_reported()), ReportSettings(quicklooks=False))
        result = evaluate(out)
    print(json.dumps(result, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
