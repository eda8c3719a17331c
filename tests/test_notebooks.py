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
    nb = run_notebook("03_retrain_detector.ipynb", notebook_out, monkeypatch)
    model = notebook_out / "retrain" / "model"
    assert {"manifest.json", "railcar-obb.pt", "railcar-obb.onnx"} <= {p.name for p in model.iterdir()}
    out = text(nb)
    assert "retrained" in out and "shipped" in out and "covered_car" in out
    # It fine-tuned the shipped weights, gently: no warm-up, a small AdamW rate.
    manifest = json.loads((model / "manifest.json").read_text())
    recorded = manifest["training"]["settings"]
    assert (model / recorded["base"]).resolve() == default_model_dir().resolve()
    assert not Path(recorded["base"]).is_absolute() and "out" not in recorded
    assert all(not Path(d).is_absolute() for d in recorded["datasets"])
    args = yaml.safe_load((model / "run" / "args.yaml").read_text())
    assert (args["optimizer"], args["lr0"], args["warmup_epochs"]) == ("AdamW", 1e-4, 0.0)
