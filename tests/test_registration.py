"""Co-registration from detections and car matching: pure functions on synthetic yards."""

from __future__ import annotations

import numpy as np
import pytest

from railwatch.count.matching import match_cars
from railwatch.count.registration import RegistrationSettings, register

PITCH = 20.2  # a 19.2 m covered car and a 1 m gap
TRACK_SPACING = 4.75


def yard(rng: np.random.Generator, n_tracks: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Strings of cars on parallel east-west tracks, strings of different lengths and classes."""
    xy, cls = [], []
    for t in range(n_tracks):
        start = rng.uniform(0, 200)
        n = int(rng.integers(4, 15))
        c = int(rng.integers(0, 3))
        for k in range(n):
            xy.append((start + k * PITCH, t * TRACK_SPACING))
            cls.append(c if k % 5 else (c + 1) % 3)
    return np.array(xy), np.array(cls)


@pytest.mark.parametrize("shift", [(11.3, -7.9), (14.0, 3.0), (-24.5, 9.0), (0.4, 0.2)])
def test_registration_recovers_a_known_shift_despite_arrivals_and_departures(shift):
    rng = np.random.default_rng(7)
    a_xy, a_cls = yard(rng)
    keep = rng.random(len(a_xy)) > 0.2  # a fifth of the cars leave
    new_xy, new_cls = yard(np.random.default_rng(99), n_tracks=2)  # a new train arrives
    new_xy[:, 1] += 7 * TRACK_SPACING
    b_true = np.vstack([a_xy[keep], new_xy])
    b_cls = np.concatenate([a_cls[keep], new_cls])
    # The later scene's geolocation is off by ``shift`` (plus the detector's centre jitter):
    b_xy = b_true - np.array(shift) + rng.normal(0, 0.3, b_true.shape)
    reg = register(a_xy, a_cls, b_xy, b_cls)
    assert reg.reliable
    assert reg.dx == pytest.approx(shift[0], abs=0.5)
    assert reg.dy == pytest.approx(shift[1], abs=0.5)
    assert reg.matched >= keep.sum() - 2


def test_registration_of_unrelated_scenes_is_not_trusted():
    a_xy = np.array([[0.0, 0.0], [100.0, 0.0]])
    b_xy = np.array([[500.0, 500.0]])
    reg = register(a_xy, np.array([0, 0]), b_xy, np.array([0]))
    assert not reg.reliable and reg.dx == 0 and reg.dy == 0


def test_registration_needs_the_same_class():
    a_xy = np.array([[0.0, 0.0], [PITCH, 0.0], [2 * PITCH, 0.0]])
    reg = register(a_xy, np.array([0, 0, 0]), a_xy + 5, np.array([2, 2, 2]),
                   RegistrationSettings(min_matches=2))
    assert not reg.reliable


def test_matching_tells_parked_from_moved_cars():
    # Earlier scene a: five covered cars parked on track 0, four open cars on track 1, one tank
    # car on track 2.
    parked = [(k * PITCH, 0.0) for k in range(5)]
    shunted = [(k * PITCH, TRACK_SPACING) for k in range(4)]
    a_xy = np.array([*parked, *shunted, (40.0, 2 * TRACK_SPACING)])
    a_cls = np.array([0] * 5 + [1] * 4 + [2])
    # Later scene b: the covered cars are still there; the open cars were shunted 30 m east; the
    # tank car left and a flat car stands exactly where it stood; a covered car arrived.
    b_true = np.array([
        *parked,
        *[(x + 30.0, y) for x, y in shunted],
        (40.0, 2 * TRACK_SPACING),
        (300.0, 3 * TRACK_SPACING),
    ])
    b_cls = np.array([0] * 5 + [1] * 4 + [3, 0])
    shift = np.array([9.0, -6.0])
    b_seen = b_true - shift + np.random.default_rng(0).normal(0, 0.2, b_true.shape)
    reg = register(a_xy, a_cls, b_seen, b_cls, RegistrationSettings(min_matches=3))
    assert reg.reliable and np.allclose(reg.shift, shift, atol=0.5)
    match = match_cars(a_xy, a_cls, b_seen, b_cls, reg)
    assert sorted(match.pairs.tolist()) == [[k, k] for k in range(5)]
    assert sorted(match.arrivals.tolist()) == [5, 6, 7, 8, 9, 10]  # shunted, flat car, new car
    assert sorted(match.departures.tolist()) == [5, 6, 7, 8, 9]  # shunted, tank car


def test_matching_without_registration_misses_shifted_cars():
    xy = np.array([[0.0, 0.0], [PITCH, 0.0], [2 * PITCH, 0.0], [0.0, TRACK_SPACING]])
    cls = np.array([0, 0, 0, 1])
    b = xy - np.array([7.0, 0.0])
    unregistered = match_cars(xy, cls, b, cls)
    assert unregistered.parked == 0
    reg = register(xy, cls, b, cls)
    registered = match_cars(xy, cls, b, cls, reg)
    assert registered.parked == 4 and len(registered.arrivals) == 0
