"""Where the sun stands over a place at a time (NOAA's solar-position equations, Meeus).

Azimuths are degrees clockwise from north, elevations degrees above the horizon. Shared by the
simulator (shadows, :mod:`railwatch.simulate.sun`) and the counts (an error matrix is chosen by
the sun's elevation at the scene's time, :mod:`railwatch.count.errormatrix`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Sun", "solar_position"]


@dataclass(frozen=True, slots=True)
class Sun:
    """The sun's position seen from the ground."""

    azimuth_deg: float
    elevation_deg: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.azimuth_deg < 360.0:
            raise ValueError(f"sun azimuth must be in [0, 360), got {self.azimuth_deg}")
        if not -90.0 <= self.elevation_deg <= 90.0:
            raise ValueError(f"sun elevation must be in [-90, 90], got {self.elevation_deg}")

    @property
    def toward(self) -> tuple[float, float]:
        """Unit vector (east, north) pointing from the ground toward the sun."""
        a = math.radians(self.azimuth_deg)
        return math.sin(a), math.cos(a)

    def shadow_length(self, height_m: float) -> float:
        """Length on flat ground of the shadow of something ``height_m`` tall."""
        el = max(self.elevation_deg, 1.0)
        return height_m / math.tan(math.radians(el))

    @property
    def intensity(self) -> float:
        """Direct illumination on flat ground relative to a sun at the zenith."""
        return max(math.sin(math.radians(self.elevation_deg)), 0.0)


def _julian_day(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("solar_position needs a timezone-aware datetime (UTC)")
    t = when.astimezone(UTC)
    return t.timestamp() / 86400.0 + 2440587.5


def solar_position(lat: float, lon: float, when: datetime) -> Sun:
    """The sun's azimuth and elevation (with refraction) at (lat, lon) and time ``when``.

    Follows NOAA's solar calculator spreadsheet (Meeus); accurate to about 0.01° for
    dates between 1800 and 2100.
    """
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"not a WGS84 lat/lon: ({lat}, {lon})")
    jd = _julian_day(when)
    jc = (jd - 2451545.0) / 36525.0
    l0 = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    mr = math.radians(m)
    c = (
        math.sin(mr) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + math.sin(2 * mr) * (0.019993 - 0.000101 * jc)
        + math.sin(3 * mr) * 0.000289
    )
    true_long = l0 + c
    omega = math.radians(125.04 - 1934.136 * jc)
    app_long = true_long - 0.00569 - 0.00478 * math.sin(omega)
    mean_obliq = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = math.radians(mean_obliq + 0.00256 * math.cos(omega))
    decl = math.asin(math.sin(obliq) * math.sin(math.radians(app_long)))
    y = math.tan(obliq / 2.0) ** 2
    l0r = math.radians(l0)
    eq_time = 4.0 * math.degrees(
        y * math.sin(2 * l0r)
        - 2 * e * math.sin(mr)
        + 4 * e * y * math.sin(mr) * math.cos(2 * l0r)
        - 0.5 * y * y * math.sin(4 * l0r)
        - 1.25 * e * e * math.sin(2 * mr)
    )
    t = when.astimezone(UTC)
    minutes = t.hour * 60.0 + t.minute + (t.second + t.microsecond / 1e6) / 60.0
    true_solar = (minutes + eq_time + 4.0 * lon) % 1440.0
    hour_angle = true_solar / 4.0 - 180.0
    latr, har = math.radians(lat), math.radians(hour_angle)
    cos_zen = math.sin(latr) * math.sin(decl) + math.cos(latr) * math.cos(decl) * math.cos(har)
    zen = math.acos(min(1.0, max(-1.0, cos_zen)))
    elevation = 90.0 - math.degrees(zen)
    elevation += _refraction(elevation)
    denom = math.cos(latr) * math.sin(zen)
    if abs(denom) < 1e-12:
        azimuth = 180.0
    else:
        cos_az = (math.sin(latr) * math.cos(zen) - math.sin(decl)) / denom
        a = math.degrees(math.acos(min(1.0, max(-1.0, cos_az))))
        azimuth = (a + 180.0) % 360.0 if hour_angle > 0 else (540.0 - a) % 360.0
    return Sun(azimuth % 360.0, max(-90.0, min(90.0, elevation)))


def _refraction(elevation: float) -> float:
    """Atmospheric refraction in degrees (NOAA's approximation)."""
    if elevation > 85.0:
        return 0.0
    te = math.tan(math.radians(elevation))
    if elevation > 5.0:
        arcsec = 58.1 / te - 0.07 / te**3 + 0.000086 / te**5
    elif elevation > -0.575:
        e = elevation
        arcsec = 1735.0 + e * (-518.2 + e * (103.4 + e * (-12.79 + e * 0.711)))
    else:
        arcsec = -20.772 / te
    return arcsec / 3600.0
