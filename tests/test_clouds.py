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
