"""The three analyst notebooks run top to bottom on the sample (small-data mode for retraining).

Each notebook is stored without outputs; here it is executed with nbclient in the project's
own kernel, with its outputs written to a temporary folder.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from railwatch.detect.manifest import default_model_dir

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def notebook_out(tmp_path_factory):
    return tmp_path_factory.mktemp("notebooks")


def run_notebook(name: str, out: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("RAILWATCH_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("RAILWATCH_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute(env=dict(os.environ))
    return nb


def images(nb: nbformat.NotebookNode) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            parts.append(o.get("text", ""))
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name} holds outputs"


def test_count_new_batch(notebook_out, monkeypatch):
    nb = run_notebook("01_count_new_batch.ipynb", notebook_out, monkeypatch)
    out = text(nb)
    assert "counted 11" in out  # the summary line of the batch
    assert len(images(nb)) == 4  # one crop per zone of the 5 October scene, and a zoom
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in images(nb))
    assert (notebook_out / "report" / "report.md").is_file()
    assert (notebook_out / "railwatch.sqlite").is_file()


def test_traffic_trends(notebook_out, monkeypatch):
    nb = run_notebook("02_traffic_trends.ipynb", notebook_out, monkeypatch)
    out = text(nb)
    assert "2023-W40" in out and "consistent" in out
    assert len(images(nb)) == 2  # weekly series and the snapshot-against-week figure


def test_retrain_detector(notebook_out, monkeypatch):
    """Notebook 03 is the loop: turns of corrected cars on a simulated new kind of imagery, each
    a one-class fine-tune of the shipped finder keeping its namer, scored on held-out scenes and
    plotted; then the namer fine-tuned on labelled cars."""
    nb = run_notebook("03_retrain_detector.ipynb", notebook_out, monkeypatch)
    turns = sorted((notebook_out / "retrain").glob("turn-*"))
    assert [t.name for t in turns] == ["turn-15", "turn-50"]
    for turn in turns:
        model = turn / "model"
        assert {"manifest.json", "railcar-obb.pt", "railcar-obb.onnx", "namer.onnx"} <= {
            p.name for p in model.iterdir()}
        manifest = json.loads((model / "manifest.json").read_text())
        assert manifest["finder"]["classes"] == ["rail_car"]
        assert "held-out chips of the analyst's labels" in manifest["accuracy"]["evaluated_on"]
        recorded = manifest["training"]["settings"]
        assert (model / recorded["base"]).resolve() == default_model_dir().resolve()
        assert not Path(recorded["base"]).is_absolute() and "out" not in recorded
        assert all(not Path(d).is_absolute() for d in recorded["datasets"])
        args = yaml.safe_load((model / "run" / "args.yaml").read_text())
        # the analyst fine-tune's defaults: AdamW 1e-3, no warm-up, one class
        assert (args["optimizer"], args["lr0"], args["warmup_epochs"], args["single_cls"]) == (
            "AdamW", 1e-3, 0.0, True)
    out = text(nb)
    assert "corrected cars" in out and "fine-tuned" in out and "covered_car" in out
    assert "Ultralytics" not in out and "epoch 2/1" not in out  # ultralytics' logs stay out
    assert (notebook_out / "retrain" / "loop.png").is_file() and len(images(nb)) >= 1
