"""Every example scenario loads without warnings and runs (shortened), and make demo sweeps the default question."""

from __future__ import annotations

from pathlib import Path

import pytest

import simlab

ALL = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
FLEETS = [p for p in ALL if "kind: fleet" in p.read_text()]
EXAMPLES = [p for p in ALL if p not in FLEETS]


@pytest.mark.parametrize("path", FLEETS, ids=[p.stem for p in FLEETS])
def test_fleet_example_loads(path):
    from simlab import fleetspec

    fleet, warnings = fleetspec.load(path)
    assert warnings == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_loads_and_runs(path):
    warnings: list = []
    s = simlab.load_scenario(path, warnings=warnings)
    assert warnings == []
    result = simlab.simulate(simlab.load_scenario(path, {"connections": 2, "horizon": "30m"}))
    assert result["connected_hours"] > 0
    assert result["heartbeats_sent"] > 0
    assert s.connections >= 10


def test_makefile_demo_runs_the_default_question():
    from simlab.experiment import load_sweep

    root = Path(__file__).parent.parent
    makefile = (root / "Makefile").read_text()
    assert "DEMO := default-question" in makefile
    spec = load_sweep(root / "examples" / "sweeps" / "default-question.yaml")
    assert {"heartbeat.interval", "detector.timeout", "name"} <= set(spec.keys)
