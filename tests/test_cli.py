from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from railwatch.cli import main


def test_import_and_help_do_not_load_torch_or_ultralytics():
    code = (
        "import sys, time; t = time.perf_counter(); import railwatch, railwatch.cli; "
        "from click.testing import CliRunner; r = CliRunner().invoke(railwatch.cli.main, ['--help']); "
        "assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'ultralytics', 'onnxruntime', 'cv2') if m in sys.modules]; "
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, _seconds = out.stdout.split("]")
    assert heavy == "[", f"heavy modules imported: {heavy}]"


def test_sites_lists_the_bundled_site():
    result = CliRunner().invoke(main, ["sites"])
    assert result.exit_code == 0
    assert "tumangang_khasan" in result.output and "EPSG:32652" in result.output


def test_inspect_reports_time_source_and_refusals(make_scene, tmp_path):
    good = make_scene(name="good_20231005.tif", crs="EPSG:4326")
    coarse = make_scene(name="coarse_20231005.tif", gsd_m=3.0, size=100)
    result = CliRunner().invoke(main, ["inspect", str(good.path), str(coarse.path)])
    assert result.exit_code == 0, result.output
    assert "acquired  2023-10-05T00:00:00+00:00  (from file_name: 20231005)" in result.output
    assert "zone tumangang_yard" in result.output
    assert "coarse_20231005.tif: REFUSED (too_coarse)" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_inspect_exits_1_when_no_scene_is_usable(tmp_path):
    bad = tmp_path / "x_20231005.tif"
    bad.write_text("nope")
    result = CliRunner().invoke(main, ["inspect", str(bad)])
    assert result.exit_code == 1
    assert "x_20231005.tif: REFUSED (unreadable)" in result.stderr


def test_bad_site_is_one_line_not_a_traceback(tmp_path):
    result = CliRunner().invoke(main, ["inspect", "--site", str(tmp_path / "no.geojson"), "a.tif"])
    assert result.exit_code == 1
    assert result.stderr.startswith("railwatch: ") and "Traceback" not in result.stderr
