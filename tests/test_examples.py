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


def test_makefile_demo_asks_the_default_question():
    """make demo is simlab ask on the question examples/sweeps/default-question.yaml sweeps by
    hand: the same middlebox, networks and bounds (its header says them), into out/demo."""
    import shlex

    from simlab.cli.main import _parser

    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text().replace("\\\n", " ")
    question = next(line for line in makefile.splitlines() if line.startswith("DEMO_QUESTION"))
    argv = ["ask", *shlex.split(question.split(":=", 1)[1]), "--out-dir", "out/demo"]
    args = _parser().parse_args(argv)
    assert args.behind == "aws-alb" and args.network == ["home-wifi", "lte"]
    assert (args.max_detection, args.max_false_disconnects) == ("60s", "2/conn-day")
    text = (root / "examples" / "sweeps" / "default-question.yaml").read_text()
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "--behind aws-alb" in header and "home Wi-Fi and on LTE" in header
    assert "$(VENV)/bin/simlab ask $(DEMO_QUESTION) --out-dir $(DEMO_DIR)" in makefile
    readme = (root / "README.md").read_text()  # the command the README shows is the demo's
    shown = next(line for line in readme.splitlines() if line.startswith("simlab ask "))
    assert vars(_parser().parse_args(shlex.split(shown)[1:])) == vars(args)


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
