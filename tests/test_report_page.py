"""report.html: one self-contained page, opened in a real browser with the network blocked."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from conftest import write_scene, write_site
from fake_detector import FakeDetector

from railwatch.cli import main
from railwatch.site import load_site

LON, LAT = 130.6081, 42.4214
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """Three scenes counted (a string of cars that comes and goes), outputs in tmp_path/out."""
    site_path = write_site(tmp_path / "site.geojson", LON, LAT)
    site = load_site(site_path)
    (tmp_path / "img").mkdir()
    days = ("20231003", "20231005", "20231010")
    for i, day in enumerate(days):
        write_scene(tmp_path / "img" / f"a_{day}.tif", "EPSG:32652", LON, LAT, seed=i)
        (tmp_path / "img" / f"a_{day}.json").write_text(json.dumps(
            {"type": "Feature", "properties": {"datetime": f"{day[:4]}-{day[4:6]}-{day[6:]}T02:00:00Z",
                                               "railwatch:simulated": True}}))
    c = site.to_local(shapely.Point(LON, LAT))
    per = {f"a_{d}.tif": [(c.x - 40 + 16.5 * k, c.y, "covered_car") for k in ks]
           for d, ks in zip(days, ((0, 1, 3), (0, 1, 2, 3), (1, 2)), strict=True)}
    det = FakeDetector(site.crs, per_scene=per, naming=0.77)
    monkeypatch.setattr("railwatch.cli.options.build_detector", lambda choice: det)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["count", str(tmp_path / "img"), "--site", str(site_path),
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    return out


def test_every_output_set_has_a_self_contained_report_page(counted):
    page = (counted / "report.html").read_text(encoding="utf-8")
    listed = {f["path"] for f in json.loads((counted / "run.json").read_text())["files"]}
    assert "report.html" in listed
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=\"?https?:", page)
    assert "Bokeh" in page and len(page) > 500_000  # the library inline, not from a CDN
    assert "SIMULATED imagery" in page
    for table in ("frames.csv", "weekly.csv", "comparison.csv", "detections.geojson"):
        assert f'href=\\"{table}\\"' in page  # a link, in the page's (JSON-escaped) document
    assert "What changed" in page and "arrived" in page and "departed" in page
    assert "What to look at next" in page and "the widest interval" in page


@pytest.mark.slow
def test_the_page_renders_offline_in_chromium_with_every_car_and_a_hover(counted, tmp_path):
    """Headless Chromium, every request that is not the file itself blocked: no console error,
    as many boxes drawn as detections.geojson holds, and hovering a car shows its class."""
    if CHROMIUM is None:
        message = "no Chromium: install Debian's `chromium` package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    features = json.loads((counted / "detections.geojson").read_text())["features"]
    errors: list[str] = []
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", route)
            page.goto((counted / "report.html").as_uri())
            page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
            page.wait_for_timeout(1000)
            drawn = page.evaluate("""() => { let n = 0;
                for (const m of Bokeh.documents[0].all_models) {
                  if (m.type == 'GlyphRenderer' && /^boxes-\\d{1,3}-/.test(m.name ?? ''))
                    n += m.data_source.data.xs.length;
                } return n; }""")
            at = page.evaluate("""() => { const doc = Bokeh.documents[0];
                const plot = doc.get_model_by_name('view-0');
                const r = [...doc.all_models].find(
                  m => m.type == 'GlyphRenderer' && (m.name ?? '').startsWith('boxes-0-'));
                const xs = r.data_source.data.xs[0], ys = r.data_source.data.ys[0];
                const find = (v) => { if (v.model === plot) return v;
                  for (const c of (v.child_views ?? [])) { const f = find(c); if (f) return f; }
                  return null; };
                let view = null; for (const root of Bokeh.index.roots) view = view ?? find(root);
                const box = view.canvas_view.el.getBoundingClientRect();
                return {x: box.left + view.frame.x_scale.compute(xs.reduce((a, b) => a + b) / 4),
                        y: box.top + view.frame.y_scale.compute(ys.reduce((a, b) => a + b) / 4),
                        scene: r.data_source.data.scene[0], acquired: r.data_source.data.acquired[0]}; }""")
            page.mouse.move(at["x"], at["y"])
            page.get_by_text(at["acquired"]).wait_for(timeout=10_000)  # the tooltip, with the car's time
            shot = Path(os.environ.get("RAILWATCH_TEST_ARTEFACTS", tmp_path)) / "report_page.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
            tooltip = page.get_by_text("covered_car").count()
        finally:
            browser.close()
    assert errors == [] and outside == []
    assert drawn == len(features) == 9
    assert tooltip >= 2 and shot.stat().st_size > 10_000  # the legend entry and the hovered car
