"""The benchmark scripts work: the tiny profile runs end to end and writes every table, and the
naive baseline finds the same cars as the pipeline. Timings are never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_detector import BlobBackend

from railwatch.classes import CLASSES
from railwatch.detect.detector import Detector, DetectorSettings
from railwatch.detect.manifest import Accuracy, ModelManifest, sha256_file

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def bench_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained yolo11n-obb with railwatch's five classes, 64 px chips at 1 m, with its ONNX
    export and manifest (random weights: right for timing and wiring, meaningless for accuracy)."""
    from railwatch.detect.offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import OBBModel

    folder = tmp_path_factory.mktemp("tiny-model")
    yolo = ultralytics.YOLO("yolo11n-obb.yaml", task="obb")
    yolo.model = OBBModel("yolo11n-obb.yaml", nc=len(CLASSES), verbose=False)
    yolo.model.names = dict(enumerate(CLASSES))
    yolo.ckpt = {"train_args": {"task": "obb", "imgsz": 64}}
    pt = folder / "railcar-obb.pt"
    yolo.save(pt)
    exported = Path(ultralytics.YOLO(str(pt), task="obb").export(
        format="onnx", imgsz=64, dynamic=True, simplify=True, opset=17, verbose=False))
    onnx = folder / "railcar-obb.onnx"
    if exported != onnx:
        exported.replace(onnx)
    manifest = {
        "name": "tiny-random", "classes": list(CLASSES), "gsd": 1.0, "chip": 64,
        "files": {"weights": {"path": pt.name, "sha256": sha256_file(pt)},
                  "onnx": {"path": onnx.name, "sha256": sha256_file(onnx)}},
        "training": {"note": "random weights, for the benchmark tests"}, "accuracy": {"conf": 0.35},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _load(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_tiny_run_writes_every_benchmark(tiny_model, tmp_path):
    import run

    out = tmp_path / "out"
    assert run.main(["--tiny", "--model", str(tiny_model), "--out", str(out)]) == 0
    for name in ("machine.json", "pipeline.json", "runtimes.json", "scaling.json", "accuracy.json",
                 "limit.json", "summary.md", "scaling.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    machine = _load(out, "machine")
    assert machine["cores"] >= 1 and machine["cpu"] and machine["versions"]["onnxruntime"]

    pipeline = _load(out, "pipeline")
    assert pipeline["runtime"] == "onnx"
    assert pipeline["scene"]["cars_in_counting_areas"] > 0
    for side in ("railwatch", "naive"):
        r = pipeline[side]
        assert r["chips"] > 0 and len(r["runs_s"]) == 2
        assert {"median_s", "model_median_s", "chips_per_s", "recall", "precision", "n_true"} <= set(r)
        assert r["n_true"] == pipeline["scene"]["cars_in_counting_areas"]
    assert len(pipeline["speedup_per_run"]) == 2

    runtimes = _load(out, "runtimes")
    assert {(r["runtime"], r["batch"]) for r in runtimes["rows"]} == {
        (rt, b) for rt in ("onnx", "torch") for b in (1, 8)}
    assert set(runtimes["onnx_speedup_over_torch"]) == {"1", "8"}

    scaling = _load(out, "scaling")
    rows = scaling["rows"]
    assert [(r["side_px"], r["tracks"]) for r in rows] == [(256, 1), (256, 2), (512, 1), (512, 2)]
    for r in rows:
        assert r["chips"] > 0 and r["peak_rss_mib"] >= r["base_rss_mib"] > 0
    one, two = rows[0], rows[1]
    assert two["track_length_m"] == pytest.approx(2 * one["track_length_m"])
    assert two["counting_area_m2"] == pytest.approx(2 * one["counting_area_m2"], rel=0.05)

    accuracy = _load(out, "accuracy")
    from bench_accuracy import FACTORS

    expected = [(f, str(v)) for f, values in FACTORS.items() for v in values]
    assert [(r["factor"], r["value"]) for r in accuracy["rows"]] == expected
    for r in accuracy["rows"]:
        assert r["rejected"] == [] and r["scenes"] == 1
        assert {"n_true", "n_pred", "precision", "recall", "f1", "covered_f1", "count_error"} <= set(r)
        assert r["n_true"] > 0

    limit = _load(out, "limit")
    assert limit["gflops_per_chip"]["thop_gflops"] > 0 and limit["matmul_gflops_per_s"] > 0
    assert [r["approach"] for r in limit["scene"]] == ["railwatch", "naive"]
    assert limit["best_runtime"]["runtime"] in ("onnx", "torch")

    summary = (out / "summary.md").read_text()
    for heading in ("# railwatch benchmarks", "## 1. Pipeline", "## 2. Runtimes", "## 3. Scaling",
                    "## 4. Accuracy", "## 5. Limit"):
        assert heading in summary
    assert summary.count("|---|") >= 5
    assert "tiny-random" in summary



@pytest.mark.slow
def test_limit_relates_to_an_earlier_pipeline_json(tiny_model, tmp_path):
    import run

    side = {"chips": 10, "median_s": 2.0, "model_median_s": 1.5}
    earlier = {"benchmark": "pipeline", "profile": "full", "scene": {"scenes": 11},
               "machine": {"date": "2026-01-01T00:00:00+00:00", "git_commit": "abc1234"},
               "railwatch": side, "naive": {**side, "chips": 100, "median_s": 20.0, "model_median_s": 18.0}}
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(earlier))
    out = tmp_path / "out"
    assert run.main(["--tiny", "--model", str(tiny_model), "--out", str(out), "--only", "limit",
                     "--pipeline-json", str(path)]) == 0
    limit = _load(out, "limit")
    assert [(r["approach"], r["chips"]) for r in limit["scene"]] == [("railwatch", 10), ("naive", 100)]
    assert limit["pipeline_run"] == {"profile": "full", "date": "2026-01-01T00:00:00+00:00",
                                     "git_commit": "abc1234", "scenes": 11}
    assert "commit abc1234" in (out / "summary.md").read_text()
    with pytest.raises(SystemExit):
        run.parse_args(["--pipeline-json", str(tmp_path / "missing.json")])

def test_naive_baseline_and_pipeline_find_the_same_cars(tmp_path):
    """On a synthetic scene with a perfect stand-in model, the full-frame baseline finds every car
    on both tracks; on the counted track it agrees with the pipeline car for car."""
    import shapely
    from naive import detect_full_frame
    from synthscene import ScalingLayout, _cars, write_scene, write_sites

    from railwatch.detect.chipplan import axis_starts
    from railwatch.detect.observation import observe_scene
    from railwatch.imagery.scene import open_scene
    from railwatch.site import load_site
    from railwatch.training.evaluate import evaluate_scene

    layout = ScalingLayout(400, 1.0, 260.0, 100.0)
    scene_path = write_scene(tmp_path / "scene.tif", layout)
    one_track, _ = write_sites(tmp_path, layout, "t")
    manifest = ModelManifest(tmp_path, "blobs", CLASSES, 1.0, 64, {}, {}, Accuracy(conf=0.3))
    blobs = BlobBackend(threshold=170, min_pixels=20, cut_confidence=0.9)
    detector = Detector(manifest, blobs, DetectorSettings(conf=0.3))
    cars = [np.asarray(c.exterior.coords)[:4] for ln in layout.tracks() for c in _cars(ln)]
    truth = np.asarray(cars)

    naive = detect_full_frame(scene_path, detector)
    assert naive.chips == len(axis_starts(400, 64, 24)) ** 2  # every chip of the frame
    zeros = np.zeros(len(truth), np.int64)
    ev = evaluate_scene("naive", naive.corners, naive.class_id, naive.confidence, truth, zeros)
    assert ev.any_class.recall == 1.0 and ev.any_class.precision == 1.0

    site = load_site(one_track)
    found = observe_scene(open_scene(scene_path, site.crs, site.aoi_local), site, detector).detections
    region = site.counting_region()
    centre = truth.mean(axis=1)
    counted = truth[shapely.contains_xy(region, centre[:, 0], centre[:, 1])]
    assert 0 < len(counted) < len(truth)
    ev = evaluate_scene("railwatch", found.corners, found.class_id, found.confidence, counted,
                        np.zeros(len(counted), np.int64))
    assert ev.any_class.recall == 1.0 and ev.any_class.precision == 1.0


def test_benchmark_site_is_the_bundled_site_cut_to_a_box():
    from simscenes import benchmark_site

    site = benchmark_site((632000.0, 4697618.0, 632600.0, 4698018.0))
    assert "mainline" in {t.name for t in site.tracks}
    assert site.zone_names == ("tumangang_yard",)
    minx, miny, maxx, maxy = site.aoi_local.bounds
    assert maxx - minx == pytest.approx(600, abs=1) and maxy - miny == pytest.approx(400, abs=1)


def test_markdown_table_and_interleaved_timing():
    from common import markdown_table, time_repeats

    calls = []
    stats = time_repeats({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert len(stats["a"].seconds) == 3
    table = markdown_table(["x", "y"], [[1, 0.5], ["z", float("nan")], [2, 12345.6]])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | 0.5 |", "| z | – |", "| 2 | 12,346 |"]


def test_scaling_layout_refuses_tracks_that_do_not_fit():
    from synthscene import ScalingLayout

    with pytest.raises(ValueError, match="do not fit"):
        ScalingLayout(256, 1.0, 400.0, 50.0)
