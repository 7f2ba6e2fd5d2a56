"""Execute the example notebooks with tiny settings, and check they match their sources."""

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    """Environment the kernel inherits: tiny settings, a private data cache, one thread.

    The models are small, so a second thread buys little, and on a busy CI runner several
    OpenMP threads per process slow every step down by an order of magnitude.
    """
    monkeypatch.setenv("FLT3D_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("FLT3D_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "work"
    work.mkdir()
    return work


def execute(nb, cwd: Path):
    # no limit on a cell's time: the tests check what the notebooks produce, whatever the
    # machine's speed or load
    client = nbclient.NotebookClient(
        nb,
        timeout=None,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    return client.execute()


def test_notebooks_match_their_sources():
    """Each ``.ipynb`` holds the cells of its jupytext source ``<name>.py``, and no outputs."""
    jupytext = pytest.importorskip("jupytext")
    assert NAMES == [
        "01_quickstart_qm9",
        "02_flt_layers_in_your_pyg_model",
        "03_what_the_rpe_learned",
        "04_sequences_and_images",
        "05_point_clouds",
    ]
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == NAMES
    stale = []
    for name in NAMES:
        source = jupytext.read(NOTEBOOKS / f"{name}.py")
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        if [(c.cell_type, c.source) for c in nb.cells] != [
            (c.cell_type, c.source) for c in source.cells
        ]:
            stale.append(name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name
        assert nb.metadata.kernelspec.name == "python3"
        assert nb.metadata.jupytext.formats == "ipynb,py:percent", name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert not stale, f"out of date, run jupytext --sync notebooks/*.py: {stale}"


def test_kernel_is_this_interpreter(notebook_env):
    """``kernel_name="python3"`` must start this venv's Python, where flt3d is installed."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import sys, flt3d; print(sys.executable)")]
    )
    out = execute(nb, notebook_env).cells[0].outputs
    printed = "".join(o.get("text", "") for o in out).strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, notebook_env):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb = execute(nb, notebook_env)  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} drew no figure"
    keep = os.environ.get("FLT3D_NOTEBOOK_OUTPUT")  # a folder to keep executed notebooks in
    if keep:
        os.makedirs(keep, exist_ok=True)
        nbformat.write(nb, os.path.join(keep, f"{name}.ipynb"))
