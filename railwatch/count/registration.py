"""Co-registration of two scenes from their detections.

Satellite orthoimagery of the same place on different dates is shifted by up to ~15 m (SkySat
CE90, DOMAIN.md): about a car length. Before cars of two scenes can be matched, the relative
shift must go. The cars themselves are the tie points: most cars of a yard stay parked between
two looks, so the translation that brings the most same-class car centres of one scene onto
those of the other is the registration. Arriving and departing cars simply do not vote for it.

The search is a vote: every same-class pair of centres closer than ``max_shift`` votes for the
shift between them; the densest cells of that vote are refined by one-to-one matching, and the
candidate that matches the most cars wins. Strings of identical cars repeat every car length,
so a shift of one car pitch along a string matches almost as many cars; the true shift still
wins because it also matches the string ends and the cars of other lengths and classes (ties
go to the smaller residual, then the smaller shift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Registration", "RegistrationSettings", "greedy_pairs", "register"]


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """How far and how finely to search.

    ``max_shift``: largest relative shift in metres (two scenes each off by up to ~15 m).
    ``tolerance``: largest centre distance of a match after the shift; it must stay below half
    the 4.5–5 m spacing of neighbouring tracks so that a car never matches one on the next track.
    ``min_matches``: fewer matched cars than this and the registration is not trusted (zero shift).
    ``candidates``: how many peaks of the vote to refine.
    """

    max_shift: float = 32.0
    tolerance: float = 2.0
    min_matches: int = 3
    candidates: int = 12

    def __post_init__(self) -> None:
        if not (self.max_shift > 0 and self.tolerance > 0):
            raise ValueError("max_shift and tolerance must be positive")
        if self.min_matches < 1 or self.candidates < 1:
            raise ValueError("min_matches and candidates must be at least 1")


@dataclass(frozen=True, slots=True)
class Registration:
    """The shift (metres) to add to the moving scene's coordinates to land on the reference's.

    ``matched``: cars matched one-to-one at that shift; ``rms``: their residual (metres);
    ``reliable``: whether ``matched`` reached ``min_matches`` (else the shift is zero).
    """

    dx: float
    dy: float
    matched: int
    rms: float
    reliable: bool

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dx) and math.isfinite(self.dy)):
            raise ValueError("shift must be finite")
        if self.matched < 0:
            raise ValueError("matched must be non-negative")

    @property
    def shift(self) -> np.ndarray:
        return np.array([self.dx, self.dy])

    @property
    def magnitude(self) -> float:
        return math.hypot(self.dx, self.dy)


def greedy_pairs(
    a_xy: np.ndarray, a_cls: np.ndarray, b_xy: np.ndarray, b_cls: np.ndarray, tolerance: float
) -> np.ndarray:
    """One-to-one pairs ``(i, j)`` of same-class points closer than ``tolerance``, nearest first.

    Returns an ``(k, 2)`` int array of indices into ``a`` and ``b``.
    """
    if len(a_xy) == 0 or len(b_xy) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.linalg.norm(a_xy[:, None, :] - b_xy[None, :, :], axis=2)
    ok = (d <= tolerance) & (a_cls[:, None] == b_cls[None, :])
    ii, jj = np.nonzero(ok)
    if len(ii) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(d[ii, jj], kind="stable")
    used_a = np.zeros(len(a_xy), dtype=bool)
    used_b = np.zeros(len(b_xy), dtype=bool)
    pairs = []
    for i, j in zip(ii[order], jj[order], strict=True):
        if not used_a[i] and not used_b[j]:
            used_a[i] = used_b[j] = True
            pairs.append((i, j))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _score(
    ref_xy: np.ndarray, ref_cls: np.ndarray, mov_xy: np.ndarray, mov_cls: np.ndarray,
    shift: np.ndarray, tolerance: float,
) -> tuple[int, float, np.ndarray]:
    """Matches at ``shift``, their RMS residual, and the refined shift (median of residuals)."""
    pairs = greedy_pairs(ref_xy, ref_cls, mov_xy + shift, mov_cls, tolerance)
    if len(pairs) == 0:
        return 0, math.inf, shift
    diff = ref_xy[pairs[:, 0]] - mov_xy[pairs[:, 1]]
    refined = np.median(diff, axis=0)
    rms = float(np.sqrt(np.mean(np.sum((diff - refined) ** 2, axis=1))))
    return len(pairs), rms, refined


def register(
    ref_xy: np.ndarray,
    ref_cls: np.ndarray,
    mov_xy: np.ndarray,
    mov_cls: np.ndarray,
    settings: RegistrationSettings | None = None,
) -> Registration:
    """Shift that maps the moving scene's car centres onto the reference's (same class).

    ``*_xy`` are ``(n, 2)`` map coordinates in metres, ``*_cls`` class ids or names. Robust to
    cars that arrived or left between the scenes, as long as at least ``min_matches`` stayed.
    """
    s = settings or RegistrationSettings()
    ref_xy = np.asarray(ref_xy, dtype=np.float64).reshape(-1, 2)
    mov_xy = np.asarray(mov_xy, dtype=np.float64).reshape(-1, 2)
    ref_cls, mov_cls = np.asarray(ref_cls), np.asarray(mov_cls)
    none = Registration(0.0, 0.0, 0, math.inf, False)
    if len(ref_xy) == 0 or len(mov_xy) == 0:
        return none
    diff = ref_xy[:, None, :] - mov_xy[None, :, :]
    same = ref_cls[:, None] == mov_cls[None, :]
    votes = diff[same & (np.linalg.norm(diff, axis=2) <= s.max_shift)]
    best_key: tuple[int, float, float] = (-1, 0.0, 0.0)
    best_n, best_rms, best_shift = 0, math.inf, np.zeros(2)
    for start in [np.zeros(2), *_vote_peaks(votes, s)]:
        shift = start
        n, rms = 0, math.inf
        for _ in range(3):
            n, rms, refined = _score(ref_xy, ref_cls, mov_xy, mov_cls, shift, s.tolerance)
            if n == 0 or np.allclose(refined, shift, atol=1e-3):
                break
            shift = refined
        magnitude = float(np.hypot(*shift))
        if magnitude > s.max_shift:
            continue
        key = (n, -rms, -magnitude)
        if key > best_key:
            best_key, best_n, best_rms, best_shift = key, n, rms, shift
    n, rms, shift = best_n, best_rms, best_shift
    if n < s.min_matches:
        return Registration(0.0, 0.0, n, rms, False)
    return Registration(float(shift[0]), float(shift[1]), n, rms, True)


def _vote_peaks(votes: np.ndarray, s: RegistrationSettings) -> list[np.ndarray]:
    """Centres of the densest cells of the shift vote (cell = tolerance, 3×3 smoothed)."""
    if len(votes) == 0:
        return []
    cell = s.tolerance
    nbins = math.ceil(2 * s.max_shift / cell) + 1
    edges = np.linspace(-s.max_shift - cell / 2, s.max_shift + cell / 2, nbins + 1)
    hist, _, _ = np.histogram2d(votes[:, 0], votes[:, 1], bins=[edges, edges])
    padded = np.pad(hist, 1)
    smooth = np.zeros((nbins, nbins))
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            smooth += padded[1 + di : 1 + di + nbins, 1 + dj : 1 + dj + nbins]
    flat = np.argsort(smooth.ravel())[::-1][: s.candidates]
    centres = (edges[:-1] + edges[1:]) / 2
    peaks = []
    for idx in flat:
        if smooth.ravel()[idx] <= 0:
            break
        i, j = np.unravel_index(idx, smooth.shape)
        # Start from the mean of the votes in the 3×3 neighbourhood, not the cell centre.
        near = votes[
            (np.abs(votes[:, 0] - centres[i]) <= 1.5 * cell)
            & (np.abs(votes[:, 1] - centres[j]) <= 1.5 * cell)
        ]
        peaks.append(near.mean(axis=0) if len(near) else np.array([centres[i], centres[j]]))
    return peaks
