"""The Python API layers a scenario exactly as the command line does (issue 14).

``simlab.load_scenario(path, overrides, preset=, networks=)`` must give the very scenario
that ``simlab run path --preset --network --set`` simulates, and ``simlab.sweep(...,
preset=)`` must run a base with the preset, as ``simlab sweep --preset`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import simlab
from simlab.cli.main import main
from simlab.scenario.schema import flatten, to_dict

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "examples" / "demo.yaml")


def _run_scenario(monkeypatch, argv: list[str]):
    """The scenario ``simlab run ARGV`` would simulate (the simulation itself is skipped)."""
    seen = []

    def fake(scenario, progress=False):
        seen.append(scenario)
        return SimpleNamespace(summary={"scenario": scenario.name}, records=None)

    monkeypatch.setattr("simlab.engines.runner.simulate", fake)
    assert main(["run", *argv]) == 0
    (scenario,) = seen
    return scenario


CASES = [
    (DEMO, "websockets-default", ["lte", "behind-alb"], {"heartbeat.interval": "25s"}),
    (DEMO, "gorilla-example", [], {"nat.idle_timeout": "30s", "link.loss": 0.05}),
    (DEMO, None, ["datacenter"], {}),
    (DEMO, None, [], {"detector.timeout": "70s", "seed": 7}),
    (None, "socketio-default", ["behind-heroku"], {"connections": 3}),
    (None, None, ["lte"], {}),
]


@pytest.mark.parametrize(("path", "preset", "networks", "overrides"), CASES)
def test_load_scenario_is_what_simlab_run_uses(
    monkeypatch, capsys, path, preset, networks, overrides
):
    argv = [path] if path else []
    argv += ["--preset", preset] if preset else []
    for name in networks:
        argv += ["--network", name]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    cli = _run_scenario(monkeypatch, argv)
    cli_warnings = capsys.readouterr().err
    warnings: list = []
    api = simlab.load_scenario(path, overrides, preset=preset, networks=networks, warnings=warnings)
    assert to_dict(api) == to_dict(cli)
    assert api == cli
    assert cli_warnings == "".join(f"warning: {w}\n" for w in warnings)


def test_load_scenario_matches_simlab_check(capsys):
    argv = ["check", DEMO, "--preset", "socketio-default", "--network", "behind-heroku"]
    assert main([*argv, "--set", "nat.idle_timeout=50s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    api = simlab.load_scenario(
        Path(DEMO),
        {"nat.idle_timeout": "50s"},
        preset="socketio-default",
        networks=("behind-heroku",),
    )
    assert lines == [f"{k} = {v}" for k, v in flatten(to_dict(api)).items()]


def test_load_scenario_with_a_mapping_and_presets():
    raw = {"horizon": "10m", "connections": 2, "heartbeat": {"interval": "5s"}}
    scenario = simlab.load_scenario(raw, preset="websockets-default", networks=["lte"])
    assert scenario.heartbeat.interval == 20.0  # the preset beats the mapping
    assert scenario.horizon == 600.0 and scenario.connections == 2  # the rest of it stays
    assert raw["heartbeat"] == {"interval": "5s"}  # the mapping given is not changed
    unnamed = simlab.load_scenario(preset="websockets-default", networks=["lte"])
    assert unnamed.name == "websockets-default+lte"


def test_load_scenario_problems_say_where_they_came_from():
    with pytest.raises(simlab.ScenarioError) as info:
        simlab.load_scenario(
            DEMO, {"heartbeat.interval": "10s"}, preset="websockets-default", networks=["lte"]
        )
    assert info.value.source == (
        f"{DEMO} with preset=websockets-default, network=lte, heartbeat.interval=10s"
    )
    assert info.value.problems[0].path == "detector.missed.ack_timeout"
    with pytest.raises(simlab.ScenarioError) as info:  # overrides alone: as reader.load says
        simlab.load_scenario(DEMO, {"heartbeat.jitter": 2})
    assert info.value.source == f"{DEMO} with heartbeat.jitter=2"
    with pytest.raises(simlab.ScenarioError, match="preset= / networks="):
        simlab.load_scenario()
    with pytest.raises(simlab.ScenarioError) as info:
        simlab.load_scenario(DEMO, preset="websocket-default")
    assert info.value.problems[0].path == "preset"
    assert "did you mean 'websockets-default'?" in info.value.problems[0].message


def _sweep_file(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text("horizon: 10m\nconnections: 2\n")
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\ngrid:\n  detector.timeout: [65s]\nseed: 3\n")
    return path


def test_sweep_runs_its_base_with_the_preset(tmp_path, capsys):
    path = _sweep_file(tmp_path)
    common = {"workers": 1, "progress": False}
    plain = simlab.sweep(path, tmp_path / "plain.csv", **common)
    api = simlab.sweep(path, tmp_path / "api.csv", preset="gorilla-example", **common)
    argv = ["sweep", str(path), "--out", str(tmp_path / "cli.csv"), "--quiet", "--workers", "1"]
    assert main([*argv, "--preset", "gorilla-example"]) == 0
    capsys.readouterr()
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "cli.csv").read_text()
    # gorilla-example beats every 54 s, the default every 30 s: fewer heartbeats
    assert api["heartbeats_sent"].sum() < plain["heartbeats_sent"].sum()
    meta = json.loads((tmp_path / "api.meta.json").read_text())
    assert meta["sweep_text"].endswith("# base scenario with --preset gorilla-example\n")


def test_sweep_of_a_mapping_takes_presets_and_networks(tmp_path):
    base = {"horizon": "10m", "connections": 2}
    raw = {"base": base, "grid": {"detector.timeout": ["65s"]}, "seed": 3}
    frame = simlab.sweep(
        raw,
        tmp_path / "out.csv",
        preset="gorilla-example",
        networks=["behind-alb"],
        workers=1,
        progress=False,
    )
    assert len(frame) == 1 and raw["base"] == base  # the mapping given is not changed
    same = simlab.load_scenario(
        base,
        {"detector.timeout": 65.0, "seed": int(frame.seed.iloc[0])},
        preset="gorilla-example",
        networks=["behind-alb"],
    )
    assert frame["heartbeats_sent"].iloc[0] == simlab.simulate(same).summary["heartbeats_sent"]
    with pytest.raises(simlab.ScenarioError) as info:
        simlab.sweep(raw, tmp_path / "bad.csv", networks=["ltee"], workers=1, progress=False)
    assert info.value.problems[0].path == "networks"
