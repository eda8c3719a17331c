from __future__ import annotations

import json

import pytest
from conftest import write_site
from shapely.geometry import Point

from railwatch.errors import BadSiteError
from railwatch.site import AreaKind, bundled_sites, load_site, utm_crs_for


def test_bundled_site_has_the_documented_zones_and_local_crs():
    site = load_site("tumangang_khasan")
    assert "tumangang_khasan" in bundled_sites()
    assert site.crs.to_epsg() == 32652
    assert set(site.zone_names) == {"tumangang_yard", "bridge", "khasan_yard"}
    assert "APPROXIMATE" in site.description
    # Public coordinates from DOMAIN.md fall where they should.
    bridge = site.to_local(Point(130.641056, 42.415167))
    tumangang = site.to_local(Point(130.6081, 42.4214))
    khasan = site.to_local(Point(130.64492, 42.43006))
    zones = dict(zip(site.zone_names, site.zones_local, strict=True))
    assert zones["bridge"].contains(bridge)
    assert zones["tumangang_yard"].contains(tumangang)
    assert zones["khasan_yard"].contains(khasan)
    # Several parallel yard tracks at Tumangang, about 4.8 m apart.
    yard = [t for t in site.tracks if t.name.startswith("tumangang_")]
    assert len(yard) >= 4


def test_counting_areas_are_zones_and_corridors_in_metres():
    site = load_site("tumangang_khasan")
    areas = site.counting_areas(corridor_half_width_m=10.0)
    kinds = {a.kind for a in areas}
    assert kinds == {AreaKind.ZONE, AreaKind.CORRIDOR}
    main = next(a for a in areas if a.name == "mainline")
    line = site.tracks_local[[t.name for t in site.tracks].index("mainline")]
    # A 10 m half-width corridor has about 20 m × length of area (clipped to the AOI).
    assert main.geometry.area == pytest.approx(20.0 * line.length, rel=0.05)
    assert all(site.aoi_local.buffer(1e-6).covers(a.geometry) for a in areas)


def test_site_without_tracks_counts_in_its_zones(tmp_path):
    path = write_site(tmp_path / "s.geojson", 8.54, 47.37)
    doc = json.loads(path.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["role"] != "track"]
    path.write_text(json.dumps(doc))
    site = load_site(path)
    assert [a.kind for a in site.counting_areas()] == [AreaKind.ZONE]
    assert site.crs.to_epsg() == 32632


def test_utm_zone_from_lonlat():
    assert utm_crs_for(130.6, 42.4).to_epsg() == 32652
    assert utm_crs_for(8.5, 47.4).to_epsg() == 32632
    assert utm_crs_for(-70.6, -33.4).to_epsg() == 32719


def _edit(tmp_path, mutate):
    path = write_site(tmp_path / "site.geojson", 130.6081, 42.4214)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    return path


def test_site_without_aoi_is_refused(tmp_path):
    def drop_aoi(doc):
        doc["features"] = [f for f in doc["features"] if f["properties"]["role"] != "aoi"]

    path = _edit(tmp_path, drop_aoi)
    with pytest.raises(BadSiteError, match=r"site.geojson: a site needs exactly one feature with role 'aoi'"):
        load_site(path)


def test_zone_outside_aoi_is_refused(tmp_path):
    def move(doc):
        zone = next(f for f in doc["features"] if f["properties"]["role"] == "zone")
        zone["geometry"]["coordinates"] = [[[c[0] + 0.05, c[1]] for c in zone["geometry"]["coordinates"][0]]]

    with pytest.raises(BadSiteError, match=r"zone 'yard' lies \(partly\) outside the aoi"):
        load_site(_edit(tmp_path, move))


def test_self_intersecting_zone_is_refused(tmp_path):
    def bowtie(doc):
        zone = next(f for f in doc["features"] if f["properties"]["role"] == "zone")
        ring = zone["geometry"]["coordinates"][0]
        zone["geometry"]["coordinates"] = [[ring[0], ring[2], ring[1], ring[3], ring[0]]]

    with pytest.raises(BadSiteError, match=r"zone 'yard' has invalid geometry .*Self-intersection"):
        load_site(_edit(tmp_path, bowtie))


def test_unknown_role_and_bad_geometry_are_refused(tmp_path):
    path = _edit(tmp_path, lambda d: d["features"][1]["properties"].update(role="railway"))
    with pytest.raises(BadSiteError, match="role 'railway'; use 'aoi', 'track' or 'zone'"):
        load_site(path)
    one_point = {"type": "LineString", "coordinates": [[1, 2]]}
    path = _edit(tmp_path, lambda d: d["features"][1].update(geometry=one_point))
    with pytest.raises(BadSiteError, match="feature 't1'"):
        load_site(path)
    path = _edit(tmp_path, lambda d: d["features"][0]["geometry"].update(
        coordinates=[[[500000, 4690000], [500100, 4690000], [500100, 4690100], [500000, 4690000]]]))
    with pytest.raises(BadSiteError, match="outside lon/lat range"):
        load_site(path)


def test_missing_site_names_the_bundled_ones(tmp_path):
    with pytest.raises(BadSiteError, match=r"not a bundled site .*tumangang_khasan"):
        load_site(tmp_path / "nope.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{")
    with pytest.raises(BadSiteError, match=r"bad.geojson: not a readable GeoJSON"):
        load_site(bad)
