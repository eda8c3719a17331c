"""The analyst's correct-and-retrain loop on a simulated scene: detections.geojson as `railwatch
count`/`detect` writes it, false boxes deleted and missed cars drawn (some of unknown kind), fed
straight back to `railwatch dataset from-labels`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from click.testing import CliRunner
from pyproj import Transformer
from shapely.geometry import mapping

from railwatch.classes import CLASSES
from railwatch.cli import main
from railwatch.detect.chipplan import CAR_OVERLAP_M, axis_starts
from railwatch.detect.detections import Detections
from railwatch.imagery.grid import SiteGrid
from railwatch.imagery.scene import footprint_lonlat, open_scene
from railwatch.simulate.fleet import Stock
from railwatch.simulate.imaging import Sensor
from railwatch.simulate.yard import YardStyle
from railwatch.simulate.yardscene import RenderedYard, YardScene, render_yard_scene, write_yard_scene
from railwatch.site import site_for_footprint
from railwatch.training.evaluate import rotated_iou
from railwatch.training.labels import UNKNOWN_KIND, read_labels

STYLE = YardStyle(Stock.EUROPEAN, (10, 12), 0.8, electrified=0.0, no_cars=0.0, curved=0.0)
SENSOR = Sensor(blur_px=0.5, noise=2.0, jpeg_quality=90, sharpen=0.3)


def _scene(tmp: Path, seed: int, name: str) -> tuple[RenderedYard, Path]:
    scene = render_yard_scene(YardScene(seed=seed, size_m=120.0, style=STYLE, sensor=SENSOR))
    path, _ = write_yard_scene(scene, tmp / name)
    return scene, path


def _detections(scene: RenderedYard, path: Path, corners: np.ndarray, classes: np.ndarray) -> list[dict]:
    """Features exactly as `railwatch count`/`detect` write them (Detections.features)."""
    n = len(corners)
    dets = Detections(corners, classes, np.linspace(0.5, 0.95, n), np.full(n, path.stem, dtype=object),
                      np.full(n, path.name, dtype=object), scene.crs)
    return dets.features("2024-09-10T09:30:00+00:00")


def _lonlat(scene: RenderedYard, corners: np.ndarray) -> list[list[float]]:
    to_ll = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(corners[:, 0], corners[:, 1])
    ring = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
    return [*ring, ring[0]]


def _label_boxes(path: Path, ds: Path, gsd: float, chip: int) -> tuple[np.ndarray, np.ndarray]:
    """Every label box of the dataset's chips of ``path``, back in the scene's map coordinates."""
    site = site_for_footprint(path.stem, footprint_lonlat(path))
    grid = SiteGrid.covering(open_scene(path, site.crs, site.aoi_local).footprint, site.crs, gsd)
    overlap = min(chip - 1, math.ceil(CAR_OVERLAP_M / gsd))
    origins = [(r, c) for r in axis_starts(grid.rows, chip, overlap)
               for c in axis_starts(grid.cols, chip, overlap)]
    boxes, classes = [], []
    for txt in ds.glob(f"labels/*/{path.stem}_*.txt"):
        r0, c0 = origins[int(txt.stem.rsplit("_", 1)[1])]
        for line in txt.read_text().splitlines():
            v = line.split()
            px = np.array(v[1:], float).reshape(4, 2) * chip + [c0, r0]
            x, y = grid.transform @ (px[:, 0], px[:, 1])
            boxes.append(np.column_stack([x, y]))
            classes.append(int(v[0]))
    return np.array(boxes).reshape(-1, 4, 2), np.array(classes, dtype=np.int64)


def _on_a_car(box: np.ndarray, cars: np.ndarray) -> float:
    """The largest share of ``box`` covered by one of ``cars``."""
    b = shapely.Polygon(box)
    return max(b.intersection(shapely.Polygon(c)).area for c in cars) / b.area


def test_corrected_detections_round_trip_into_a_training_set(tmp_path):
    scene, path = _scene(tmp_path, 11, "yard_20240910.tif")
    truth = np.array([c.corners() for c in scene.cars])
    classes = np.array([c.car.cls.class_id for c in scene.cars])
    assert len(truth) >= 10
    missed = [0, 3, 6, 9]  # the detector missed these four ...
    kept = [k for k in range(len(truth)) if k not in missed]
    false = []  # ... and put three boxes on the shadow bands beside real cars
    for k in (1, 4, 7):
        along = truth[k][1] - truth[k][0]
        normal = np.array([-along[1], along[0]]) / np.linalg.norm(along)
        false.append(truth[k] + normal * (scene.cars[k].car.width + 0.4))
    false = np.array(false)
    found = np.concatenate([truth[kept], false])
    found_cls = np.concatenate([classes[kept], np.zeros(3, dtype=np.int64)])
    features = _detections(scene, path, found, found_cls)
    collection = {"type": "FeatureCollection", "features": features}
    (tmp_path / "detections.geojson").write_text(json.dumps(collection))

    # the analyst in QGIS: delete the false boxes, draw the four missed cars
    doc = json.loads((tmp_path / "detections.geojson").read_text())
    doc["features"] = doc["features"][: len(kept)]
    ring = [_lonlat(scene, truth[k]) for k in missed]
    doc["features"] += [
        {"type": "Feature", "properties": None, "geometry": {"type": "Polygon", "coordinates": [ring[0]]}},
        {"type": "Feature", "properties": {"class": "rail_car"},
         "geometry": {"type": "Polygon", "coordinates": [ring[1]]}},
        {"type": "Feature",
         "properties": {k: None for k in ("scene", "acquired", "class", "confidence", "zone")},
         "geometry": {"type": "Polygon", "coordinates": [ring[2]]}},
        {"type": "Feature", "properties": {"class": CLASSES[classes[missed[3]]], "scene": path.name},
         "geometry": {"type": "MultiPolygon", "coordinates": [[ring[3]]]}},
    ]
    corrected = tmp_path / "corrected.geojson"
    corrected.write_text(json.dumps(doc))

    out = tmp_path / "ds"
    result = CliRunner().invoke(main, ["dataset", "from-labels", str(path), "--labels", str(corrected),
                                       "--out", str(out), "--chip", "160"])
    assert result.exit_code == 0, result.output
    assert "3 cars of unknown kind" in result.output and "train the finder only" in result.output
    meta = yaml.safe_load((out / "data.yaml").read_text())
    assert meta["unknown_kind"]["class"] == UNKNOWN_KIND == 5 and meta["unknown_kind"]["cars"] == 3
    assert meta["chips"]["val"] > 0 and meta["chips"]["train"] > 0

    boxes, labelled = _label_boxes(path, out, 0.3, 160)
    iou = rotated_iou(boxes, truth)
    # every label lies on a real car (cut ones partly; the deleted shadow boxes are gone) ...
    assert all(_on_a_car(b, truth) > 0.9 for b in boxes)
    car_of = iou.argmax(axis=1)
    whole = iou.max(axis=1) > 0.95  # uncut labels: same box, same class (unknown for three)
    expected = classes.copy()
    expected[missed[:3]] = UNKNOWN_KIND
    assert np.array_equal(labelled[whole], expected[car_of[whole]])
    # ... and every car inside the image, the four drawn ones included, is labelled whole in a chip
    rows, cols = scene.image.shape[:2]
    x0, y1 = scene.transform.c, scene.transform.f
    x1, y0 = x0 + cols * 0.3, y1 - rows * 0.3
    inside = [k for k, c in enumerate(truth) if (c[:, 0] > x0).all() and (c[:, 0] < x1).all()
              and (c[:, 1] > y0).all() and (c[:, 1] < y1).all()]
    assert set(missed) <= set(inside) and len(inside) >= 0.8 * len(truth)
    assert set(inside) <= set(car_of[whole])
    assert rotated_iou(boxes, false).max() < 0.6


def test_a_chip_with_a_car_of_unknown_kind_trains_a_one_class_finder_only(tmp_path):
    from railwatch.detect.offline import import_ultralytics

    import_ultralytics()
    import cv2
    from ultralytics.data.utils import verify_image_label

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "labels" / "a.txt").write_text(f"{UNKNOWN_KIND} 0.1 0.1 0.5 0.1 0.5 0.2 0.1 0.2\n"
                                               "0 0.1 0.5 0.5 0.5 0.5 0.6 0.1 0.6\n")
    args = (str(tmp_path / "images" / "a.png"), str(tmp_path / "labels" / "a.txt"), "", False,
            len(CLASSES), 0, 0)
    *_, corrupt, message = verify_image_label((*args, False))  # five classes: the chip is skipped
    assert corrupt == 1 and "exceeds dataset class count" in message
    *_, corrupt, message = verify_image_label((*args, True))  # single_cls (one-class finder): used
    assert corrupt == 0


def test_scene_property_ties_labels_to_their_image(tmp_path):
    a, path_a = _scene(tmp_path, 11, "yard_a_20240910.tif")
    b, path_b = _scene(tmp_path, 12, "yard_b_20240917.tif")  # the same place a week later
    feats = [f for s, p in ((a, path_a), (b, path_b))
             for f in _detections(s, p, np.array([c.corners() for c in s.cars]),
                                  np.array([c.car.cls.class_id for c in s.cars]))]
    other = dict(feats[0], properties={**feats[0]["properties"], "scene": "yard_c_20240924.tif"})
    labels = tmp_path / "two.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": [*feats, other]}))
    cars = read_labels(labels)
    assert {c.scene for c in cars} == {path_a.name, path_b.name, "yard_c_20240924.tif"}
    out = tmp_path / "ds"
    yml_result = CliRunner().invoke(main, ["dataset", "from-labels", str(path_a), str(path_b), "--labels",
                                           str(labels), "--out", str(out), "--chip", "160"])
    assert yml_result.exit_code == 0, yml_result.output
    assert "1 labelled cars name an image that was not given" in yml_result.output
    for scene, path, other_scene in ((a, path_a, b), (b, path_b, a)):
        boxes, _ = _label_boxes(path, out, 0.3, 160)
        mine = np.array([c.corners() for c in scene.cars])
        assert all(_on_a_car(b, mine) > 0.9 for b in boxes)  # only this image's cars, not the other week's
        assert rotated_iou(boxes, np.array([c.corners() for c in other_scene.cars])).max() < 0.5


def test_labels_in_a_projected_crs_and_bad_geometry(tmp_path):
    box = shapely.box(500000, 5250000, 500014.4, 5250002.9)
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}}
    doc = {"type": "FeatureCollection", "crs": crs,
           "features": [{"type": "Feature", "properties": {"class": "open_car"}, "geometry": mapping(box)}]}
    path = tmp_path / "utm.geojson"
    path.write_text(json.dumps(doc))
    (car,) = read_labels(path)
    lon, lat = car.polygon.centroid.coords[0]
    assert lon == pytest.approx(9.0, abs=0.01) and lat == pytest.approx(47.4, abs=0.1)
    assert car.class_id == CLASSES.index("open_car")
    del doc["crs"]
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="not in lon/lat; save the layer as GeoJSON in EPSG:4326"):
        read_labels(path)
    doc["features"][0]["geometry"] = {"type": "LineString", "coordinates": [[9, 47], [9.1, 47]]}
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="feature 0 is a LineString; draw each car as a Polygon"):
        read_labels(path)


@pytest.mark.slow
def test_the_readme_loop_runs_end_to_end_on_cars_of_unknown_kind(tmp_path):
    """count → delete false boxes and draw missed cars without a kind (QGIS) → dataset
    from-labels with the store → train --stage finder --from the shipped model, defaults →
    count with the new model: no traceback anywhere, a one-class finder that keeps the namer,
    a threshold chosen on the analyst's held-out chips, and a manifest without NaN."""
    from railwatch.detect.manifest import ModelManifest, default_model_dir
    from railwatch.store.records import site_geojson

    scene, path = _scene(tmp_path, 21, "yard_20240910.tif")
    site_file = tmp_path / "yard.geojson"
    site_file.write_text(json.dumps(site_geojson(site_for_footprint("yard", footprint_lonlat(path)))))
    runner = CliRunner()
    counted = tmp_path / "counted"
    result = runner.invoke(main, ["count", str(path), "--site", str(site_file), "--out", str(counted),
                                  "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads((counted / "detections.geojson").read_text())
    assert doc["features"], "the shipped model found nothing to correct"

    # the analyst: delete every box on no car, draw every car nobody found, kinds left empty
    truth = np.array([c.corners() for c in scene.cars])
    to_local = Transformer.from_crs("EPSG:4326", scene.crs, always_xy=True)

    def local(feature: dict) -> np.ndarray:
        ring = np.array(feature["geometry"]["coordinates"][0][:4])
        return np.column_stack(to_local.transform(ring[:, 0], ring[:, 1]))

    found = np.array([local(f) for f in doc["features"]])
    on_car = rotated_iou(found, truth).max(axis=1) >= 0.3
    n_deleted = int((~on_car).sum())
    doc["features"] = [f for f, ok in zip(doc["features"], on_car, strict=True) if ok]
    seen = (rotated_iou(truth, found[on_car]).max(axis=1) >= 0.3 if on_car.any()
            else np.zeros(len(truth), bool))
    doc["features"] += [{"type": "Feature", "properties": {"class": None},
                         "geometry": {"type": "Polygon", "coordinates": [_lonlat(scene, truth[k])]}}
                        for k in np.flatnonzero(~seen)]
    corrected = tmp_path / "corrected.geojson"
    corrected.write_text(json.dumps(doc))

    ds = tmp_path / "ds"
    result = runner.invoke(main, ["dataset", "from-labels", str(path), "--labels", str(corrected),
                                  "--db", str(counted / "railwatch.sqlite"), "--out", str(ds)])
    assert result.exit_code == 0, result.output
    assert f"{n_deleted} boxes counted on these images are not in" in result.output
    assert f"--from {default_model_dir()}" in result.output
    meta = yaml.safe_load((ds / "data.yaml").read_text())
    assert meta["deleted"] == n_deleted and meta["analyst"] is True

    run = tmp_path / "run"
    result = runner.invoke(main, ["train", "--stage", "finder", "--data", str(ds), "--from",
                                  str(default_model_dir()), "--epochs", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "one-class finder" in result.stderr and "Traceback" not in result.output + result.stderr
    text = (run / "manifest.json").read_text()
    assert "NaN" not in text
    manifest = ModelManifest.load(run)
    assert manifest.finder_classes == 1 and manifest.namer_spec() is not None
    assert "held-out chips of the analyst's labels" in manifest.accuracy.evaluated_on
    assert manifest.accuracy.document["n_cars"] > 0 and "conf_chosen" in manifest.accuracy.document
    assert manifest.accuracy.system is not None
    assert "before this fine-tune" in str(manifest.accuracy.system["measured_with"])
    assert manifest.training["settings"]["lr0"] == 1e-3  # the analyst fine-tune's default

    recount = tmp_path / "recount"
    result = runner.invoke(main, ["count", str(path), "--site", str(site_file), "--out", str(recount),
                                  "--model", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    features = json.loads((recount / "detections.geojson").read_text())["features"]
    assert all(0.0 <= f["properties"]["class_confidence"] <= 1.0 for f in features)
