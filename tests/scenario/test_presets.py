"""Tests for simlab.scenario.presets and its CLI: every preset loads and runs, the order of composition,
bad names, ``simlab presets``, and presets on a sweep's base.

Runs are tiny (two connections, minutes of simulated time; hours only where the preset's
interval is hours long, which is still a handful of rounds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlab.cli.main import main
from simlab.engines.runner import simulate
from simlab.errors import ScenarioError
from simlab.scenario import fielddata, presets
from simlab.scenario.presets import layered, load_layered
from simlab.sweeps.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "examples" / "demo.yaml")
HEARTBEATS = list(fielddata.keepalive_defaults()["name"])
NETWORKS = list(fielddata.networks()["name"])


def tiny(interval: float = 30.0) -> dict[str, object]:
    """Two connections, long enough for a few heartbeat rounds."""
    return {"connections": 2, "horizon": max(600.0, 4 * interval)}


def test_one_preset_per_csv_row():
    assert list(presets.heartbeat_presets()) == HEARTBEATS
    assert list(presets.network_presets()) == NETWORKS
    for preset in [*presets.heartbeat_presets().values(), *presets.network_presets().values()]:
        assert preset.source and preset.confidence in ("H", "M", "L")
        assert all(isinstance(key, str) and "." in key for key, _ in preset.settings)


@pytest.mark.parametrize("name", HEARTBEATS)
def test_every_heartbeat_preset_loads_as_its_row_says_and_runs(name):
    row = fielddata.keepalive_default(name)
    scenario, warnings = load_layered(None, preset=name, overrides=tiny(row["interval_s"]))
    assert warnings == []
    hb, det = scenario.heartbeat, scenario.detector
    assert (hb.style, hb.initiator, hb.interval) == (
        row["style"],
        row["initiator"],
        row["interval_s"],
    )
    assert (det.kind, det.side, det.liveness) == (
        row["detector"],
        row["detector_side"],
        row["liveness"],
    )
    if det.kind == "timeout":
        assert det.timeout == row["timeout_s"]
    if det.kind == "missed":
        assert (det.missed.k, scenario.ack_timeout) == (1, row["timeout_s"])
    summary = simulate(scenario).summary
    assert summary["heartbeats_sent"] > 0
    assert summary["connected_hours"] == pytest.approx(2 * scenario.horizon / 3600)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_preset_loads_and_runs(name):
    scenario, warnings = load_layered(None, networks=[name], overrides=tiny())
    assert warnings == []
    row = fielddata.network(name)
    if row["middlebox"]:
        box = fielddata.middlebox(row["middlebox"])
        assert scenario.nat.idle_timeout.mean == box["idle_timeout_s"]  # from middleboxes.csv
    if row["nat_idle_timeout"] == "none":
        assert scenario.nat.idle_timeout is None
    if row["delay"]:
        assert scenario.link.down.delay.median == fielddata.parse_dist(row["delay"])["median"]
    assert simulate(scenario).summary["connected_hours"] > 0


def test_a_network_middlebox_acts_on_the_heartbeat():
    """gorilla's 54 s pings keep an ALB's 60 s idle timer alive; 90 s pings do not."""
    runs = {}
    for interval in ("54s", "90s"):
        sets = {"connections": 2, "horizon": "30m", "heartbeat.interval": interval}
        sets["detector.timeout"] = "120s"
        scenario, _ = load_layered(
            None, preset="gorilla-example", networks=["behind-alb"], overrides=sets
        )
        runs[interval] = simulate(scenario).summary["breaks_nat"]
    assert runs["54s"] == 0 and runs["90s"] > 0


def test_middlebox_semantics_map_to_the_nearest_scenario_values():
    alb = dict(presets.network_preset("behind-alb").settings)
    assert alb == {"nat.idle_timeout": 60.0, "nat.refresh": "both", "nat.on_expiry": "reset"}
    notes = " ".join(presets.network_preset("behind-alb").approximation)
    assert "expiry (close)" in notes and "refresh (any-data)" in notes
    azure = dict(presets.network_preset("behind-azure-lb").settings)
    assert (azure["nat.idle_timeout"], azure["nat.on_expiry"]) == (240.0, "drop")
    assert presets.network_preset("behind-azure-lb").approximation[-1].startswith("simlab puts")


def test_inexpressible_semantics_are_said():
    discord = presets.heartbeat_preset("discord-gateway")
    assert any("uniform(0,interval)" in note for note in discord.approximation)
    for name in ("websockets-default", "signalr-default", "linux-tcp-keepalive"):
        assert presets.heartbeat_preset(name).approximation, name
    akka = dict(presets.heartbeat_preset("akka-cluster").settings)
    assert akka["detector.phi"] == {
        "threshold": 8,
        "window": 1000,
        "min_std": "100ms",
        "acceptable_pause": "3s",
    }


# -- composition: defaults < file < --preset < --network (in order) < --set ---------------


def test_preset_beats_the_file_and_keeps_the_rest_of_it():
    plain, _ = load_layered(DEMO)
    scenario, _ = load_layered(DEMO, preset="websockets-default")
    assert plain.heartbeat.interval == 30.0 and scenario.heartbeat.interval == 20.0
    assert scenario.detector.kind == "missed"
    assert scenario.peer == plain.peer and scenario.link == plain.link  # untouched keys stay
    assert scenario.name == plain.name


def test_network_owns_the_link_and_clears_the_files_direction_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "link: {delay: 5ms, downlink: {delay: 300ms}, outages: {mtbf: 1h, duration: 5s}}\n"
    )
    scenario, _ = load_layered(path, networks=["datacenter"])
    assert scenario.link.down.delay == scenario.link.up.delay  # the file's downlink is gone
    assert scenario.link.down.delay.median == 0.0005
    assert scenario.link.outages is None and scenario.nat.idle_timeout is None


def test_networks_apply_in_order_and_a_middlebox_only_network_keeps_the_link():
    lte_alb, _ = load_layered(None, networks=["lte", "behind-alb"])
    alb_lte, _ = load_layered(None, networks=["behind-alb", "lte"])
    lte, _ = load_layered(None, networks=["lte"])
    assert lte_alb.link == lte.link  # behind-alb leaves the link alone
    assert lte_alb.nat.idle_timeout.mean == 60.0  # ... and replaces the carrier NAT
    assert alb_lte.nat == lte.nat  # the other way round, lte's NAT wins


def test_set_beats_presets_and_networks():
    scenario, _ = load_layered(
        DEMO,
        preset="gorilla-example",
        networks=["lte", "behind-alb"],
        overrides={"nat.idle_timeout": "30s", "link.loss": 0.05, "heartbeat.interval": "20s"},
    )
    assert scenario.nat.idle_timeout.mean == 30.0
    assert scenario.link.up.loss.model == "bernoulli" and scenario.link.up.loss.p == 0.05
    assert scenario.heartbeat.interval == 20.0
    assert scenario.detector.timeout == 60.0  # from the preset: --set changed only the interval


def test_a_key_set_again_moves_to_the_end():
    keys = layered("websockets-default", ["lte"], {"detector.missed.k": 3, "link.loss": 0.01})
    order = list(keys)
    assert order.index("detector.missed") < order.index("detector.missed.k")
    assert order[-1] == "link.loss" and keys["link.loss"] == 0.01
    scenario, _ = load_layered(
        None, preset="websockets-default", overrides={"detector.missed.k": 3}
    )
    assert (scenario.detector.missed.k, scenario.ack_timeout) == (3, 20.0)


def test_presets_are_not_changed_by_use():
    before = presets.heartbeat_preset("websockets-default").settings
    load_layered(None, preset="websockets-default", overrides={"detector.missed.k": 4})
    assert presets.heartbeat_preset("websockets-default").settings == before


def test_without_a_file_the_run_is_named_after_its_presets():
    scenario, _ = load_layered(None, preset="websockets-default", networks=["lte", "behind-alb"])
    assert scenario.name == "websockets-default+lte+behind-alb"
    named, _ = load_layered(None, preset="mqtt-60s", overrides={"name": "mine"})
    assert named.name == "mine"


def test_nothing_to_load_is_an_error():
    with pytest.raises(ScenarioError, match="give a scenario file, or --preset / --network"):
        load_layered(None)


def test_a_problem_caused_by_a_preset_names_the_layers():
    with pytest.raises(ScenarioError) as info:
        load_layered(DEMO, preset="websockets-default", overrides={"heartbeat.interval": "10s"})
    assert info.value.source == (
        f"{DEMO} with --preset websockets-default --set heartbeat.interval=10s"
    )
    assert info.value.problems[0].path == "detector.missed.ack_timeout"


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "option", "hint"),
    [
        (["run", "--preset", "websocket-default"], "--preset", "websockets-default"),
        (["run", DEMO, "--network", "behind-abl"], "--network", "behind-alb"),
        (["check", "--network", "lte", "--network", "ltee"], "--network", "lte"),
        (
            ["sweep", "x.yaml", "--out", "x.csv", "--preset", "gorila-example"],
            "--preset",
            "gorilla-example",
        ),
    ],
)
def test_unknown_names_exit_2_with_the_allowed_list(capsys, argv, option, hint):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    assert f"- {option}: '" in err
    assert f"did you mean '{hint}'?" in err
    assert "(allowed: " in err


def test_run_without_a_file_or_preset_exits_2(capsys):
    assert main(["run"]) == 2
    assert "give a scenario file, or --preset / --network" in capsys.readouterr().err


def test_run_with_presets_and_no_file(capsys):
    argv = ["run", "--preset", "websockets-default", "--network", "lte", "--network", "behind-alb"]
    assert main([*argv, "--connections", "2", "--set", "horizon=10m", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"] == "websockets-default+lte+behind-alb"
    assert data["connections"] == 2 and data["heartbeats_sent"] > 0


def test_check_shows_the_layered_settings(capsys):
    argv = ["check", DEMO, "--preset", "socketio-default", "--network", "behind-heroku"]
    assert main([*argv, "--set", "nat.idle_timeout=50s"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "heartbeat.interval = 25.0" in lines
    assert "detector.missed.ack_timeout = 20.0" in lines
    assert "nat.idle_timeout.value = 50.0" in lines
    assert "nat.on_expiry = reset" in lines
    assert "peer.crash.mtbf = 86400.0" in lines  # from the file
    assert f"ok: {DEMO} with --preset socketio-default --network behind-heroku" in err


def test_presets_command_lists_everything_with_sources(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in HEARTBEATS + NETWORKS:
        assert f"\n  {name}  [" in out, name
    assert out.count("    source: ") == len(HEARTBEATS) + len(NETWORKS)
    assert "heartbeat presets (--preset NAME)" in out and "network presets (--network NAME" in out
    assert "      detector.missed={k: 1, ack_timeout: 20s, overlap: false}" in out
    assert "      nat.idle_timeout=60s" in out
    assert "approximation: the first beat comes after uniform(0,interval)" in out


def test_presets_command_filters_and_speaks_json(capsys):
    assert main(["presets", "behind-alb", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["name"] == "behind-alb" and item["kind"] == "network"
    assert item["settings"]["nat.idle_timeout"] == 60.0
    assert item["confidence"] == "H" and "aws-alb" in item["source"]
    assert main(["presets", "lte", "behind-alb"]) == 0
    out = capsys.readouterr().out
    assert "heartbeat presets" not in out and "  lte  [L]" in out
    assert main(["presets", "ltee"]) == 2
    assert "did you mean 'lte'?" in capsys.readouterr().err


def test_sweep_applies_presets_to_its_base(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("horizon: 10m\nconnections: 2\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: base.yaml\ngrid:\n  heartbeat.interval: [20s, 30s]\nseed: 1\n")
    spec = load_sweep(sweep, preset="gorilla-example", networks=["behind-alb"])
    assert spec.base["detector"]["timeout"] == 60.0 and spec.base["nat"]["idle_timeout"] == 60.0
    assert spec.base["horizon"] == "10m"  # the base file's own keys stay
    out = tmp_path / "out.csv"
    argv = ["sweep", str(sweep), "--out", str(out), "--quiet", "--workers", "1"]
    assert main([*argv, "--preset", "gorilla-example", "--network", "behind-alb"]) == 0
    capsys.readouterr()
    assert len(out.read_text().splitlines()) == 3  # header + two points
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert "--preset gorilla-example --network behind-alb" in meta["sweep_text"]
