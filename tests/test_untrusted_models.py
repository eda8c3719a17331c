"""Untrusted files are never executed, and a model is identified by the bytes actually loaded."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from railwatch.cli import main
from railwatch.detect.detector import load_detector
from railwatch.detect.manifest import ModelFile, ModelManifest, default_model_dir, sha256_file
from railwatch.errors import ModelError, ModelIntegrityError
from railwatch.store.records import ModelRecord


class _RunsCode:
    """Unpickling this makes a directory: proof that loading the file ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _evil_pt(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _RunsCode(str(marker)), "train_args": {}}, path)
    return path


def test_train_from_an_unverified_pt_is_refused_before_it_is_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    evil = _evil_pt(tmp_path / "evil.pt", marker)
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.yaml").write_text("train: images/train\nval: images/val\ngsd: 0.3\n")
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "m"), "--data",
                                       str(data), "--from", str(evil), "--epochs", "1"])
    assert not marker.exists(), "the crafted checkpoint was unpickled"
    assert result.exit_code == 1, result.output + result.stderr
    assert "evil.pt" in result.stderr and "--trust-model" in result.stderr
    assert "posix.mkdir" in result.stderr  # what it would have called
    assert "Traceback" not in result.stderr


def test_train_resume_from_a_checkpoint_the_run_did_not_record_is_refused(tmp_path):
    from railwatch.training.fit import SETTINGS_FILE, TrainSettings

    out = tmp_path / "m"
    marker = tmp_path / "code-ran"
    _evil_pt(out / "run" / "weights" / "last.pt", marker)
    settings = TrainSettings(datasets=(str(tmp_path),), out=str(out))
    (out / SETTINGS_FILE).write_text(json.dumps(asdict(settings)))
    result = CliRunner().invoke(main, ["train", "--out", str(out), "--resume"])
    assert not marker.exists(), "the crafted checkpoint was unpickled"
    assert result.exit_code == 1, result.output + result.stderr
    assert "last.pt" in result.stderr and "--trust-model" in result.stderr


def test_checkpoint_gate(tmp_path):
    """Recorded sha256, or --trust-model, or a file torch loads with weights_only=True (module
    classes of torch.nn and ultralytics.nn only): anything else is refused unread."""
    from railwatch.training.checkpoint import check_checkpoint

    shipped = default_model_dir() / "railcar-obb.pt"
    sha = sha256_file(shipped)
    assert check_checkpoint(shipped, sha, trust=False) == sha
    assert check_checkpoint(shipped, None, trust=False) == sha  # weights-only loadable
    marker = tmp_path / "code-ran"
    evil = _evil_pt(tmp_path / "evil.pt", marker)
    with pytest.raises(ModelIntegrityError, match=r"evil\.pt: .*posix\.mkdir"):
        check_checkpoint(evil, None, trust=False)
    with pytest.raises(ModelIntegrityError, match="does not match"):
        check_checkpoint(evil, sha, trust=False)
    assert check_checkpoint(evil, sha, trust=True) == sha256_file(evil)  # trusted: not read
    assert not marker.exists()


@pytest.fixture
def model_copy(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    src = default_model_dir()
    for name in ("manifest.json", "railcar-obb.onnx", "namer.onnx"):
        if (src / name).is_file():  # the namer of a two-stage model
            shutil.copyfile(src / name, folder / name)
    return folder


def test_a_trusted_modified_onnx_is_identified_by_its_own_bytes(model_copy):
    import onnx

    genuine = load_detector(model_copy)
    manifest = ModelManifest.load(model_copy)
    assert genuine.model_sha256 == manifest.sha256  # a genuine model keeps its identity
    path = model_copy / "railcar-obb.onnx"
    model = onnx.load(path)
    model.doc_string = "changed by someone"
    onnx.save(model, path)
    with pytest.raises(ModelIntegrityError):
        load_detector(model_copy)
    trusted = load_detector(model_copy, trust_model=True)
    # The changed finder's own bytes take the finder's place in the identity (alone for a
    # one-stage model; beside the namer's sha256 for a two-stage one).
    expected = manifest.identity({ModelFile.ONNX: sha256_file(path)})
    assert trusted.model_sha256 == expected != manifest.sha256
    if manifest.namer_spec() is None:
        assert expected == sha256_file(path)
    record = ModelRecord.describing(trusted)
    assert record.sha256 == trusted.model_sha256
    assert "not the manifest's" in record.name
    # Its accuracy was never measured: the genuine model's is not claimed for it.
    assert all(m.precision == 1.0 and m.recall == 1.0 for m in record.metrics.values())


def test_a_model_file_that_does_not_parse_is_a_model_error(model_copy, tmp_path):
    (model_copy / "railcar-obb.onnx").write_bytes(b"\x08\x07 not a protobuf" * 64)
    with pytest.raises(ModelError, match=r"railcar-obb\.onnx: not a loadable ONNX model"):
        load_detector(model_copy, trust_model=True)
    scene = tmp_path / "scene_20231005.tif"
    scene.write_bytes(b"")
    result = CliRunner().invoke(main, ["count", str(scene), "--model", str(model_copy),
                                       "--trust-model", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "not a loadable ONNX model" in result.stderr and "Traceback" not in result.stderr


def test_identity_follows_the_bytes_loaded_for_each_stage(tmp_path):
    from railwatch.classes import CLASSES
    from railwatch.detect.manifest import NAMER_FILE, FileEntry, ModelFile

    files = {ModelFile.WEIGHTS: FileEntry("w.pt", "a" * 64), ModelFile.ONNX: FileEntry("w.onnx", "b" * 64),
             NAMER_FILE: FileEntry("n.onnx", "c" * 64)}
    finder_only = ModelManifest(tmp_path, "m", CLASSES, 0.3, 320,
                                {k: v for k, v in files.items() if k != NAMER_FILE})
    assert finder_only.identity({"onnx": "b" * 64}) == finder_only.sha256 == "a" * 64
    assert finder_only.identity({"weights": "a" * 64}) == "a" * 64
    assert finder_only.identity({"onnx": "d" * 64}) == "d" * 64
    both = ModelManifest(tmp_path, "m", CLASSES, 0.3, 320, files)
    genuine = both.identity({"onnx": "b" * 64, NAMER_FILE: "c" * 64})
    assert genuine == both.sha256
    changed = {both.identity({"onnx": "d" * 64, NAMER_FILE: "c" * 64}),
               both.identity({"onnx": "b" * 64, NAMER_FILE: "d" * 64}),
               both.identity({"weights": "d" * 64, NAMER_FILE: "c" * 64})}
    assert genuine not in changed and len(changed) == 2  # finder changed (either file) / namer changed


def test_a_run_records_its_checkpoints_and_resumes_from_them_only(tmp_path):
    from railwatch.training.checkpoint import check_checkpoint, record_checkpoints, recorded_checkpoint

    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    last = weights / "last.pt"
    shutil.copyfile(default_model_dir() / "railcar-obb.pt", last)
    assert recorded_checkpoint(tmp_path / "run", "last.pt") == ()
    record_checkpoints(weights)  # what each save does once its files are in place
    recorded = recorded_checkpoint(tmp_path / "run", "last.pt")
    assert recorded == (sha256_file(last),) and recorded_checkpoint(tmp_path / "run", "best.pt") == ()
    assert check_checkpoint(last, recorded) == recorded[0]
    # while a new last.pt is being renamed into place, both the old and the new are vouched for
    staged = tmp_path / "staged.pt"
    shutil.copyfile(default_model_dir() / "railcar-obb.pt", staged)
    with staged.open("ab") as f:
        f.write(b"\0")
    record_checkpoints(weights, {"last.pt": staged})
    both = recorded_checkpoint(tmp_path / "run", "last.pt")
    assert both == (sha256_file(staged), sha256_file(last))
    assert check_checkpoint(last, both) == both[1]
    marker = tmp_path / "code-ran"
    _evil_pt(last, marker)  # replaced after it was recorded
    with pytest.raises(ModelIntegrityError, match="does not match the one recorded"):
        check_checkpoint(last, recorded)
    assert not marker.exists()


@pytest.mark.parametrize("content", [None, "[1, 2]", "train: [", "gsd: fine"])
def test_a_data_folder_without_a_dataset_yaml_is_a_usage_error(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    if content is not None:
        (data / "data.yaml").write_text(content)
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "m"), "--data", str(data)])
    assert result.exit_code == 2, result.output + result.stderr
    assert "railwatch dataset" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_killed_at_random_moments_resumes_to_a_whole_model(tmp_path):
    """kill -9 of `railwatch train` at a random moment (start-up, first epoch, a checkpoint being
    written, measuring), then `--resume`: every try ends in a model folder whose manifest's
    sha256 match its files, and no torn checkpoint is ever loaded."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from railwatch.detect.manifest import ModelManifest
    from railwatch.simulate.chips import export_yolo_obb

    export_yolo_obb(tmp_path / "chips", 8, gsd=0.3, chip=160, seed=4, val_fraction=0.25)
    rng = random.Random(7)
    env = {**os.environ, "RAILWATCH_CACHE": str(tmp_path / "cache")}
    for trial in range(3):
        out = tmp_path / f"run{trial}"
        args = [sys.executable, "-m", "railwatch.cli", "train", "--data", str(tmp_path / "chips"),
                "--epochs", "3", "--imgsz", "160", "--batch", "4", "--workers", "0", "--out", str(out)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 25.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = subprocess.run([*args[:3], "train", "--out", str(out), "--resume"], env=env,
                              capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        manifest = ModelManifest.load(out)
        for kind in manifest.files:
            manifest.verified_path(kind)  # raises if a file is not the one listed
        assert json.loads((out / "manifest.json").read_text())["training"]["resumed_with"]


def test_checkpoints_and_their_final_strip_are_written_aside_recorded_and_renamed(tmp_path):
    """ultralytics writes last.pt/best.pt in place at each save and strips them in place at the
    end; with save_atomically both happen on staged files that are recorded, then renamed."""
    import json
    from types import SimpleNamespace

    from railwatch.detect.manifest import sha256_file
    from railwatch.training.checkpoint import CHECKPOINTS_FILE, STAGING, save_atomically

    wdir = tmp_path / "run" / "weights"
    wdir.mkdir(parents=True)
    seen: list[str] = []

    def save_model():
        seen.append(str(trainer.last.parent.name))
        trainer.last.write_bytes(b"epoch state " * 10)
        trainer.best.write_bytes(b"best state " * 10)
        return True

    def final_eval():
        seen.append(str(trainer.last.parent.name))
        assert trainer.last.read_bytes() == (wdir / "last.pt").read_bytes()  # a copy of the real one
        trainer.last.write_bytes(b"stripped")
        raise_now = trainer.best.read_bytes() == b"fail"
        if raise_now:
            raise RuntimeError("validation failed")

    trainer = SimpleNamespace(wdir=wdir, last=wdir / "last.pt", best=wdir / "best.pt",
                              save_model=save_model, final_eval=final_eval)
    save_atomically(trainer)
    assert trainer.save_model() is True
    trainer.final_eval()
    assert seen == [STAGING, STAGING] and trainer.last == wdir / "last.pt"
    assert (wdir / "last.pt").read_bytes() == b"stripped"
    record = json.loads((tmp_path / "run" / CHECKPOINTS_FILE).read_text())
    assert record["last.pt"] == [sha256_file(wdir / "last.pt")]
    assert record["best.pt"] == [sha256_file(wdir / "best.pt")]
    assert not list((wdir / STAGING).glob("*.pt"))
    (wdir / "best.pt").write_bytes(b"fail")
    with pytest.raises(RuntimeError):
        trainer.final_eval()
    assert (wdir / "last.pt").read_bytes() == b"stripped"  # a failed strip replaced nothing
