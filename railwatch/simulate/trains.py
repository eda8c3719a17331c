"""Trains: random consists, and strings of cars placed nose to tail on a track centreline.

A car on a curve stands with its centre on the centreline and its body along the chord
between its two bogies (about 70 % of its length apart), as real cars do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from shapely.geometry import LineString

from railwatch.classes import CarClass
from railwatch.simulate.fleet import Stock
from railwatch.simulate.stock import Car, PlacedCar, random_car

__all__ = ["place_string", "random_consist", "string_length"]

#: Relative frequency of the classes in random consists: covered cars the most common, all
#: classes well represented (index order of :class:`CarClass`).
CONSIST_WEIGHTS = np.array([0.38, 0.2, 0.19, 0.15, 0.08])


def random_consist(
    rng: np.random.Generator,
    n: int,
    *,
    block: bool | None = None,
    head_locos: int | None = None,
    stock: Stock = Stock.RUSSIAN_1520,
    length_m: tuple[float, float] | None = None,
) -> list[Car]:
    """``n`` cars: a block train of one class (shared paint) or a mixed train, maybe with locos.

    ``stock`` and ``length_m`` are passed to :func:`~railwatch.simulate.stock.random_car`.
    """
    if n <= 0:
        return []
    if block is None:
        block = bool(rng.random() < 0.55)
    if head_locos is None:
        head_locos = int(rng.choice([0, 1, 2], p=[0.65, 0.25, 0.10]))
    cars: list[Car] = []
    loco_color = None
    for _ in range(min(head_locos, n)):
        loco = random_car(CarClass.LOCOMOTIVE, rng, base_color=loco_color, stock=stock)
        loco_color = np.asarray(loco.look.color)
        cars.append(loco)
    p = CONSIST_WEIGHTS / CONSIST_WEIGHTS.sum()
    if block:
        cls = CarClass.from_index(int(rng.choice(5, p=p)))
        first = random_car(cls, rng, stock=stock, length_m=length_m)
        base = np.asarray(first.look.color)
        cars.append(first)
        while len(cars) < n:
            odd = rng.random() < 0.2
            cars.append(random_car(cls, rng, base_color=None if odd else base, stock=stock,
                                   length_m=length_m))
    else:
        while len(cars) < n:
            cls = CarClass.from_index(int(rng.choice(5, p=p)))
            cars.append(random_car(cls, rng, stock=stock, length_m=length_m))
    return cars


def string_length(cars: Sequence[Car], gaps: Sequence[float]) -> float:
    """Length of a string of cars with the given gaps between them."""
    return float(sum(c.length for c in cars) + sum(gaps[: max(len(cars) - 1, 0)]))


def place_string(
    line: LineString,
    cars: Sequence[Car],
    start_m: float,
    gaps: Sequence[float],
    *,
    flip: Sequence[bool] | None = None,
    base: float = 0.0,
    ids: Sequence[str] | None = None,
) -> list[PlacedCar]:
    """Place ``cars`` along ``line`` from ``start_m`` (arc length of the first car's rear end).

    ``gaps[i]`` separates car i from car i+1; cars that would run off the line are dropped.
    ``flip[i]`` turns car i end for end (cab direction of a locomotive).
    """
    placed: list[PlacedCar] = []
    s = start_m
    total = line.length
    for i, car in enumerate(cars):
        mid = s + car.length / 2
        if s >= 0.0 and s + car.length <= total:
            half = car.length * 0.35
            a = line.interpolate(max(mid - half, 0.0))
            b = line.interpolate(min(mid + half, total))
            c = line.interpolate(mid)
            heading = math.atan2(b.y - a.y, b.x - a.x)
            if flip is not None and flip[i]:
                heading += math.pi
            placed.append(
                PlacedCar(car, (c.x, c.y), heading, base, ids[i] if ids is not None else "")
            )
        s += car.length + (gaps[i] if i < len(gaps) else 1.5)
    return placed
