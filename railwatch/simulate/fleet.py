"""What rolling stock exists: car sizes by stock family, and the paint of their roofs.

Two families (DOMAIN.md):

- **1520 mm** (Russian broad gauge, the Tumangang–Khasan sidings): bogie cars 12–21 m long,
  3.0–3.3 m wide, as in the site scenes since the start.
- **European** standard-gauge freight yards (measured on a real 0.25 m orthophoto: median
  14.4 × 2.9 m, 10–22 m long): two-axle wagons of 10–16 m beside bogie wagons of 13–22 m,
  2.75–3.1 m wide, lower than 1520 mm stock.

Roofs are drawn in three tiers of brightness, a third each (dark: black, soot, dark grey and
brown; mid: rust, brown, blue, green, grey; bright: white, light grey, aluminium,
tarpaulins), as counted on the real yard. Everything here is tables and draws; painting is in
:mod:`railwatch.simulate.stock`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from railwatch.classes import CarClass

__all__ = [
    "ROOFS",
    "ROOF_P",
    "ROOF_TIERS",
    "BodyType",
    "Stock",
    "body_types",
    "roof_tier",
]


class Stock(enum.StrEnum):
    """A family of rolling stock (gauge, loading gauge and the wagons that run on it)."""

    RUSSIAN_1520 = "1520"
    EUROPEAN = "european"

    @property
    def rail_offset_m(self) -> float:
        """Half the distance between the two rails' centres."""
        return 0.79 if self is Stock.RUSSIAN_1520 else 0.75

    @property
    def sleeper_m(self) -> tuple[float, float]:
        """Sleeper length and spacing (1840 per km on 1520 mm lines; 0.6 m on concrete in Europe)."""
        return (2.75, 0.54) if self is Stock.RUSSIAN_1520 else (2.6, 0.6)


@dataclass(frozen=True, slots=True)
class BodyType:
    """A kind of car body: how often it occurs, its length and width ranges, height above rail."""

    weight: float
    length: tuple[float, float]
    width: tuple[float, float]
    height: float


# European wagons (UIC): two-axle G/Hbbills, Es/Fcs, two-axle tanks, Kgs flats beside bogie
# Habbins/Hirrs, Eanos/Falns, Zacns, Sgns/Rs; locomotives from Class 66 to Vectron.
_EUROPEAN: dict[CarClass, tuple[BodyType, ...]] = {
    CarClass.COVERED_CAR: (BodyType(0.45, (10.0, 16.0), (2.8, 3.05), 4.1),
                           BodyType(0.55, (16.0, 22.0), (2.85, 3.1), 4.25)),
    CarClass.OPEN_CAR: (BodyType(0.35, (9.6, 12.5), (2.8, 3.05), 3.1),
                        BodyType(0.65, (13.5, 16.5), (2.85, 3.1), 3.5)),
    CarClass.TANK_CAR: (BodyType(0.3, (9.5, 12.5), (2.75, 3.0), 4.0),
                        BodyType(0.7, (12.5, 19.0), (2.8, 3.05), 4.25)),
    CarClass.FLAT_CAR: (BodyType(0.25, (12.0, 14.0), (2.7, 2.95), 1.25),
                        BodyType(0.75, (14.0, 22.0), (2.75, 3.0), 1.25)),
    CarClass.LOCOMOTIVE: (BodyType(1.0, (15.0, 21.5), (2.95, 3.1), 4.3),),
}

# 1520 mm stock: the sizes the site scenes have always used (DOMAIN.md, "Rail cars").
_RUSSIAN: dict[CarClass, tuple[BodyType, ...]] = {
    CarClass.COVERED_CAR: (BodyType(1.0, (14.5, 19.2), (3.05, 3.3), 4.7),),
    CarClass.OPEN_CAR: (BodyType(1.0, (13.0, 15.5), (3.0, 3.25), 3.4),),
    CarClass.TANK_CAR: (BodyType(1.0, (12.0, 17.0), (2.95, 3.2), 4.6),),
    CarClass.FLAT_CAR: (BodyType(1.0, (13.5, 19.6), (2.85, 3.2), 1.35),),
    CarClass.LOCOMOTIVE: (BodyType(1.0, (16.5, 21.0), (3.1, 3.3), 5.0),),
}


def body_types(stock: Stock, cls: CarClass) -> tuple[BodyType, ...]:
    """The body types of class ``cls`` in ``stock``."""
    return (_RUSSIAN if stock is Stock.RUSSIAN_1520 else _EUROPEAN)[cls]


# Roof paint in three tiers of brightness (RGB albedo before weathering).
_DARK = [(0.07, 0.07, 0.07), (0.12, 0.12, 0.13), (0.17, 0.16, 0.15), (0.21, 0.15, 0.11),
         (0.13, 0.16, 0.13)]
_MID = [(0.42, 0.25, 0.18), (0.34, 0.23, 0.17), (0.20, 0.29, 0.42), (0.22, 0.34, 0.25),
        (0.36, 0.36, 0.36), (0.47, 0.20, 0.15), (0.45, 0.38, 0.30)]
_BRIGHT = [(0.82, 0.82, 0.80), (0.63, 0.63, 0.61), (0.71, 0.72, 0.74), (0.67, 0.65, 0.57),
           (0.61, 0.67, 0.71), (0.86, 0.85, 0.80)]
#: Every roof colour (dark, then mid, then bright) and the tier of each (0, 1, 2).
ROOFS = np.array(_DARK + _MID + _BRIGHT, dtype=np.float32)
ROOF_TIERS = np.array([0] * len(_DARK) + [1] * len(_MID) + [2] * len(_BRIGHT))
#: Draw weights: a third of the cars per tier, spread evenly within it.
ROOF_P = np.concatenate([np.full(len(t), 1.0 / (3 * len(t))) for t in (_DARK, _MID, _BRIGHT)])


def roof_tier(color: tuple[float, float, float] | np.ndarray) -> int:
    """The brightness tier (0 dark, 1 mid, 2 bright) of a roof colour, by its luminance."""
    r, g, b = (float(c) for c in color)
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    return 0 if lum < 0.2 else (1 if lum < 0.5 else 2)
