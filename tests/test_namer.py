"""The two-stage recognition pieces: canonical crops, the namer's runtimes, the error-matrix correction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from railwatch.classes import CLASS_NAMES
from railwatch.count.errormatrix import ErrorMatrix
from railwatch.detect.crops import PAD_VALUE, CropSpec, box_axes, canonical_crops


def _bar_image(centre: tuple[float, float], angle_deg: float, length_px: float, width_px: float,
               size: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with one bright oriented bar (a car seen from above) and the bar's corners,
    the bar's left half brighter than its right so that its direction can be told."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    th = math.radians(angle_deg)
    a = np.array([math.cos(th), math.sin(th)])
    b = np.array([-a[1], a[0]])
    u = (xx - centre[0]) * a[0] + (yy - centre[1]) * a[1]
    v = (xx - centre[0]) * b[0] + (yy - centre[1]) * b[1]
    img = np.full((3, size, size), 40, dtype=np.uint8)
    on = (np.abs(u) < length_px / 2) & (np.abs(v) < width_px / 2)
    img[:, on & (u < 0)] = 230
    img[:, on & (u >= 0)] = 160
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [length_px / 2, width_px / 2]
    corners = np.asarray(centre) + half @ np.array([a, b])
    return img, corners


@pytest.mark.parametrize("angle", [0.0, 17.0, 45.0, 90.0, 133.0, 200.0, 271.0])
def test_canonical_crop_is_axis_aligned_right_size_and_centred(angle):
    # A 19.2 × 3.2 m car at 0.3 m per pixel (64 × 10.7 px), at any angle.
    img, corners = _bar_image((118.3, 121.7), angle, 19.2 / 0.3, 3.2 / 0.3)
    spec = CropSpec(gsd=0.3, length_m=30.0, width_m=12.0)
    crop = canonical_crops(img, corners[None], 0.3, spec)
    assert crop.shape == (1, 3, 40, 100) and crop.dtype == np.uint8
    car = crop[0, 0] > 100
    cols = np.nonzero(car.any(axis=0))[0]
    rows = np.nonzero(car.any(axis=1))[0]
    # The car lies along the columns: 64 px long, ~11 px wide, centred in the crop.
    assert abs((cols[-1] - cols[0] + 1) - 64) <= 2
    assert abs((rows[-1] - rows[0] + 1) - 10.7) <= 2
    assert abs((cols[0] + cols[-1]) / 2 - 49.5) <= 1.0
    assert abs((rows[0] + rows[-1]) / 2 - 19.5) <= 1.0
    # Outside the car: the image's background, not the pad (the crop lies inside the image).
    assert abs(int(crop[0, 0, 0, 0]) - 40) <= 2


def test_box_axes_do_not_depend_on_the_starting_corner():
    _, corners = _bar_image((100.0, 100.0), 30.0, 60.0, 10.0)
    first = box_axes(corners[None])
    for shift in range(1, 4):
        again = box_axes(np.roll(corners, shift, axis=0)[None])
        for a, b in zip(first, again, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-9)
    assert first[2][0] == pytest.approx(60.0) and first[3][0] == pytest.approx(10.0)


def test_crop_beyond_the_image_is_padded_and_scales_with_gsd():
    img, corners = _bar_image((5.0, 120.0), 0.0, 20.0, 6.0)
    crop = canonical_crops(img, corners[None], 0.5, CropSpec(gsd=0.25, length_m=20.0, width_m=8.0))
    assert crop.shape == (1, 3, 32, 80)
    assert (crop[0, :, :, :5] == PAD_VALUE).all()  # left of the image's edge
    # 20 px at 0.5 m = 10 m = 40 px at 0.25 m (the left part of the bar is cut by the edge).
    bright = np.nonzero((crop[0, 0] > 100).any(axis=0))[0]
    assert bright[-1] == pytest.approx(59, abs=2)


def _expected_matrix(true_counts: np.ndarray, p_pred_given_true: np.ndarray, false_per_class: np.ndarray,
                     scale: float) -> np.ndarray:
    k = len(CLASS_NAMES)
    m = np.zeros((k + 1, k + 1))
    m[:k, :k] = p_pred_given_true * true_counts * scale
    m[k, :k] = (1 - p_pred_given_true.sum(axis=0)) * true_counts * scale
    m[:k, k] = false_per_class * scale
    return np.rint(m)


P = np.array([  # P(called row | truly column)
    [0.90, 0.05, 0.02, 0.10, 0.10],
    [0.03, 0.85, 0.02, 0.03, 0.00],
    [0.01, 0.02, 0.90, 0.00, 0.00],
    [0.02, 0.03, 0.00, 0.75, 0.00],
    [0.01, 0.00, 0.01, 0.00, 0.80],
])
TRUE = np.array([60.0, 30.0, 20.0, 10.0, 5.0])
FALSE = np.array([0.0, 2.0, 1.0, 1.0, 0.0])


def test_error_matrix_correction_recovers_known_true_counts():
    matrix = ErrorMatrix(_expected_matrix(TRUE, P, FALSE, 20.0))
    detected = P @ TRUE + FALSE  # what such a system reports, in expectation
    corrected = matrix.correct(detected)
    for j, name in enumerate(CLASS_NAMES):
        assert corrected[name].estimate == pytest.approx(TRUE[j], rel=0.01)
        assert corrected[name].low <= TRUE[j] <= corrected[name].high
    # The uncorrected counts are off (covered cars under-counted by 2.6), the corrected ones not.
    assert detected[0] < TRUE[0] - 2


def test_interval_widens_when_the_matrix_rests_on_fewer_cars():
    detected = P @ TRUE + FALSE
    many = ErrorMatrix(_expected_matrix(TRUE, P, FALSE, 50.0)).correct(detected)
    few = ErrorMatrix(_expected_matrix(TRUE, P, FALSE, 1.0)).correct(detected)
    for name in ("covered_car", "open_car", "tank_car"):
        assert few[name].sd > many[name].sd
        assert few[name].high - few[name].low > many[name].high - many[name].low


def test_error_matrix_refuses_bad_shapes_and_round_trips_json():
    with pytest.raises(ValueError):
        ErrorMatrix(np.zeros((5, 5)))
    with pytest.raises(ValueError):
        ErrorMatrix(-np.ones((6, 6)))
    m = ErrorMatrix(_expected_matrix(TRUE, P, FALSE, 3.0), measured_on="test")
    again = ErrorMatrix.from_json(m.as_json())
    np.testing.assert_array_equal(again.counts, m.counts)
    nan = m.correct([math.nan] * len(CLASS_NAMES))
    assert all(math.isnan(v.estimate) for v in nan.values())


def test_namer_onnx_and_torch_agree(tmp_path):
    pytest.importorskip("torch")
    import torch

    from railwatch.detect.namer import Namer, NamerSpec
    from railwatch.training.namer import NAMER_LABELS, build_net, export_onnx, predict_torch

    torch.manual_seed(0)
    spec = CropSpec()
    net = build_net().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that the export is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = export_onnx(net, spec, tmp_path / "namer.onnx")
    rng = np.random.default_rng(0)
    rows, cols = spec.shape
    crops = rng.integers(0, 256, (7, 3, rows, cols), dtype=np.uint8)
    sizes = np.column_stack([rng.uniform(10, 22, 7), rng.uniform(2.8, 3.4, 7)]).astype(np.float32)
    from_torch = predict_torch(net, crops, sizes)
    from_onnx = Namer(path, NamerSpec(spec)).probabilities(crops, sizes)
    assert from_onnx.shape == (7, len(NAMER_LABELS))
    np.testing.assert_allclose(from_onnx, from_torch, atol=1e-5)
    np.testing.assert_allclose(from_onnx.sum(axis=1), 1.0, atol=1e-5)


def test_scenes_that_disagree_widen_the_interval_beyond_the_binomial():
    # The same pooled matrix from scenes alike, and from scenes that disagree (one finds 95 % of
    # the covered cars, the other 55 %): the second's found share is less certain.
    clear, murky = P.copy(), P.copy()
    clear[:, 0] *= 0.95 / P[:, 0].sum()
    murky[:, 0] *= 0.55 / P[:, 0].sum()
    apart = np.stack([_expected_matrix(TRUE, clear, FALSE, 10.0), _expected_matrix(TRUE, murky, FALSE, 10.0)])
    pooled = apart.sum(axis=0)
    alike = np.stack([np.floor(pooled / 2), pooled - np.floor(pooled / 2)])
    detected = P @ TRUE + FALSE
    same = ErrorMatrix(pooled, per_scene=alike).correct(detected)["covered_car"]
    differ = ErrorMatrix(pooled, per_scene=apart).correct(detected)["covered_car"]
    assert same.estimate == pytest.approx(differ.estimate)
    assert differ.sd > 1.5 * same.sd
    with pytest.raises(ValueError):
        ErrorMatrix(pooled, per_scene=alike[:1])  # does not sum to the counts


def test_mobilenet_namer_saves_loads_and_exports_like_torch(tmp_path):
    """The ImageNet-grown namer: its frozen first blocks stay in eval mode while it trains, its
    saved state loads back as the same network (weights only), and ONNX agrees with torch."""
    pytest.importorskip("torchvision")
    import torch

    from railwatch.detect.namer import Namer, NamerSpec
    from railwatch.training.namer import (
        MOBILENET_FROZEN,
        build_mobilenet,
        export_onnx,
        load_state,
        predict_torch,
        save_state,
    )

    torch.manual_seed(1)
    spec = CropSpec()
    net = build_mobilenet()  # no ImageNet file in tests: random weights, same graph
    net.train()
    assert not any(net.features[i].training for i in range(MOBILENET_FROZEN))
    assert net.features[MOBILENET_FROZEN].training
    assert not any(p.requires_grad for p in net.features[:MOBILENET_FROZEN].parameters())
    net.eval()
    save_state(net, tmp_path / "namer.pt", spec, (0, 0, 0, 0), "mobilenet_v2")
    again = load_state(tmp_path / "namer.pt")
    rng = np.random.default_rng(2)
    rows, cols = spec.shape
    crops = rng.integers(0, 256, (5, 3, rows, cols), dtype=np.uint8)
    sizes = np.column_stack([rng.uniform(10, 22, 5), rng.uniform(2.8, 3.4, 5)]).astype(np.float32)
    before = predict_torch(net, crops, sizes)
    np.testing.assert_allclose(predict_torch(again, crops, sizes), before, atol=1e-6)
    path = export_onnx(again, spec, tmp_path / "namer.onnx")
    from_onnx = Namer(path, NamerSpec(spec)).probabilities(crops, sizes)
    np.testing.assert_allclose(from_onnx, predict_torch(net, crops, sizes), atol=1e-4)


def test_mobilenet_namer_refuses_imagenet_weights_that_are_not_the_pinned_file(tmp_path):
    pytest.importorskip("torchvision")
    from railwatch.errors import RailwatchError
    from railwatch.training.namer import build_mobilenet

    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(RailwatchError, match="not torchvision's MobileNetV2"):
        build_mobilenet(fake)


def test_a_scene_is_corrected_by_its_own_conditions_matrix_when_it_was_measured_on_enough_cars():
    from railwatch.count.errormatrix import MIN_CONDITION_CARS, SceneCondition

    k = len(CLASS_NAMES) + 1
    good = np.zeros((k, k))
    good[np.arange(k - 1), np.arange(k - 1)] = 100.0  # finds every car, names it right
    poor = good.copy()
    poor[-1, 0] = 100.0  # misses half the covered cars
    scenes_good = np.stack([good / 4] * 4)
    scenes_poor = np.stack([poor / 4] * 4)
    low_sun = SceneCondition((0.0, 0.6), (-90.0, 30.0))
    high_sun = SceneCondition((0.0, 0.6), (30.0, 90.5))
    pooled = ErrorMatrix(good + poor, per_scene=np.concatenate([scenes_good, scenes_poor]),
                         by_condition=((high_sun, ErrorMatrix(good, per_scene=scenes_good)),
                                       (low_sun, ErrorMatrix(poor, per_scene=scenes_poor))))
    assert good[:, : k - 1].sum() >= MIN_CONDITION_CARS
    detected = [50.0, 0, 0, 0, 0]
    at_noon = pooled.for_scene(0.5, 45.0).correct(detected)["covered_car"].estimate
    in_winter = pooled.for_scene(0.5, 20.0).correct(detected)["covered_car"].estimate
    unknown = pooled.for_scene(float("nan"), 20.0).correct(detected)["covered_car"].estimate
    assert at_noon == pytest.approx(50.0) and in_winter == pytest.approx(100.0)
    assert unknown == pytest.approx(pooled.correct(detected)["covered_car"].estimate)  # the pooled one
    assert pooled.for_scene(0.7, 45.0) is pooled  # no matrix for 0.7 m
    again = ErrorMatrix.from_json(pooled.as_json())
    assert [c for c, _ in again.by_condition] == [high_sun, low_sun]
    few = ErrorMatrix(pooled.counts, per_scene=pooled.per_scene,
                      by_condition=((low_sun, ErrorMatrix(poor, per_scene=scenes_poor[:2] * 2)),))
    assert few.for_scene(0.5, 20.0) is few  # two scenes are too few to stand for a condition
    with pytest.raises(ValueError):
        SceneCondition((0.6, 0.4), (0.0, 30.0))
