"""simlab ask's logic: the settings it picks (pure functions), a hand-computable question's known
optimum, and the sweep file it writes, rerun with simlab sweep to the same rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from simlab.cli.main import main
from simlab.lab import ask as A
from simlab.lab.question import NAT_ALLOWANCE_S, ChooseError, constraints

ROOT = Path(__file__).resolve().parents[2]
# no loss, no outages, no NAT of its own; crashes (the base's) give the detection figures
HAND = {
    "networks": ["datacenter"],
    "nat_timeout": "30s",
    "max_detection": "30s",
    "max_false_disconnects": "2/conn-day",
    "connections": 8,
    "horizon": "24h",
    "replications": 2,  # the p95's interval needs two
    "minimize": "messages",  # without loss, exactly the rounds: the optimum by hand
}


def test_interval_limit_is_the_middlebox_minus_the_allowance_or_the_detection_bound():
    c = constraints("60s", "2/conn-day", behind="aws-alb")
    assert A.interval_limit(c) == 60 - NAT_ALLOWANCE_S
    assert A.interval_limit(c, jitter=0.5) == pytest.approx(59 / 1.5)
    assert A.interval_limit(constraints("20s", None, nat_timeout="60s")) == 20
    assert A.interval_limit(constraints("60s", None, nat_timeout="60s"), k=2) == 30


def test_the_coarse_grid_spans_what_can_meet_the_bounds():
    assert A.resolution(59) == 1 and A.resolution(0.99) == 0.01
    assert A.longest_interval(59, 1) == 58 and A.longest_interval(58.5, 1) == 58
    grid = A.coarse_settings(58, 60, 1)
    assert sorted({i for i, _ in grid}) == [15, 20, 30, 40, 50, 58]
    assert all(i < t <= 60 for i, t in grid)
    assert [t for i, t in grid if i == 15] == [30, 45, 60]
    assert [t for i, t in grid if i == 58] == [59, 60]


def test_the_second_round_lies_between_the_best_and_its_infeasible_neighbour():
    first = A.coarse_settings(58, 60, 1)
    second = A.refine_settings(first, 40, 60, 1)
    assert sorted({i for i, _ in second}) == [42, 44, 46, 48]
    assert all(i < t <= 60 for i, t in second) and not set(second) & set(first)
    assert A.refine_settings(first, 58, 60, 1) == []  # the longest allowed met the bounds
    assert A.refine_settings(first, None, 60, 1) == []  # nothing did


def test_the_networks_are_the_default_questions_conditions():
    default = yaml.safe_load((ROOT / "examples/sweeps/default-question.yaml").read_text())
    shared, varied = A.conditions(["home-wifi", "lte"])
    expected = default["zip"][1]
    assert set(varied) == set(expected) - {"link.loss.loss_good"}  # 0.001 on both: shared
    assert shared["link.loss.loss_good"] == 0.001
    for key in ("name", "link.loss.p_gb", "link.loss.p_bg", "link.loss.loss_bad"):
        assert varied[key] == expected[key]
    assert varied["link.outages.mtbf"] == ["1d", "2h"]
    assert shared["link.loss.model"] == "gilbert"


def test_bad_input_lists_every_problem():
    with pytest.raises(ChooseError) as err:
        A.read_question(
            networks=["moon"],
            behind="nowhere",
            max_false_disconnects="lots",
            library="akka",
            connections=0,
        )
    paths = {p.path for p in err.value.problems}
    assert {
        "--network",
        "--behind",
        "--max-false-disconnects",
        "--max-detection",
        "--connections",
        "--library",
    } <= paths


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    out = tmp_path_factory.mktemp("ask") / "hand"
    return A.ask(out_dir=out, progress=False, workers=2, **HAND)


def test_a_hand_computable_question_gets_its_known_optimum(hand):
    # the 30 s NAT allows intervals with interval + 1 s < 30 s: 28 s on a 1 s step; with no
    # loss and no outages nothing is a false disconnect, and every deadline up to the 30 s
    # bound detects a crash within it; the cost falls with the interval alone
    assert hand.choice.feasible
    best = hand.choice.recommendation
    assert best.interval_s == 28.0 and best.deadline_s in (29.0, 30.0)
    assert len(hand.rounds) == 1  # the longest interval allowed met the bounds: no round 2
    assert hand.report.is_file() and hand.sweep.is_file()


def test_the_sweep_file_reruns_to_the_same_rows(hand, tmp_path):
    again = tmp_path / "again.csv"
    assert main(["sweep", str(hand.sweep), "--out", str(again), "--quiet", "--workers", "2"]) == 0
    first = pd.read_csv(hand.csv).drop(columns="wall_s")
    second = pd.read_csv(again).drop(columns="wall_s")
    pd.testing.assert_frame_equal(first, second)
