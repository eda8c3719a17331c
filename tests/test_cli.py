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
    assert result.exit_code == 2  # a usage error
    assert result.stderr.startswith("railwatch: ") and "Traceback" not in result.stderr


def test_train_resume_keeps_the_command_that_started_the_run(tmp_path, monkeypatch):
    import json

    import railwatch.training.fit as fit_module
    from railwatch.classes import CLASSES
    from railwatch.detect.manifest import ModelManifest

    calls = []

    def fake_train_model(settings, resume=False, progress=print, command=None, extra_training=None,
                         **kw):
        calls.append((settings, resume, command, extra_training))
        return ModelManifest(folder=tmp_path / "m", name="railcar-obb", classes=CLASSES, gsd=0.3,
                             chip=320, files={})

    monkeypatch.setattr("railwatch.training.run.train_model", fake_train_model)
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.yaml").write_text("train: images/train\nval: images/val\ngsd: 0.3\n")
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "--out", str(out), "--data", str(data), "--epochs", "3"]
    monkeypatch.setattr(sys, "argv", ["railwatch", *args])  # what the console script sees
    started = runner.invoke(main, args)
    assert started.exit_code == 0, started.output
    # fit() writes the settings file; the fake did not, so write what it would have.
    recorded = calls[0][0].recorded()
    assert recorded["datasets"] == ["../data"] and "out" not in recorded  # no absolute path
    (out / fit_module.SETTINGS_FILE).write_text(json.dumps(recorded))
    args = ["train", "--out", str(out), "--resume"]
    monkeypatch.setattr(sys, "argv", ["railwatch", *args])
    resumed = runner.invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    (_, r0, c0, e0), (s1, r1, c1, e1) = calls
    assert e0 == {"simulated_chips": 0}
    assert not r0 and r1 and s1 == calls[0][0]
    assert c0 == c1 and "--epochs 3" in c1 and "--resume" not in c1
    assert "--resume" in e1["resumed_with"] and e1["simulated_chips"] == 0


def test_train_resume_without_a_run_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "nothing"), "--resume"])
    assert r.exit_code != 0
    assert "not a training run to resume" in r.output
