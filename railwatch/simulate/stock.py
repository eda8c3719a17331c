"""Rolling stock: the five car classes, their sizes and looks, and how each is painted.

A :class:`Car` is what a car is (class, size, look); a :class:`PlacedCar` is where it stands
(centre, heading of its long axis, height of the rail under it). :func:`paint_car` paints a
placed car's albedo, height and surface shading into a canvas in car-local coordinates
(``u`` along the car, ``v`` across it), so roof ribs, tank highlights and loads follow the
car's orientation. Sizes come from :mod:`railwatch.simulate.fleet` (1520 mm stock: cars
12–20 m long and 2.85–3.3 m wide; European stock: 9.5–22 m, two-axle wagons included).
Cars are solid in the height map: light passing under a body between its bogies only
reaches ground hidden under the car (a 3 m wide body at sun elevations above ~20° casts an
attached shadow), so the body is not modelled as an overhang.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon

from railwatch.classes import CarClass
from railwatch.simulate.canvas import rgb
from railwatch.simulate.fleet import ROOF_P, ROOFS, Stock, body_types

__all__ = [
    "CONTAINER_COLOURS",
    "LOAD_COLOURS",
    "Car",
    "CarLook",
    "Load",
    "PlacedCar",
    "random_car",
    "roof_offset",
]


class Load(enum.StrEnum):
    """What an open or flat car carries."""

    NONE = "none"
    COAL = "coal"
    ORE = "ore"
    GRAVEL = "gravel"
    SAND = "sand"
    SCRAP = "scrap"
    TIMBER = "timber"
    CONTAINERS = "containers"
    VEHICLES = "vehicles"


_TANKS = np.array(
    [
        (0.07, 0.07, 0.07), (0.10, 0.10, 0.11), (0.30, 0.30, 0.30), (0.60, 0.60, 0.58),
        (0.85, 0.85, 0.83), (0.22, 0.32, 0.24), (0.20, 0.27, 0.40), (0.60, 0.45, 0.20),
    ],
    dtype=np.float32,
)
# a third dark (oil), a third mid, a third bright (gas, chemicals): as the roofs
_TANK_P = np.array([22, 13, 10, 16, 14, 8, 7, 10], dtype=np.float64)
_FLAT_DECKS = np.array(
    [(0.42, 0.25, 0.18), (0.30, 0.21, 0.16), (0.30, 0.30, 0.30), (0.13, 0.13, 0.13), (0.47, 0.40, 0.33)],
    dtype=np.float32,
)
_LOCOS = np.array(
    [(0.20, 0.36, 0.24), (0.55, 0.14, 0.12), (0.30, 0.35, 0.45), (0.72, 0.55, 0.15), (0.45, 0.45, 0.46)],
    dtype=np.float32,
)
CONTAINER_COLOURS = np.array(
    [
        (0.20, 0.35, 0.55), (0.55, 0.18, 0.15), (0.25, 0.42, 0.28), (0.65, 0.65, 0.63),
        (0.85, 0.85, 0.83), (0.70, 0.45, 0.15), (0.40, 0.25, 0.20), (0.15, 0.20, 0.35),
    ],
    dtype=np.float32,
)
LOAD_COLOURS: dict[Load, tuple[float, float, float]] = {
    Load.COAL: (0.09, 0.09, 0.09),
    Load.ORE: (0.33, 0.22, 0.17),
    Load.GRAVEL: (0.58, 0.56, 0.52),
    Load.SAND: (0.70, 0.60, 0.44),
    Load.SCRAP: (0.38, 0.30, 0.24),
    Load.TIMBER: (0.55, 0.44, 0.30),
}


@dataclass(frozen=True, slots=True)
class CarLook:
    """A car's appearance: main and secondary colour, load, variant switches and a texture seed."""

    color: tuple[float, float, float]
    accent: tuple[float, float, float]
    load: Load = Load.NONE
    variant: int = 0
    rib_period_m: float = 0.9
    curved_roof: float = 0.3
    dirt: float = 0.3
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Car:
    """A car: class, body length and width (metres), height above the rail, look."""

    cls: CarClass
    length: float
    width: float
    height: float
    look: CarLook

    def __post_init__(self) -> None:
        if not (5.0 <= self.length <= 30.0 and 2.0 <= self.width <= 4.0):
            raise ValueError(f"implausible car size {self.length:.1f} × {self.width:.1f} m")


@dataclass(frozen=True, slots=True)
class PlacedCar:
    """A car standing at ``centre`` (world metres) with its long axis at ``heading`` radians.

    ``heading`` is counter-clockwise from east; ``base`` is the rail's height above ground
    (non-zero on a bridge).
    """

    car: Car
    centre: tuple[float, float]
    heading: float
    base: float = 0.0
    car_id: str = ""

    @property
    def polygon(self) -> Polygon:
        """The car body's footprint (an oriented rectangle)."""
        return Polygon(self.corners())

    def corners(self) -> np.ndarray:
        """(4, 2) world corners, counter-clockwise."""
        c, s = math.cos(self.heading), math.sin(self.heading)
        hl, hw = self.car.length / 2, self.car.width / 2
        local = np.array([(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)])
        rot = np.array([[c, -s], [s, c]])
        return np.asarray(local @ rot.T + np.asarray(self.centre))


def random_car(
    cls: CarClass,
    rng: np.random.Generator,
    *,
    base_color: np.ndarray | None = None,
    stock: Stock = Stock.RUSSIAN_1520,
    length_m: tuple[float, float] | None = None,
) -> Car:
    """A car of class ``cls`` with a random size and look (``base_color`` for block trains).

    ``stock`` picks the family of sizes (:mod:`railwatch.simulate.fleet`); ``length_m``
    overrides the length range of anything but a locomotive.
    """
    types = body_types(stock, cls)
    if stock is Stock.RUSSIAN_1520:  # the draws of the original site scenes, unchanged
        kind = types[0]
        (l0, l1), (w0, w1) = kind.length, kind.width
        if cls is CarClass.COVERED_CAR and rng.random() < 0.6:
            length = rng.uniform(16.5, 19.2)  # the common 1520 mm boxcars
        else:
            length = rng.uniform(l0, l1)
    else:
        weights = np.array([t.weight for t in types])
        kind = types[int(rng.choice(len(types), p=weights / weights.sum()))]
        (l0, l1), (w0, w1) = kind.length, kind.width
        length = rng.uniform(l0, l1)
    if length_m is not None and cls is not CarClass.LOCOMOTIVE:
        length = rng.uniform(*length_m)
    width = rng.uniform(w0, w1)
    h = kind.height
    load = Load.NONE
    if cls is CarClass.COVERED_CAR:
        color = _pick(rng, ROOFS, ROOF_P) if base_color is None else base_color
    elif cls is CarClass.OPEN_CAR:
        color = _pick(rng, ROOFS, ROOF_P) if base_color is None else base_color
        load = rng.choice(
            [Load.NONE, Load.COAL, Load.ORE, Load.GRAVEL, Load.SAND, Load.SCRAP, Load.TIMBER],
            p=[0.22, 0.25, 0.2, 0.1, 0.07, 0.1, 0.06],
        )
    elif cls is CarClass.TANK_CAR:
        color = _pick(rng, _TANKS, _TANK_P) if base_color is None else base_color
    elif cls is CarClass.FLAT_CAR:
        color = _pick(rng, _FLAT_DECKS, None)
        load = rng.choice(
            [Load.NONE, Load.CONTAINERS, Load.VEHICLES, Load.TIMBER], p=[0.4, 0.4, 0.1, 0.1]
        )
    else:
        color = _pick(rng, _LOCOS, None) if base_color is None else base_color
    jitter = rng.normal(1.0, 0.03, 3).astype(np.float32) * rng.normal(1.0, 0.1)
    color = np.asarray(color, dtype=np.float32) * jitter
    grey = color.mean()
    color = np.clip(grey + (color - grey) * rng.uniform(0.45, 0.9), 0.03, 0.95)  # weathered paint
    accent = _pick(rng, CONTAINER_COLOURS if cls is CarClass.FLAT_CAR else ROOFS, None)
    look = CarLook(
        color=rgb(color),
        accent=rgb(accent),
        load=Load(load),
        variant=int(rng.integers(0, 4)),
        rib_period_m=float(rng.uniform(0.55, 1.4)),
        curved_roof=float(rng.choice([0.05, 0.2, 0.35])),
        dirt=float(rng.beta(2, 4)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return Car(cls, float(length), float(width), h + float(rng.uniform(-0.15, 0.15)), look)


def _pick(rng: np.random.Generator, table: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    p = None if weights is None else weights / weights.sum()
    return np.asarray(table[rng.choice(len(table), p=p)])


# ---------------------------------------------------------------- painting


def roof_offset(car: Car, lean: tuple[float, float]) -> tuple[float, float]:
    """How far the car's roof appears displaced (east, north metres) for a view ``lean``."""
    return lean[0] * car.height, lean[1] * car.height
