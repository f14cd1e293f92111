"""Every notebook in notebooks/ runs top to bottom in quick mode, and is committed clean.

Each notebook is executed in a fresh Python kernel with ``SIMLAB_QUICK=1`` (its small
size) and ``SIMLAB_STATIC=1`` (the static output that stands in for the sliders when
ipywidgets is missing), from the notebooks folder, within a per-notebook wall-clock budget;
a cell that raises fails the test with its traceback. Committed notebooks carry no outputs
and no execution counts. The tests skip, with the reason, only when no Jupyter kernel can
start on this machine.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
KERNEL = "python3"
NOTEBOOK_TIMEOUT = 240.0  # s of wall time for one notebook, kernel start included
CELL_TIMEOUT = 180  # s for one cell


@pytest.fixture(scope="module")
def kernel_ok() -> None:
    """Start (and stop) one kernel: if that fails, every execution test skips with why."""
    try:
        manager, client = start_new_kernel(kernel_name=KERNEL, startup_timeout=60)
    except Exception as exc:  # no kernelspec, the kernel died at start, ...
        pytest.skip(f"no Jupyter kernel {KERNEL!r} can start here: {type(exc).__name__}: {exc}")
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def test_there_are_notebooks_and_the_readme_maps_them():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 8, names
    numbers = [n.split("-", 1)[0] for n in names]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), names
    readme = (FOLDER / "README.md").read_text()
    for name in names:
        assert name in readme, f"notebooks/README.md does not list {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} carries widget state"
    assert nb["cells"][0]["cell_type"] == "markdown", "a notebook starts with its narrative"
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "SIMLAB_QUICK" in code, f"{path.name} does not read SIMLAB_QUICK"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, kernel_ok, monkeypatch):
    monkeypatch.setenv("SIMLAB_QUICK", "1")
    monkeypatch.setenv("SIMLAB_STATIC", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(FOLDER)}},
    )
    started = time.perf_counter()

    async def run():
        await asyncio.wait_for(client.async_execute(), NOTEBOOK_TIMEOUT)

    try:
        asyncio.run(run())
    except TimeoutError:
        pytest.fail(f"{path.name} took longer than {NOTEBOOK_TIMEOUT:.0f} s in quick mode")
    wall = time.perf_counter() - started
    errors = [
        (i, o.get("ename"), o.get("evalue"))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors
    executed = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in executed), "every code cell ran"
    # a figure shows as a picture, not as "<Figure size ...>" (the inline backend is on)
    outputs = [o for c in executed for o in c.get("outputs", [])]
    shown = [o for o in outputs if "image/png" in o.get("data", {})]
    as_text = [
        o
        for o in outputs
        if str(o.get("data", {}).get("text/plain", "")).startswith("<Figure size")
        and "image/png" not in o.get("data", {})
    ]
    assert shown and not as_text, f"{path.name}: {len(shown)} figures shown, {len(as_text)} as text"
    print(f"{path.name}: {wall:.1f} s in quick mode")
