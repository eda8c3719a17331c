from __future__ import annotations

import numpy as np

from railwatch.imagery.clouds import cloud_mask


def _ground(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(100, 20, (3, 800, 800)).clip(0, 255).astype(np.uint8)


def test_a_large_bright_smooth_cloud_is_masked_with_a_margin():
    img = _ground()
    img[:, 200:500, 300:700] = 235  # 90 × 120 m at 0.3 m
    m = cloud_mask(img, 0.3)
    assert m[200:500, 300:700].all()
    assert m[190, 500]  # margin
    assert not m[50:150, 50:150].any()


def test_white_cars_and_textured_bright_ground_are_not_clouds():
    img = _ground(1)
    for i in range(8):  # a string of white aluminium boxcars
        img[:, 400:411, 20 + i * 68 : 84 + i * 68] = 245
    gravel = np.random.default_rng(2).normal(200, 25, (3, 200, 200)).clip(0, 255).astype(np.uint8)
    img[:, 550:750, 550:750] = gravel  # bright but rough
    m = cloud_mask(img, 0.3)
    assert not m.any()


def test_inspect_and_count_report_the_same_coverage_for_a_clouded_scene(tmp_path, monkeypatch):
    import json
    import re

    import pandas as pd
    import rasterio
    from click.testing import CliRunner
    from conftest import write_scene, write_site
    from fake_detector import BlobBackend

    from railwatch.classes import CLASS_NAMES
    from railwatch.cli import main
    from railwatch.detect.detector import Detector
    from railwatch.detect.manifest import ModelManifest
    from railwatch.detect.observation import measure_coverage, observe_scene, plan_scene
    from railwatch.imagery.scene import open_scene
    from railwatch.site import load_site

    lon, lat = 130.6081, 42.4214
    site_path = write_site(tmp_path / "site.geojson", lon, lat)
    image = write_scene(tmp_path / "clouded_20231005.tif", "EPSG:32652", lon, lat).path
    with rasterio.open(image, "r+") as ds:  # an opaque cloud over the western half
        data = ds.read()
        # Bright, grey, with the faint texture of a real cloud top (a perfectly flat 235 would be
        # blank, no signal, and unobserved with or without the cloud mask).
        grain = np.random.default_rng(0).normal(0, 3, (data.shape[1], 300))
        data[:, :, :300] = np.clip(np.rint(235 + grain), 0, 255).astype(data.dtype)
        ds.write(data)
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({
        "name": "blobs", "classes": list(CLASS_NAMES), "gsd": 0.5, "chip": 64,
        "files": {"onnx": {"path": "blobs.onnx", "sha256": "b" * 64}},
        "accuracy": {"conf": 0.3}}))
    detector = Detector(ModelManifest.load(model), BlobBackend())
    site = load_site(site_path)
    scene = open_scene(image, site.crs, site.aoi_local)

    counted = observe_scene(scene, site, detector).coverage["yard"]
    plan = plan_scene(scene, site, detector.gsd, detector.chip_layout)
    assert measure_coverage(scene, plan) == {"yard": counted}
    assert 0.3 < counted < 0.6  # the cloud hides about half of the yard...
    assert measure_coverage(scene, plan, mask_clouds=False)["yard"] > 0.99  # ...not the scene's edge

    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: detector)
    out = tmp_path / "out"
    ran = CliRunner().invoke(main, ["count", str(image), "--site", str(site_path), "--out", str(out),
                                    "--no-progress"])
    assert ran.exit_code == 0, ran.output + ran.stderr
    frames = pd.read_csv(out / "frames.csv")
    assert frames["coverage"].round(4).unique().tolist() == [round(counted, 4)]
    shown = CliRunner().invoke(main, ["inspect", str(image), "--site", str(site_path),
                                      "--model", str(model)])
    assert shown.exit_code == 0, shown.output + shown.stderr
    printed = re.search(r"zone yard +overlap +[\d.]+%  coverage +([\d.]+)%", shown.output)
    assert printed is not None, shown.output
    assert float(printed.group(1)) == round(100 * counted, 1)
