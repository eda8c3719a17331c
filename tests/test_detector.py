"""Chip plan and seam merging, with a fake model that sees exactly what lies in each chip."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine
from fake_detector import BlobBackend
from rasterio.crs import CRS
from shapely.geometry import LineString, box

from railwatch.classes import CLASSES
from railwatch.detect.chipplan import axis_starts, count_chips, plan_chips
from railwatch.detect.detector import Detector, DetectorSettings
from railwatch.detect.manifest import Accuracy, ModelManifest
from railwatch.detect.obb import corners_to_xywhr, merge_oriented, rotated_iou, rotated_nms, xywhr_to_corners
from railwatch.imagery.tile import PixelWindow, Tile

GSD = 0.3
CHIP = 320
CRS_UTM = CRS.from_epsg(32652)


def _manifest(tmp_path: Path) -> ModelManifest:
    return ModelManifest(tmp_path, "fake", CLASSES, GSD, CHIP, {}, {}, Accuracy(conf=0.3))


def _draw(tile: Tile, cars_px: np.ndarray) -> Tile:
    import cv2

    img = np.ascontiguousarray(tile.array.transpose(1, 2, 0))
    for c in cars_px:
        cv2.fillPoly(img, [np.round(c - 0.5).astype(np.int32)], (230, 230, 230))
    return Tile(np.ascontiguousarray(img.transpose(2, 0, 1)), tile.valid, tile.transform, tile.crs,
                tile.acquired, tile.scene, tile.core)


def _detector(tmp_path: Path) -> Detector:
    return Detector(_manifest(tmp_path), BlobBackend(), DetectorSettings(conf=0.3))


def _string_of_cars(n: int, angle_deg: float, start: tuple[float, float], length=19.2, width=3.24, gap=1.2):
    """Corners (n, 4, 2) in pixels (y down) of touching cars along a straight diagonal."""
    a = math.radians(angle_deg)
    step = (length + gap) / GSD
    xywhr = np.array([
        [start[0] + i * step * math.cos(a), start[1] - i * step * math.sin(a), length / GSD, width / GSD, -a]
        for i in range(n)
    ])
    return xywhr_to_corners(xywhr)


def _tile(rows: int, cols: int) -> Tile:
    return Tile(
        array=np.full((3, rows, cols), 90, np.uint8),
        valid=np.ones((rows, cols), bool),
        transform=Affine(GSD, 0, 500000.0, 0, -GSD, 4700000.0),
        crs=CRS_UTM,
        acquired=datetime(2023, 10, 5, tzinfo=UTC),
        scene="fake.tif",
        core=PixelWindow(0, 0, rows, cols),
    )


def _region(tile: Tile) -> shapely.Geometry:
    return box(*tile.bounds)


def test_forty_touching_cars_on_a_30_degree_diagonal_across_seams_give_forty(tmp_path):
    cars = _string_of_cars(40, 30.0, start=(60.0, 2300.0))
    rows = int(cars[..., 1].max()) + 80
    cols = int(cars[..., 0].max()) + 80
    tile = _draw(_tile(rows, cols), cars)
    found = _detector(tmp_path).detect([tile], _region(tile))
    assert len(found) == 40
    # Every true car matched by exactly one detection, well aligned.
    truth_map = tile.pixels_to_map(cars)
    iou = rotated_iou(found.corners, truth_map)
    # (the stand-in boxes come from rasterised pixels, so a thin diagonal box is off by ~1 px)
    assert (iou.max(axis=1) > 0.75).all() and (iou.max(axis=0) > 0.75).all()


def test_cars_on_neighbouring_diagonal_tracks_are_not_merged(tmp_path):
    # Two strings on parallel tracks 4.8 m apart at 40 degrees: the axis-aligned hulls of
    # side-by-side cars overlap heavily, which is what makes SAHI/supervision merge them.
    a = math.radians(40.0)
    offset = np.array([math.sin(a), math.cos(a)]) * 4.8 / GSD
    first = _string_of_cars(12, 40.0, start=(60.0, 900.0))
    second = first + offset
    cars = np.concatenate([first, second])
    hulls = [box(*shapely.polygons(c).bounds) for c in (first[3], second[3])]
    assert hulls[0].intersection(hulls[1]).area / hulls[0].union(hulls[1]).area > 0.4
    tile = _draw(_tile(int(cars[..., 1].max()) + 60, int(cars[..., 0].max()) + 60), cars)
    found = _detector(tmp_path).detect([tile], _region(tile))
    assert len(found) == 24


def test_one_car_cut_by_a_seam_gives_one(tmp_path):
    starts = axis_starts(1000, CHIP, math.ceil(24 / GSD))
    seam = starts[1] + CHIP - 5  # the right edge of the second chip, inside the third
    cars = _string_of_cars(1, 0.0, start=(seam, 150.0))
    tile = _draw(_tile(300, 1000), cars)
    found = _detector(tmp_path).detect([tile], _region(tile))
    assert len(found) == 1
    assert rotated_iou(found.corners, tile.pixels_to_map(cars))[0, 0] > 0.8


def test_only_detections_centred_in_core_and_region_are_kept(tmp_path):
    cars = _string_of_cars(6, 0.0, start=(50.0, 100.0))
    tile = Tile(
        array=np.full((3, 200, 600), 90, np.uint8), valid=np.ones((200, 600), bool),
        transform=Affine(GSD, 0, 500000.0, 0, -GSD, 4700000.0), crs=CRS_UTM,
        acquired=datetime(2023, 10, 5, tzinfo=UTC), scene="fake.tif",
        core=PixelWindow(0, 0, 200, 300),  # only the left half is this tile's own
    )
    tile = _draw(tile, cars)
    det = _detector(tmp_path)
    found = det.detect([tile], _region(tile))
    centres_px = tile.map_to_pixels(found.centres)
    assert len(found) > 0 and (centres_px[:, 0] < 300).all()
    assert len(found) == int((cars.mean(axis=1)[:, 0] < 300).sum())
    # A region covering nothing keeps nothing.
    far = box(0, 0, 1, 1)
    assert len(det.detect([tile], far)) == 0


def test_chip_plan_overlaps_by_a_car_and_skips_unwanted_chips():
    starts = axis_starts(1000, 320, 80)
    assert starts[0] == 0 and starts[-1] == 1000 - 320
    assert all(b - a <= 320 - 80 for a, b in itertools.pairwise(starts))
    assert axis_starts(100, 320, 80) == [0]
    wanted = np.zeros((1000, 1000), bool)
    wanted[:40, :] = True  # a corridor along the top edge
    chips = plan_chips(wanted, 320, 80)
    assert chips and all(c.row == 0 for c in chips)
    assert len(chips) == len(starts)
    with pytest.raises(ValueError):
        axis_starts(100, 320, 320)


def test_rotated_nms_keeps_touching_diagonal_neighbours_and_drops_duplicates():
    cars = _string_of_cars(3, 45.0, start=(50.0, 300.0))
    dup = cars[1] + 1.5
    corners = np.concatenate([cars, dup[None]])
    keep = rotated_nms(corners, np.array([0.9, 0.8, 0.7, 0.95]), 0.5)
    assert sorted(keep.tolist()) == [0, 2, 3]
    keep = merge_oriented(corners, np.array([0.9, 0.8, 0.7, 0.95]), 0.5)
    assert sorted(keep.tolist()) == [0, 2, 3]


def test_corner_conversions_round_trip():
    xywhr = np.array([[10.0, 20.0, 64.0, 11.0, 0.5], [0.0, 0.0, 30.0, 5.0, 2.0]])
    back = corners_to_xywhr(xywhr_to_corners(xywhr))
    np.testing.assert_allclose(back[:, :4], xywhr[:, :4], atol=1e-9)
    np.testing.assert_allclose(np.mod(back[:, 4], np.pi), np.mod(xywhr[:, 4], np.pi), atol=1e-9)


def test_the_string_helper_draws_what_it_says():
    # Guard the test helper itself: the string really is at 30 degrees with 1.2 m gaps.
    cars = _string_of_cars(2, 30.0, start=(0.0, 100.0))
    c = cars.mean(axis=1)
    d = c[1] - c[0]
    assert math.degrees(math.atan2(-d[1], d[0])) == pytest.approx(30.0)
    assert LineString(c).length * GSD == pytest.approx(19.2 + 1.2)


def _grid(rows: int, cols: int):
    from railwatch.imagery.grid import SiteGrid

    return SiteGrid(CRS_UTM, GSD, Affine(GSD, 0, 500000.0, 0, -GSD, 4700000.0), rows, cols)


def _corridor(grid, start_px, end_px, half_width_m=20.0):
    """A track corridor between two (col, row) pixel points, in map coordinates."""
    a, b = (grid.transform @ p for p in (start_px, end_px))
    return LineString([a, b]).buffer(half_width_m, cap_style="flat")


def _windows_tiles(tile: Tile, grid, windows):
    """The windows of a big drawn tile, as the scene reader would yield them."""
    for w in windows:
        r, c = w.window.slices
        yield Tile(tile.array[:, r, c], tile.valid[r, c], grid.window_transform(w.window), tile.crs,
                   tile.acquired, tile.scene, w.core)


def test_region_windows_cores_partition_the_region_and_hold_every_car_whole():
    from railwatch.detect.chipplan import ChipLayout, plan_region_windows

    grid = _grid(3000, 4000)
    region = shapely.union_all([
        _corridor(grid, (100, 2900), (3900, 200)),  # a long diagonal track
        _corridor(grid, (200, 400), (3800, 500)),  # a near-horizontal one
        box(*(grid.transform @ (2500, 2700)), *(grid.transform @ (3300, 1900))),  # a yard
    ])
    layout = ChipLayout(CHIP, math.ceil(24 / GSD), max_window=1500)
    windows = plan_region_windows(grid, region, layout)
    cores = [box(*grid.window_bounds(PixelWindow(w.window.row_off + w.core.row_off,
                                                   w.window.col_off + w.core.col_off,
                                                   w.core.rows, w.core.cols))) for w in windows]
    union = shapely.union_all(cores)
    assert region.difference(union).area < 1e-6
    assert sum(c.area for c in cores) == pytest.approx(union.area)
    assert all(w.window.cols <= 1500 and w.window.rows <= 1500 for w in windows)
    # Every car (up to the overlap long, any angle) centred in the region lies whole in a chip.
    chips = [
        (w.window.row_off + r, w.window.col_off + c)
        for w in windows
        for r in axis_starts(w.window.rows, CHIP, layout.overlap)
        for c in axis_starts(w.window.cols, CHIP, layout.overlap)
    ]
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = region.bounds
    pts = rng.uniform((minx, miny), (maxx, maxy), size=(4000, 2))
    pts = pts[shapely.contains_xy(region, pts[:, 0], pts[:, 1])]
    inv = ~grid.transform
    starts = np.asarray(chips)
    for x, y in pts:
        col, row = inv @ (x, y)
        angle = rng.uniform(0, math.pi)
        half = 0.5 * layout.overlap * np.array([abs(math.cos(angle)), abs(math.sin(angle))])
        lo = np.maximum([col - half[0], row - half[1]], 0)
        hi = np.minimum([col + half[0], row + half[1]], [grid.cols, grid.rows])
        whole = ((starts[:, 1] <= lo[0]) & (starts[:, 1] + CHIP >= hi[0])
                 & (starts[:, 0] <= lo[1]) & (starts[:, 0] + CHIP >= hi[1]))
        assert whole.any(), (col, row)
    # Fewer chips than 1024 px blocks with a 96 px halo, each chipped on its own.
    from railwatch.imagery.grid import plan_windows

    blocks = plan_windows(grid, region)
    assert len(chips) < count_chips(list(blocks), layout)


def test_forty_cars_across_region_windows_give_forty(tmp_path):
    # The same diagonal string, now read as the pipeline reads it: windows of a chip plan over
    # the track's corridor, each a tile with its own core; boxes merged across tiles.
    from railwatch.detect.chipplan import plan_region_windows

    cars = _string_of_cars(40, 30.0, start=(150.0, 2300.0))
    rows = int(cars[..., 1].max()) + 200
    cols = int(cars[..., 0].max()) + 200
    big = _draw(_tile(rows, cols), cars)
    grid = _grid(rows, cols)
    centres = cars.mean(axis=1)
    region = _corridor(grid, tuple(centres[0] - (30, -17)), tuple(centres[-1] + (30, -17)))
    det = _detector(tmp_path)
    windows = plan_region_windows(grid, region, det.chip_layout)
    assert len(windows) > 3
    found = det.detect(_windows_tiles(big, grid, windows), region)
    assert len(found) == 40
    iou = rotated_iou(found.corners, big.pixels_to_map(cars))
    assert (iou.max(axis=1) > 0.75).all() and (iou.max(axis=0) > 0.75).all()


def test_the_manifest_gives_the_tuned_threshold_and_names_its_files(tmp_path):
    import json

    from railwatch.detect.manifest import DEFAULT_CONF, ModelFile
    from railwatch.errors import ModelError

    doc = {"name": "m", "classes": list(CLASSES), "gsd": GSD, "chip": CHIP,
           "files": {"onnx": {"path": "m.onnx", "sha256": "0" * 64}}, "accuracy": {"conf": 0.27}}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    manifest = ModelManifest.load(tmp_path)
    assert manifest.conf == 0.27
    assert Detector(manifest, BlobBackend()).conf == 0.27
    assert Detector(manifest, BlobBackend(), DetectorSettings(conf=0.5)).conf == 0.5
    assert manifest.path_of(ModelFile.ONNX) == tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="no 'weights' file"):
        manifest.path_of(ModelFile.WEIGHTS)
    del doc["accuracy"]
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    assert ModelManifest.load(tmp_path).conf == DEFAULT_CONF
    doc["accuracy"] = {"conf": 1.5}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"accuracy.conf 1.5"):
        ModelManifest.load(tmp_path)


class _CountingNamer:
    """A stand-in namer: every crop is a covered car with probability 0.8, except that a box
    shorter than 12 m is "not a car"; it counts the crops it is asked to name."""

    def __init__(self):
        from railwatch.detect.crops import CropSpec
        from railwatch.detect.namer import NamerSpec

        self.spec = NamerSpec(CropSpec(), veto=0.5)
        self.named = 0
        self.calls = 0

    def crops(self, image, corners_px, pixel_gsd):
        from railwatch.detect.crops import box_axes

        length = box_axes(corners_px)[2] * pixel_gsd if len(corners_px) else np.zeros(0)
        return np.zeros((len(corners_px), 3, 4, 10), np.uint8), np.column_stack([length, length / 6])

    def name_crops(self, crops, size):
        from railwatch.detect.namer import Naming

        self.calls += 1
        self.named += len(crops)
        n = len(crops)
        probs = np.zeros((n, 6))
        short = size[:, 0] < 12.0
        probs[~short, 0], probs[~short, 5] = 0.8, 0.2
        probs[short, 5] = 1.0
        return Naming(np.zeros(n, np.int64), probs[:, 0], probs[:, 5], probs)


def test_each_car_is_named_once_after_the_seams_are_merged_in_one_batch(tmp_path):
    """Forty cars across chip seams (many seen whole by two chips): the namer names each kept
    car once, in one batch for the pass, and its veto drops what it calls not a car."""
    cars = _string_of_cars(40, 30.0, start=(60.0, 2300.0))
    stub = _string_of_cars(1, 30.0, start=(1500.0, 300.0), length=8.0)  # "not a car" to the namer
    all_cars = np.concatenate([cars, stub])
    tile = _draw(_tile(int(all_cars[..., 1].max()) + 80, int(all_cars[..., 0].max()) + 80), all_cars)
    namer = _CountingNamer()
    det = Detector(_manifest(tmp_path), BlobBackend(), DetectorSettings(conf=0.3), namer=namer)
    found = det.detect([tile], _region(tile))
    assert len(found) == 40 and namer.calls == 1 and namer.named == 41  # once each, after merging
    assert np.allclose(found.naming, 0.8) and (found.class_id == 0).all()
