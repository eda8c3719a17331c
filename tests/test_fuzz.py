"""Malformed inputs thrown at the loaders and parsers: every outcome is a result or a
:class:`RailwatchError` with a message, never another exception (seeded, bounded, a few seconds).

Inputs: GeoTIFFs with bytes of their header and directory changed or cut short, STAC sidecars,
site GeoJSON and reported-figures CSV, each as random text and as random structures shaped
like the real thing.
"""

from __future__ import annotations

import json
import math
import tempfile
from functools import cache
from pathlib import Path

import pytest
from conftest import write_scene, write_site
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from railwatch.errors import RailwatchError
from railwatch.imagery.acquisition import from_stac_sidecar
from railwatch.imagery.grid import SiteGrid, plan_windows
from railwatch.imagery.scene import open_scene
from railwatch.imagery.warp import read_tiles
from railwatch.report.reported import load_reported
from railwatch.site import Site, load_site, site_from_geojson

LON, LAT = 130.6081, 42.4214

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="railwatch-fuzz-") as d:
        yield Path(d)


def _outcome(fn, *args):
    """Run ``fn``; a RailwatchError must carry a message, anything else but one fails."""
    try:
        result = fn(*args)
    except RailwatchError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        event(f"refused: {type(exc).__name__}")
        return exc
    event("accepted")
    return result


# --- GeoTIFF headers ----------------------------------------------------------------------------


@cache
def _tiff(folder: str) -> tuple[bytes, str]:
    site_path = write_site(Path(folder) / "site.geojson", LON, LAT)
    scene = write_scene(Path(folder) / "good_20231005.tif", "EPSG:32652", LON, LAT, size=96,
                        dtype="uint16", tags={"ACQUISITION_DATETIME": "2023-10-05T02:15:00Z"})
    return scene.path.read_bytes(), str(site_path)


def _load_scene(path: Path, site: Site) -> object:
    scene = open_scene(path, site.crs, site.aoi_local)
    grid = SiteGrid.covering(site.aoi_local, site.crs, 0.5)
    return [t.valid.sum() for t in read_tiles(scene, grid, plan_windows(grid, site.counting_region()))]


@settings(FUZZ, max_examples=40)  # each example opens and reads a GeoTIFF: ~0.1 s
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    header_only=st.booleans(),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_geotiff_with_damaged_header_is_a_railwatch_error_or_a_scene(workdir, edits, header_only,
                                                                      cut):
    good, site_path = _tiff(str(workdir))
    site = load_site(site_path)
    data = bytearray(good)
    for offset, value in edits:  # mostly the 8-byte header and the directories that follow
        data[offset % (512 if header_only else len(data))] = value
    if cut is not None:
        data = data[: cut % len(data)]
    path = workdir / "fuzzed_20231005.tif"
    path.write_bytes(bytes(data))
    _outcome(_load_scene, path, site)


# --- STAC sidecars ------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)
_times = st.one_of(
    st.none(), st.integers(), st.text(max_size=30),
    st.sampled_from(["2023-10-05T02:15:00Z", "2023-13-45T99:99:99Z", "not-a-date", "2023-10-05",
                     "2023:10:05 02:15:00", "2023-10-05T02:15:00+25:00", "", "2023-02-30"]),
)
_items = st.fixed_dictionaries(
    {"type": st.sampled_from(["Feature", "FeatureCollection", 3])},
    optional={"properties": st.one_of(
        _json, st.fixed_dictionaries({}, optional={"datetime": _times, "start_datetime": _times}))},
)


@FUZZ
@given(doc=st.one_of(st.text(max_size=200), _json.map(json.dumps), _items.map(json.dumps),
                     st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_stac_sidecar_is_a_time_none_or_a_railwatch_error(workdir, doc):
    image = workdir / "scene.tif"
    image.with_suffix(".json").write_text(doc, encoding="utf-8", errors="surrogatepass")
    result = _outcome(from_stac_sidecar, image)
    assert result is None or isinstance(result, RailwatchError) or result.time.tzinfo is not None


# --- site files ---------------------------------------------------------------------------------

_coord = st.one_of(st.floats(-200, 200), st.just(math.nan), st.just(math.inf),
                   st.floats(LON - 0.01, LON + 0.01), st.text(max_size=3), st.none())
_position = st.lists(_coord, min_size=0, max_size=3)
_ring = st.lists(_position, min_size=0, max_size=6)
_geometry = st.one_of(
    st.fixed_dictionaries({
        "type": st.sampled_from(["Polygon", "LineString", "Point", "MultiPolygon", "Nope", 5]),
        "coordinates": st.one_of(st.lists(_ring, max_size=2), _ring, _position, _json),
    }),
    _json,
)
_feature = st.one_of(
    st.fixed_dictionaries({
        "type": st.just("Feature"),
        "properties": st.one_of(st.fixed_dictionaries({
            "role": st.sampled_from(["aoi", "track", "zone", "other", None, 1]),
            "name": st.one_of(st.text(max_size=10), st.none(), st.integers()),
        }), _json),
        "geometry": _geometry,
    }),
    _json,
)


def _real_site() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return json.loads(write_site(Path(d) / "s.geojson", LON, LAT).read_text())


@FUZZ
@given(
    doc=st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["FeatureCollection", "Feature"]),
                               "features": st.one_of(st.lists(_feature, max_size=4), _json)},
                              optional={"name": _json}),
        _json,
    ),
    keep_real=st.integers(0, 3),
)
def test_site_geojson_is_a_site_or_a_railwatch_error(doc, keep_real):
    if isinstance(doc, dict) and isinstance(doc.get("features"), list) and keep_real:
        doc["features"] = _real_site()["features"][:keep_real] + doc["features"]
    result = _outcome(site_from_geojson, doc, "fuzzed", "fuzzed.geojson")
    assert isinstance(result, Site | RailwatchError)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=200)))
def test_site_file_of_random_bytes_is_a_railwatch_error(workdir, text):
    path = workdir / "site.geojson"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert isinstance(_outcome(load_site, path), Site | RailwatchError)


# --- reported-figures CSV ----------------------------------------------------------------------

_HEADER = "date,site,zone,class,count,qualifier,quantity,source,url,note,tolerance"
_field = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["2023-10-05", "2023-10-05/2023-10-01", "2023-10-01/2023-10-05", "2023-02-30",
                     "any", "covered_car", "tumangang_khasan", "at_least", "approximately",
                     "snapshot", "weekly", "nan", "inf", "-1", "1e400", "0.5", "1.5", '"a,b"', ""]),
)
_row = st.lists(_field, min_size=0, max_size=13).map(",".join)


@FUZZ
@given(
    header=st.one_of(st.just(_HEADER), st.text(max_size=60),
                     st.permutations(_HEADER.split(",")).map(",".join)),
    rows=st.lists(st.one_of(_row, st.text(max_size=40)), max_size=5),
    raw=st.one_of(st.none(), st.binary(max_size=120)),
)
def test_reported_csv_is_figures_or_a_railwatch_error(workdir, header, rows, raw):
    path = workdir / "reported.csv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8",
                        errors="surrogatepass")
    result = _outcome(load_reported, path)
    assert isinstance(result, tuple | RailwatchError)
