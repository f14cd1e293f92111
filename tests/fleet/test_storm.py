"""``simlab storm``: the table, and the work budget a storm is held to like a run."""

from __future__ import annotations

from pathlib import Path

from simlab.cli.main import main

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "fleet-restart.yaml")


def test_a_storm_over_its_budget_is_refused_before_it_runs(capsys):
    code = main(["storm", EXAMPLE, "--clients", "10000000", "--budget", "1s"])
    err = capsys.readouterr().err
    assert code == 2
    assert "a storm takes about" in err and "10,000,000 clients" in err
    assert "fewer clients (--clients)" in err and "--force" in err


def test_a_small_storm_runs_and_prints_its_table(capsys):
    assert main(["storm", EXAMPLE, "--clients", "200", "--budget", "1m"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleet: ") and "reconnected" in out
