"""Counts corrected by the whole system's error matrix, with the matrix's own sampling error.

The error matrix (confusion matrix) of the two-stage system is measured on simulated scenes
never trained on: each true car is matched to a detection or not, each detection to a true car
or not. Rows are what the system said (the five classes, then *missed*: true cars it never
reported); columns what was there (the five classes, then *not a car*: detections of nothing).
Each cell holds a number of cars, so the matrix says how much it is worth.

The correction follows remote-sensing area estimation (Olofsson et al. 2014, "Good practices
for estimating area and assessing accuracy of land change"): a class's true amount is the
mapped amounts weighted by the share of each mapped class that is truly that class (user's
accuracies, the matrix's rows), plus what was left out of the map (omission). Here the map is a
set of detections, so the omission is the share of true cars the system never reported at all.
For class ``j``, with ``n_i`` detections called class ``i``:

- ``u_ij = C[i, j] / C[i, ·]``: the share of detections called ``i`` that are truly ``j``;
- ``d_j = Σ_i C[i, j] / C[·, j]``: the share of true ``j`` cars found at all (called anything);
- ``N_j = Σ_i n_i u_ij / d_j``.

Its variance (delta method, terms independent) adds: which detections are which,
``Σ_i n_i u_ij (1 − u_ij)``; the matrix's sampling error of the ``u_ij``, ``Σ_i n_i² u_ij
(1 − u_ij) / C[i, ·]``; cars missed, ``N_j (1 − d_j) d_j``; and the sampling error of ``d_j``,
``N_j² d_j (1 − d_j) / C[·, j]``; all over ``d_j²``. A matrix measured on few cars gives a wide
interval. Cars of one scene are not independent draws (a snowy scene hides many, a clear one
few): when the matrix keeps each scene's own counts, the shares' sampling variances are also
measured between scenes (ratio estimators over the scenes as clusters) and the larger of the
two is used; and because a new scene's own shares are a draw from that spread, not its mean,
the spread of the scenes' shares about the pooled ones (weighted by their cars) is added.
Assumed: the shares hold for the imagery counted (the gap between simulated test scenes and
real imagery is not in the interval).

**Per condition.** A system misses more cars at 0.7 m under a low winter sun than at 0.3 m at
noon. The matrix may carry matrices measured on the test scenes of one condition each (a band
of native ground sample distance × a band of sun elevation, :class:`SceneCondition`); a scene
is corrected by the matrix of its own condition (:meth:`ErrorMatrix.for_scene`, from the
scene's native gsd and the sun's elevation over the site at its acquisition time) when that
matrix was measured on enough cars and scenes, else by the pooled one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from railwatch.classes import CLASS_NAMES
from railwatch.count.frames import Z_90, CountInterval, missed_bound
from railwatch.detect.manifest import ClassMetrics

__all__ = ["MISSED", "NOT_A_CAR", "ErrorMatrix", "SceneCondition"]

#: The last row: true cars the system never reported.
MISSED = "missed"
#: The last column: detections of no car.
NOT_A_CAR = "not_a_car"

#: A share below this is taken as this when dividing (a class never found is not infinitely many).
_MIN_SHARE = 0.05
#: A condition's own matrix is used only when measured on at least this many true cars, over at
#: least this many scenes (else its sampling error, or one odd scene, outweighs what it adds).
MIN_CONDITION_CARS, MIN_CONDITION_SCENES = 300, 3


@dataclass(frozen=True, slots=True)
class SceneCondition:
    """The scenes a conditional matrix describes: native gsd in ``[gsd_m[0], gsd_m[1])`` metres
    and sun elevation in ``[sun_elevation_deg[0], sun_elevation_deg[1])`` degrees."""

    gsd_m: tuple[float, float]
    sun_elevation_deg: tuple[float, float]

    def __post_init__(self) -> None:
        if not (self.gsd_m[0] < self.gsd_m[1] and self.sun_elevation_deg[0] < self.sun_elevation_deg[1]):
            raise ValueError(f"a condition's bands must be [low, high) with low < high, got {self}")

    def holds(self, gsd: float, sun_elevation: float) -> bool:
        """Whether a scene of this native gsd and sun elevation is in the condition (never for NaN)."""
        return (self.gsd_m[0] <= gsd < self.gsd_m[1]
                and self.sun_elevation_deg[0] <= sun_elevation < self.sun_elevation_deg[1])

    def describe(self) -> str:
        g, e = self.gsd_m, self.sun_elevation_deg
        return f"native {g[0]:g}–{g[1]:g} m, sun {e[0]:g}–{e[1]:g}°"


@dataclass(frozen=True, slots=True)
class ErrorMatrix:
    """Counts ``(K + 1, K + 1)`` of cars: rows the system's answer (classes, then missed),
    columns the truth (classes, then not a car); ``K`` = the number of classes."""

    counts: np.ndarray
    measured_on: str = ""
    #: Each test scene's own counts ``(S, K + 1, K + 1)`` (their sum is ``counts``), or None.
    per_scene: np.ndarray | None = None
    #: Matrices measured on the test scenes of one condition each (module docstring).
    by_condition: tuple[tuple[SceneCondition, ErrorMatrix], ...] = ()

    def __post_init__(self) -> None:
        k = len(CLASS_NAMES) + 1
        if self.per_scene is not None:
            s = np.asarray(self.per_scene, dtype=np.float64)
            if s.ndim != 3 or s.shape[1:] != (k, k) or not np.allclose(s.sum(axis=0), self.counts):
                raise ValueError("per-scene matrices must be (S, K + 1, K + 1) and sum to the counts")
            object.__setattr__(self, "per_scene", s)
        c = np.asarray(self.counts)
        if c.shape != (k, k):
            raise ValueError(
                f"an error matrix is {k} × {k} (classes, then missed / not a car), got {c.shape}"
            )
        if (c < 0).any() or not np.isfinite(c).all():
            raise ValueError("error-matrix cells are counts of cars: finite and not negative")
        if c[-1, -1] != 0:
            raise ValueError("the cell (missed, not a car) must be 0: nothing can be both")
        object.__setattr__(self, "counts", c.astype(np.float64))

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> ErrorMatrix:
        """From a manifest's ``{"rows": [...], "columns": [...], "counts": [[...]]}``."""
        rows, cols = list(doc["rows"]), list(doc["columns"])  # type: ignore[call-overload]
        if rows != [*CLASS_NAMES, MISSED] or cols != [*CLASS_NAMES, NOT_A_CAR]:
            raise ValueError(f"error matrix rows {rows} / columns {cols} are not railwatch's")
        scenes = doc.get("per_scene")
        conditional = []
        for part in doc.get("by_condition") or []:  # type: ignore[attr-defined]
            g, e = part["gsd_m"], part["sun_elevation_deg"]
            condition = SceneCondition((float(g[0]), float(g[1])), (float(e[0]), float(e[1])))
            conditional.append((condition, cls.from_json({**part, "rows": rows, "columns": cols})))
        return cls(np.asarray(doc["counts"], dtype=np.float64), str(doc.get("measured_on", "")),
                   None if scenes is None else np.asarray(scenes, dtype=np.float64), tuple(conditional))

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "rows": [*CLASS_NAMES, MISSED], "columns": [*CLASS_NAMES, NOT_A_CAR],
            "counts": [[int(v) for v in row] for row in self.counts], "measured_on": self.measured_on,
        }
        if self.per_scene is not None:
            doc["per_scene"] = [[[int(v) for v in row] for row in m] for m in self.per_scene]
        if self.by_condition:
            doc["by_condition"] = [
                {"gsd_m": list(c.gsd_m), "sun_elevation_deg": list(c.sun_elevation_deg),
                 **{k: v for k, v in m.as_json().items() if k not in ("rows", "columns")}}
                for c, m in self.by_condition
            ]
        return doc

    @property
    def enough(self) -> bool:
        """Whether the matrix was measured on enough cars and scenes to stand for a condition."""
        scenes = len(self.per_scene) if self.per_scene is not None else 0
        cars = float(self.counts[:, : len(CLASS_NAMES)].sum())
        return cars >= MIN_CONDITION_CARS and scenes >= MIN_CONDITION_SCENES

    def for_scene(self, gsd: float, sun_elevation: float) -> ErrorMatrix:
        """The matrix to correct a scene of this native gsd (m) and sun elevation (°) with: its
        condition's, when measured on enough cars and scenes, else this pooled one."""
        for condition, matrix in self.by_condition:
            if condition.holds(gsd, sun_elevation) and matrix.enough:
                return matrix
        return self

    def share_variances(self) -> tuple[np.ndarray, np.ndarray]:
        """Variances of the user's shares ``u`` ``(K, K)`` and the found shares ``d`` ``(K,)`` for
        one new scene: their sampling error (binomial over the cars, or between the scenes when
        that is larger), plus, with per-scene counts, how far the scenes' own shares scatter."""
        k = len(CLASS_NAMES)
        u, d = self.user_shares[:, :k], self.found_shares
        rows = self.counts[:k].sum(axis=1)
        cols = self.counts[:, :k].sum(axis=0)
        var_u = np.where(rows[:, None] > 0, u * (1 - u) / np.maximum(rows, 1.0)[:, None], 0.0)
        var_d = d * (1 - d) / np.maximum(cols, 1.0)
        scenes = self.per_scene
        if scenes is not None and len(scenes) >= 2:
            s = len(scenes)
            row_s = scenes[:, :k].sum(axis=2)  # (S, K) detections called each class per scene
            cell_s = scenes[:, :k, :k]  # (S, K, K)
            dev_u = cell_s - u[None] * row_s[:, :, None]
            between_u = s / (s - 1) * (dev_u**2).sum(axis=0) / np.maximum(rows, 1.0)[:, None] ** 2
            found_s = scenes[:, :k, :k].sum(axis=1)  # (S, K) cars of each class found per scene
            true_s = scenes[:, :, :k].sum(axis=1)
            dev_d = found_s - d[None] * true_s
            between_d = s / (s - 1) * (dev_d**2).sum(axis=0) / np.maximum(cols, 1.0) ** 2
            # A new scene's shares scatter about the pooled ones as the test scenes' did.
            share_u = cell_s / np.maximum(row_s, 1.0)[:, :, None]
            spread_u = ((row_s[:, :, None] * (share_u - u[None]) ** 2).sum(axis=0)
                        / np.maximum(rows, 1.0)[:, None])
            share_d = found_s / np.maximum(true_s, 1.0)
            spread_d = (true_s * (share_d - d[None]) ** 2).sum(axis=0) / np.maximum(cols, 1.0)
            var_u = np.maximum(var_u, np.where(rows[:, None] > 0, between_u, 0.0)) + s / (s - 1) * spread_u
            var_d = np.maximum(var_d, between_d) + s / (s - 1) * spread_d
        return var_u, var_d

    @property
    def user_shares(self) -> np.ndarray:
        """``u`` ``(K, K + 1)``: the share of detections called each class that are truly each
        class or no car (rows with no detections: all weight on their own class)."""
        k = len(CLASS_NAMES)
        rows = self.counts[:k]
        total = rows.sum(axis=1, keepdims=True)
        own = np.zeros_like(rows)
        own[np.arange(k), np.arange(k)] = 1.0
        return np.where(total > 0, rows / np.maximum(total, 1e-12), own)

    @property
    def found_shares(self) -> np.ndarray:
        """``d`` ``(K,)``: the share of true cars of each class reported at all."""
        k = len(CLASS_NAMES)
        cols = self.counts[:, :k]
        total = cols.sum(axis=0)
        found = cols[:k].sum(axis=0)
        return np.where(total > 0, found / np.maximum(total, 1e-12), 1.0)

    def class_metrics(self) -> dict[str, ClassMetrics]:
        """Per class, the share of detections called it that are it (precision) and the share of
        its cars called it (recall): what the arrivals and departures between scenes use."""
        k = len(CLASS_NAMES)
        u = self.user_shares
        cols = self.counts[:, :k].sum(axis=0)
        out = {}
        for j, name in enumerate(CLASS_NAMES):
            recall = self.counts[j, j] / cols[j] if cols[j] > 0 else 1.0
            out[name] = ClassMetrics(float(np.clip(u[j, j], 0.0, 1.0)), float(np.clip(recall, 0.0, 1.0)))
        return out

    def correct_selected(
        self, detected: Mapping[str, float], selected: Sequence[str], z: float = Z_90
    ) -> CountInterval:
        """The true cars of the ``selected`` classes behind one zone's per-class detector counts
        ``detected`` (missing classes count 0), as one interval (classes taken as independent)."""
        vector = [float(detected.get(c, 0.0)) for c in CLASS_NAMES]
        parts = self.correct(vector, z)
        total = CountInterval(0.0, 0.0, 0.0, 0.0)
        for c in selected:
            total = total + parts[c]
        return total

    def correct(self, detected: Sequence[float], z: float = Z_90) -> dict[str, CountInterval]:
        """True cars of each class behind ``detected`` (counts per class, :data:`CLASS_NAMES`
        order), each with a ``z`` interval that carries the matrix's sampling error. NaN in, NaN out."""
        n = np.asarray(detected, dtype=np.float64)
        k = len(CLASS_NAMES)
        if n.shape != (k,):
            raise ValueError(f"detected counts must be one per class ({k}), got {n.shape}")
        if np.isnan(n).any():
            nan = CountInterval(math.nan, math.nan, math.nan, math.nan)
            return dict.fromkeys(CLASS_NAMES, nan)
        if (n < 0).any():
            raise ValueError(f"counts cannot be negative, got {n}")
        u = self.user_shares[:, :k]
        var_u, var_d = self.share_variances()
        d = np.maximum(self.found_shares, _MIN_SHARE)
        out: dict[str, CountInterval] = {}
        for j, name in enumerate(CLASS_NAMES):
            found = float(n @ u[:, j])
            estimate = found / d[j]
            which = float(np.sum(n * u[:, j] * (1 - u[:, j])))
            shares = float(np.sum(n**2 * var_u[:, j]))
            missed = estimate * (1 - d[j]) * d[j]
            found_share = estimate**2 * float(var_d[j])
            variance = (which + shares + missed + found_share) / d[j] ** 2
            normal = CountInterval.from_moments(estimate, variance, z)
            # None seen is not proof of none: never claim fewer than the cars a system that finds
            # this share could have missed unseen (as for the precision/recall correction).
            high = max(normal.high, estimate + missed_bound(float(d[j]), z))
            out[name] = CountInterval(normal.estimate, normal.sd, normal.low, high)
        return out
