"""The wheel built from the repository ships the model, and an installed copy finds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from railwatch.detect.manifest import ModelFile

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = ("manifest.json", "railcar-obb.onnx", "railcar-obb.pt")


def _strings(doc: object) -> list[str]:
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return [doc] if isinstance(doc, str) else []


def _wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the checkout (so that it gets no build/ or egg-info)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("railwatch", "models"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(wheels), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = wheels.glob("railwatch-*.whl")
    return wheel


def test_the_shipped_manifest_holds_no_absolute_path():
    doc = json.loads((ROOT / "models" / "manifest.json").read_text())
    absolute = [s for s in _strings(doc) if s.startswith(("/", "~")) or s[1:3] in (":\\", ":/")]
    assert not absolute
    datasets = doc["training"]["settings"]["datasets"]
    assert datasets and all(not d.startswith("/") for d in datasets)
    assert "out" not in doc["training"]["settings"]


def test_the_wheel_ships_the_model_and_an_installed_copy_finds_it(tmp_path):
    wheel = _wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {f"railwatch/models/{f}" for f in MODEL_FILES} <= names
        assert "railwatch/sites/tumangang_khasan.geojson" in names
        zf.extractall(tmp_path / "installed")
    # A fresh interpreter with the unpacked wheel first on the path (the libraries come from the
    # environment) finds the shipped model inside the installed package and checks its hashes.
    probe = """
import json, railwatch
from railwatch.detect.manifest import ModelFile, ModelManifest, default_model_dir
folder = default_model_dir()
manifest = ModelManifest.load(folder)
print(json.dumps({
    "package": railwatch.__file__, "folder": str(folder), "name": manifest.name,
    "onnx": str(manifest.verified_path(ModelFile.ONNX)),
    "weights": str(manifest.verified_path(ModelFile.WEIGHTS)),
    "namer": str(manifest.verified_path(ModelFile.NAMER_ONNX)) if manifest.namer_spec() else None,
}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("RAILWATCH_MODEL_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(tmp_path / "installed")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    installed = (tmp_path / "installed" / "railwatch").resolve()
    assert Path(found["package"]).resolve().parent == installed
    assert Path(found["folder"]).resolve() == installed / "models"
    assert Path(found["onnx"]).resolve().parent == installed / "models"
    shipped = json.loads((ROOT / "models" / "manifest.json").read_text())
    assert found["name"] == shipped["name"]
    if ModelFile.NAMER_ONNX.value in shipped["files"]:  # a two-stage model ships its namer too
        assert Path(found["namer"]).resolve().parent == installed / "models"


def test_a_checkout_finds_the_model_at_the_top_level(monkeypatch):
    from railwatch.detect.manifest import default_model_dir

    monkeypatch.delenv("RAILWATCH_MODEL_DIR", raising=False)
    assert default_model_dir() == ROOT / "models"
    assert not (ROOT / "railwatch" / "models").exists()


@pytest.mark.slow
def test_a_wheel_installed_without_torch_or_ultralytics_counts_a_sample_scene(tmp_path):
    """The light install: the wheel in a fresh virtual environment, its dependencies only (no
    training extra), counts a sample scene with the shipped model on ONNX Runtime, and
    `railwatch train` says which extra to install."""
    import venv

    wheel = _wheel(tmp_path)
    env_dir = tmp_path / "light"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=1800)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True).stdout
    assert "torch" not in listed and "ultralytics" not in listed
    env = {k: v for k, v in os.environ.items() if k not in ("RAILWATCH_MODEL_DIR", "PYTHONPATH",
                                                            "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}:{env.get('PATH', '')}"
    scene = ROOT / "sample_tiles" / "tumangang_khasan_20231005T0215Z.tif"
    out = tmp_path / "out"
    ran = subprocess.run([str(env_dir / "bin" / "railwatch"), "count", str(scene), "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    features = json.loads((out / "detections.geojson").read_text())["features"]
    assert len(features) > 20 and (out / "run.json").is_file()
    train = subprocess.run([str(env_dir / "bin" / "railwatch"), "train", "--out", str(tmp_path / "t"),
                            "--simulate", "2"], capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=300)
    assert train.returncode == 1 and "pip install 'railwatch[train]'" in train.stderr
    assert "Traceback" not in train.stderr
