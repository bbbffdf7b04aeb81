"""The notebooks in docs/ run top to bottom on the shipped models (executed with nbclient, working dir docs/).

Why in the test suite: a notebook that no test runs rots with the API it shows. Each notebook needs one shipped
model from the package (plm_interp/pretrained/models/), so it runs in seconds and offline.
"""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from plm_interp.pretrained import list_models  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: notebook -> the shipped model it loads
NOTEBOOKS = {"notebook_cfg_patching.ipynb": "demo-rot", "notebook_igsm_vprobe.ipynb": "igsm-small"}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(DOCS / name, as_version=4)
    stale = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not stale, f"{name}: cells {stale} hold outputs; regenerate with python docs/make_notebooks.py"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs(name):
    model = NOTEBOOKS[name]
    assert model in list_models(), f"{name} needs the shipped model {model}, which is not in the package"
    nb = nbformat.read(DOCS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(DOCS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name} failed:\n{exc}")
    # a cell ending in an analysis result shows its rich view (table + inline plot), not a dump of its tensors
    rich = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "execute_result" and "Result(" in o.get("data", {}).get("text/plain", "")]
    assert rich, f"{name}: no cell ends in an analysis result"
    for out in rich:
        assert "data:image/png;base64," in out["data"]["text/html"] and "<table>" in out["data"]["text/html"]
        assert len(out["data"]["text/plain"]) < 400 and "tensor(" not in out["data"]["text/plain"]
