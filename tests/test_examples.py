"""Every example scenario loads without warnings and runs (shortened), and make demo sweeps the default question."""

from __future__ import annotations

from pathlib import Path

import pytest

import simlab

ALL = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
FLEETS = [p for p in ALL if "kind: fleet" in p.read_text()]
EXAMPLES = [p for p in ALL if p not in FLEETS]


@pytest.mark.parametrize("path", FLEETS, ids=[p.stem for p in FLEETS])
def test_fleet_example_loads(path):
    from simlab.fleet import spec as fleetspec

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
    from simlab.sweeps.sweep import load_sweep

    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    assert "DEMO := default-question" in makefile
    spec = load_sweep(root / "examples" / "sweeps" / "default-question.yaml")
    assert {"heartbeat.interval", "detector.timeout", "name"} <= set(spec.keys)


def test_the_rare_event_example_sweep_shows_the_deadline_margin_at_work(tmp_path):
    """Every point estimated to 10 %; the rate falls with the margin and rises with the loss."""
    import numpy as np
    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    frame = simlab.sweep(
        root / "examples" / "sweeps" / "rare-tcp-deadline.yaml",
        tmp_path / "rare.csv",
        workers=1,
        progress=False,
    )
    assert frame.error.isna().all() and (frame.rare_event_rel_half_width <= 0.1).all()
    table = frame.pivot(index="link.loss.p", columns="detector.timeout", values="fp_per_round")
    assert table.shape == (3, 4)
    assert (np.diff(table.to_numpy(), axis=1) < 0).all()  # a longer deadline: rarer
    assert (np.diff(table.to_numpy(), axis=0) > 0).all()  # more loss: more often
    # 1 % loss, 2 s margin: four losses of one ping or pong in a row, about 2 p^4 per round
    assert 1e-8 < table.loc[0.01, 22.0] < 1e-7
    assert pd.notna(frame.rare_event_truncation_bound).all()
