"""Every example scenario loads without warnings and runs (shortened), and the demo is what make demo runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import simlab

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_loads_and_runs(path):
    warnings: list = []
    s = simlab.load_scenario(path, warnings=warnings)
    assert warnings == []
    result = simlab.simulate(simlab.load_scenario(path, {"connections": 2, "horizon": "30m"}))
    assert result["connected_hours"] > 0
    assert result["heartbeats_sent"] > 0
    assert s.connections >= 10


def test_makefile_demo_runs_the_demo_example():
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert "examples/demo.yaml" in makefile
