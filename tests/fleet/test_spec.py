"""Tests for simlab.fleet.spec: fleet files read and checked like scenario files.

Every problem in a file at once, each with its key path, the bad value and what
is allowed (a "did you mean" for unknown keys); ``simlab storm`` exits 2 on them.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simlab.cli.main import main
from simlab.errors import ScenarioError
from simlab.fleet.spec import Fleet, from_dict, is_fleet, load, to_dict
from simlab.rules.backoff import PRESETS, Backo2, Schedule, WebsocketsIterator
from simlab.scenario.distributions import Constant, Uniform

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fleet-restart.yaml"


def problems(raw: dict) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        from_dict(raw)
    return {p.path: p.message for p in info.value.problems}


def test_the_example_loads_without_warnings_and_round_trips():
    fleet, warnings = load(EXAMPLE)
    assert warnings == []
    assert fleet.policy == PRESETS["socketio"]
    assert fleet.client.rtt == Uniform(0.02, 0.12)
    again, _ = from_dict(to_dict(fleet))
    assert again == fleet
    assert yaml.safe_load(yaml.safe_dump(to_dict(fleet))) == to_dict(fleet)


def test_an_empty_fleet_file_is_the_defaults():
    fleet, warnings = from_dict({"kind": "fleet"})
    assert fleet == Fleet() and warnings == []
    assert fleet.client.scenario().detector_side == "client"


def test_is_fleet_tells_fleet_files_from_scenarios():
    assert is_fleet({"kind": "fleet"})
    assert not is_fleet({"heartbeat": {"interval": "10s"}})
    assert not is_fleet([1, 2])


def test_every_problem_at_once_with_paths_values_and_suggestions():
    found = problems(
        {
            "kind": "fleet",
            "clients": 0,
            "horizon": "soon",
            "cliets": 5,
            "policy": {"name": "sockettio"},
            "server": {"backlog": -1, "on_full": "queue"},
            "trigger": {"kind": "blip", "down": "3s", "fractoin": 0.3},
            "client": {"heartbeat": {"interval": "ten"}},
            "resume": {"messages": None, "time": None},
        }
    )
    assert "must be an integer >= 1" in found["clients"]
    assert "'soon'" in found["horizon"]
    assert "did you mean 'clients'" in found["cliets"]
    assert "did you mean 'socketio'" in found["policy.name"]
    assert "integer >= 0" in found["server.backlog"]
    assert "refuse, drop" in found["server.on_full"]
    assert "belongs to kind: restart or rolling" in found["trigger.down"]
    assert "did you mean 'fraction'" in found["trigger.fractoin"]
    assert "'ten'" in found["client.heartbeat.interval"]
    assert "without bound" in found["resume"]


def test_the_kind_must_say_fleet():
    assert "kind: fleet" in problems({"name": "x"})["kind"]


def test_the_client_must_run_its_own_detector():
    found = problems({"kind": "fleet", "client": {"detector": {"side": "server"}}})
    assert "set client.detector.side: client" in found["client.detector.side"]


def test_scenario_rules_apply_to_the_client_section_with_its_prefix():
    found = problems(
        {
            "kind": "fleet",
            "client": {"heartbeat": {"interval": "30s"}, "detector": {"timeout": "20s"}},
        }
    )
    assert "not longer than heartbeat.interval" in found["client.detector.timeout"]


def test_impossible_combinations():
    found = problems(
        {
            "kind": "fleet",
            "trigger": {"kind": "rolling"},
            "server": {"connect_timeout": "10ms"},
            "client": {"rtt": "30s", "heartbeat": {"interval": "25s"}},
        }
    )
    assert "at least 2 servers" in found["server.servers"]
    assert "not below the heartbeat interval" in found["client.rtt"]
    with pytest.raises(ScenarioError):
        from_dict({"kind": "fleet", "bin": "20m", "horizon": "10m"})


def test_doubtful_combinations_are_warnings():
    _, warnings = from_dict(
        {
            "kind": "fleet",
            "horizon": "20s",
            "server": {"servers": 3},
            "trigger": {"kind": "rolling", "down": "30s", "interval": "10s"},
        }
    )
    paths = {w.path for w in warnings}
    assert {"trigger.interval", "horizon"} <= paths


def test_policy_presets_with_changed_fields():
    fleet, _ = from_dict({"kind": "fleet", "policy": {"name": "socketio", "max_delay": "10s"}})
    assert fleet.policy == Backo2(max_delay=10.0)
    fleet, _ = from_dict({"kind": "fleet", "policy": {"name": "exponential", "max_attempts": None}})
    assert fleet.policy.max_attempts is None and fleet.policy.cap == 30.0
    fleet, _ = from_dict(
        {"kind": "fleet", "policy": {"name": "phoenix", "steps": ["1s", 2], "then": "3s"}}
    )
    assert fleet.policy == Schedule(steps=(1.0, 2.0), then=3.0)
    fleet, _ = from_dict({"kind": "fleet", "policy": "websockets"})
    assert fleet.policy == WebsocketsIterator()


def test_policy_field_problems():
    found = problems(
        {
            "kind": "fleet",
            "policy": {
                "name": "custom",
                "base": "-1s",
                "factor": 0.5,
                "jitter": "some",
                "max_attempts": 0,
                "min_delay": 1,
            },
        }
    )
    assert "positive duration" in found["policy.base"]
    assert ">= 1.0" in found["policy.factor"]
    assert "none, full, equal, decorrelated" in found["policy.jitter"]
    assert "integer >= 1 or null" in found["policy.max_attempts"]
    assert "unknown key" in found["policy.min_delay"]
    assert "policy.steps[1]" in problems(
        {"kind": "fleet", "policy": {"name": "phoenix", "steps": [1, "x"]}}
    )


def test_set_overrides_reach_a_preset_given_by_name():
    fleet, _ = load(EXAMPLE, {"policy.max_attempts": 5, "clients": 7, "trigger.down": "1m"})
    assert fleet.policy == dataclasses.replace(PRESETS["socketio"], max_attempts=5)
    assert (fleet.clients, fleet.trigger.down) == (7, 60.0)
    fleet, _ = load(EXAMPLE, {"policy": "phoenix", "client.rtt": "10ms"})
    assert fleet.policy == PRESETS["phoenix"] and fleet.client.rtt == Constant(0.01)


def test_resume_null_means_no_replay_buffer():
    fleet, _ = from_dict({"kind": "fleet", "resume": None})
    assert fleet.resume is None
    assert from_dict(to_dict(fleet))[0] == fleet


def test_storm_command_exits_2_listing_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: fleet\nclients: -3\npolicy: phoenics\ntrigger: {kind: quake}\n")
    assert main(["storm", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "clients" in err and "did you mean 'phoenix'" in err and "trigger.kind" in err
    assert main(["storm", str(EXAMPLE), "--set", "server.backlog=lots"]) == 2
    assert "server.backlog" in capsys.readouterr().err


def test_console_script_bad_fleet_file_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: fleet\nserver: {handshake_rate: 0}\n")
    out = subprocess.run(
        [sys.executable, "-m", "simlab", "storm", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "server.handshake_rate" in out.stderr
