"""A screenshot of an output set's ``report.html`` in headless Chromium, the network blocked
(what ``docs/report_page.png`` is made with).

    python scripts/screenshot_report.py OUT/report.html docs/report_page.png

Needs Debian's ``chromium`` and the ``playwright`` Python package (railwatch's dev extra). It
opens the page offline, waits for Bokeh to draw, hovers the first car of the first view (its
tooltip is in the picture) and saves a PNG of the first screenful.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=1100)
    p.add_argument("--tab", default=None,
                   help="show the view whose tab title contains this (default: the first)")
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no Chromium: install Debian's `chromium` package", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                       else r.abort())
            page.goto(args.page.resolve().as_uri())
            page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
            page.wait_for_timeout(1500)
            name = page.evaluate("""(wanted) => { const doc = Bokeh.documents[0];
                for (const m of doc.all_models) {
                  if (m.type != 'Tabs' || !wanted) continue;
                  const k = m.tabs.findIndex(t => t.title.includes(wanted));
                  if (k >= 0) { m.active = k; return m.tabs[k].child.name; }
                }
                return 'view-0'; }""", args.tab)
            page.wait_for_timeout(1500)
            at = page.evaluate("""(name) => { const doc = Bokeh.documents[0];
                const plot = doc.get_model_by_name(name);
                const r = [...doc.all_models].find(
                  m => m.type == 'GlyphRenderer'
                       && (m.name ?? '').startsWith('boxes-' + name.slice(5) + '-'));
                if (!plot || !r) return null;
                const xs = r.data_source.data.xs[0], ys = r.data_source.data.ys[0];
                const find = (v) => { if (v.model === plot) return v;
                  for (const c of (v.child_views ?? [])) { const f = find(c); if (f) return f; }
                  return null; };
                let view = null; for (const root of Bokeh.index.roots) view = view ?? find(root);
                const box = view.canvas_view.el.getBoundingClientRect();
                return {x: box.left + view.frame.x_scale.compute(xs.reduce((a, b) => a + b) / 4),
                        y: box.top + view.frame.y_scale.compute(ys.reduce((a, b) => a + b) / 4)}; }""", name)
            page.wait_for_timeout(1000)
            if at is not None:
                page.mouse.move(at["x"], at["y"])
                page.wait_for_timeout(800)
            args.png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.png))
        finally:
            browser.close()
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
