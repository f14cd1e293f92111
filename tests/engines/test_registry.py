"""Choosing engines, refusing honestly, and the NFD-S configuration command."""

from __future__ import annotations

import json

import pytest

import simlab
from simlab.cli.main import main, parse_delay
from simlab.engines import registry as engines
from simlab.engines.analytic import chain as analytic
from simlab.engines.analytic.theory import nfd_s_qos
from simlab.scenario.distributions import Exponential, Uniform

from .test_model import Z, mean_and_se, scenario

CHEN = "examples/chen-nfd.yaml"
DEMO = "examples/demo.yaml"


def test_auto_picks_analytic_where_exact_and_says_why():
    s = simlab.load_scenario(CHEN)
    out = engines.run(s, "auto")
    assert out["engine"] == "analytic" and "exact" in out["engine_reason"]
    demo = simlab.load_scenario(DEMO, {"connections": 2, "horizon": "10m"})
    out = engines.run(demo, "auto")
    assert out["engine"] == "fast"  # TCP, NAT, outages, stalls, crashes: all the fast engine's
    assert "link.transport: tcp" in out["engine_reason"]
    with_traffic = simlab.load_scenario(DEMO, {"connections": 2, "horizon": "10m", "app.rate": 0.1})
    assert engines.run(with_traffic, "auto")["engine"] == "fast"  # application traffic too
    both = simlab.load_scenario(
        DEMO, {"connections": 2, "horizon": "10m", "heartbeat.initiator": "both"}
    )
    out = engines.run(both, "auto")
    assert out["engine"] == "simpy" and "initiator" in out["engine_reason"]


def test_cli_engine_analytic_refuses_with_exit_2(capsys):
    assert main(["run", DEMO, "--engine", "analytic"]) == 2
    err = capsys.readouterr().err
    assert "does not cover link.transport: tcp" in err and "peer.stall" in err
    assert "Traceback" not in err


def test_cli_engine_auto_json_has_engine_and_reason(capsys):
    assert main(["run", CHEN, "--engine", "auto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "analytic"
    assert "fp_per_conn_hour" in out and "breaks" not in out  # absent, not zero


def test_same_keys_in_both_engines_for_the_same_scenario():
    s = simlab.load_scenario(CHEN, {"horizon": "20m", "connections": 2})
    a = engines.run(s, "analytic")
    m = engines.run(s, "simpy")
    assert set(a) - {"engine_reason"} <= set(m)


@pytest.mark.parametrize(
    "text, expected",
    [("exponential:20ms", Exponential(0.02)), ("uniform:10ms:50ms", Uniform(0.01, 0.05))],
)
def test_parse_delay(text, expected):
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["gamma:1s", "exponential", "uniform:1s", "lognormal:x:1"])
def test_configure_bad_delay_exits_2(text, capsys):
    args = ["configure", "--max-detection", "30s", "--min-mistake-recurrence", "30d"]
    args += ["--max-mistake-duration", "60s", "--loss", "0.01", "--delay", text]
    assert main(args) == 2
    assert "--delay" in capsys.readouterr().err


def test_configure_reproduces_the_reference_and_meets_its_bounds(capsys):
    args = ["configure", "--max-detection", "30s", "--min-mistake-recurrence", "30d"]
    args += [
        "--max-mistake-duration",
        "60s",
        "--loss",
        "0.01",
        "--delay",
        "exponential:20ms",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["interval_s"] == pytest.approx(9.9763, abs=2e-4)
    assert out["delta_s"] == pytest.approx(20.0237, abs=2e-4)
    # fed back into the analytic engine as a scenario, the bounds hold
    s = scenario(
        heartbeat={"style": "oneway", "interval": out["interval_s"]},
        detector={"kind": "nfd", "nfd": {"delta": out["delta_s"]}, "on_declare": "monitor"},
        link={"loss": 0.01, "delay": {"dist": "exponential", "mean": 0.02}},
    )
    a = analytic.run(s)
    assert 1 / a["mistake_rate_per_s"] >= 30 * 86400 * (1 - 1e-9)
    assert a["mistake_duration_mean_s"] <= 60
    assert out["interval_s"] + out["delta_s"] <= 30 + 1e-9


def test_configured_detector_meets_its_bounds_in_the_model(capsys):
    # bounds loose enough for the model to measure: T_D <= 3 s, E(T_MR) >= 20 s, E(T_M) <= 1 s
    args = ["configure", "--max-detection", "3s", "--min-mistake-recurrence", "20s"]
    args += [
        "--max-mistake-duration",
        "1s",
        "--loss",
        "0.1",
        "--delay",
        "exponential:200ms",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    eta, delta = out["interval_s"], out["delta_s"]
    s = scenario(
        horizon="20000s",
        connections=8,
        heartbeat={"style": "oneway", "interval": eta},
        detector={"kind": "nfd", "nfd": {"delta": delta}, "on_declare": "monitor"},
        link={"loss": 0.1, "delay": {"dist": "exponential", "mean": 0.2}},
        peer={"crash": {"mtbf": "2000s"}},
    )
    r = simlab.simulate(s)
    slots = r.slots
    rate, se = mean_and_se(slots.false_positives / slots.alive_s)
    assert rate - Z * se <= 1 / 20  # E(T_MR) >= 20 s, up to the noise
    qos = nfd_s_qos(eta, delta, 0.1, Exponential(0.2))
    assert abs(rate - qos.mistake_rate) < Z * se
    durations = r.records.loc[r.records.event == "trust", "value"]
    mean, se = mean_and_se(durations)
    assert mean - Z * se <= 1.0
    latency = r.records.loc[r.records.event == "detection", "value"]
    assert len(latency) > 50
    # T_D <= eta + delta, except that a heartbeat still in flight at the crash can
    # restore trust after it (random delays): the bound holds for the permanent suspicion
    assert latency.max() <= eta + delta + 1e-9


def test_sweeps_run_on_any_engine_and_refuse_uncovered_points_before_running(tmp_path):
    from simlab.sweeps.sweep import SweepError, parse_sweep, run_sweep

    base = simlab.scenario.schema.to_dict(simlab.load_scenario(CHEN))
    spec = parse_sweep(
        {"base": base, "grid": {"detector.nfd.delta": [0.2, 0.3, 0.5]}, "engine": "analytic"}
    )
    outcome = run_sweep(spec, tmp_path / "a.csv", workers=1, progress=False)
    assert outcome.failed == [] and len(outcome.rows) == 3
    # a larger margin, fewer mistakes: exact values, so strictly decreasing
    assert outcome.rows.fp_per_conn_hour.is_monotonic_decreasing
    with pytest.raises(SweepError) as info:
        parse_sweep(
            {"base": base, "grid": {"link.transport": ["datagram", "tcp"]}, "engine": "analytic"}
        )
    assert "does not cover the point" in str(info.value) and "tcp" in str(info.value)
    assert not (tmp_path / "b.csv").exists()


# -- the registry ----------------------------------------------------------------------------


def test_every_registered_engine_keeps_the_protocol():
    """Each engine's module has unsupported() and run(); its run() names itself in its figures."""
    s = simlab.load_scenario(CHEN, {"connections": 2, "horizon": "10m"})
    assert set(engines.ENGINES) == {*engines.REGISTRY, engines.AUTO}
    for name, engine in engines.REGISTRY.items():
        assert engine.name == name
        assert engine.unsupported(s) == []  # the Chen scenario is in every engine's subset
        assert engine.run(s)["engine"] == name


def test_options_reach_only_the_engines_that_take_them():
    s = simlab.load_scenario(CHEN, {"connections": 2, "horizon": "10m"})
    out = engines.run(s, "fast", progress=False)  # fast takes no progress option
    assert out["engine"] == "fast"


def test_an_unknown_engine_is_bad_input_naming_the_choices():
    with pytest.raises(simlab.ScenarioError, match="must be one of simpy, analytic, fast, auto"):
        engines.run(simlab.load_scenario(CHEN), "nope")
    with pytest.raises(simlab.ScenarioError, match="must be one of analytic, fast, simpy"):
        engines.get("auto")


def test_the_cli_sweeps_and_panel_read_the_registry(monkeypatch):
    """A new registry entry is an --engine choice, a sweep engine and a panel engine at once."""
    from simlab.checks import panel
    from simlab.cli.main import _parser
    from simlab.sweeps.sweep import parse_sweep

    extra = engines.Engine("twin", "simlab.engines.fast", "the fast engine under another name")
    monkeypatch.setitem(engines.REGISTRY, "twin", extra)
    monkeypatch.setattr(engines, "ENGINES", (*engines.ENGINES, "twin"))
    assert "twin" in panel.available_engines()
    assert _parser().parse_args(["run", CHEN, "--engine", "twin"]).engine == "twin"
    spec = parse_sweep({"base": CHEN, "engine": "twin", "grid": {"heartbeat.interval": [1, 2]}})
    assert spec.engine == "twin"
    assert engines.run(simlab.load_scenario(CHEN, {"connections": 2}), "twin")["engine"] == "fast"


# -- the work budget's estimate ----------------------------------------------------------------


def test_the_estimate_is_connections_x_horizon_over_interval_at_each_engines_speed():
    s = simlab.load_scenario(DEMO, {"connections": 10, "horizon": "6h", "app.rate": 0})
    assert engines.heartbeat_rounds(s) == 10 * 6 * 3600 / 30
    for name, engine in engines.REGISTRY.items():
        rounds = engines.heartbeat_rounds(s)
        assert engines.estimate(s, name) == pytest.approx(
            engine.run_s + rounds / engine.rounds_per_s
        )
    model, fast = engines.estimate(s, "simpy"), engines.estimate(s, "fast")
    assert fast < model / 10  # the fast engine is 10-100 times the model's speed
    more = simlab.load_scenario(DEMO, {"connections": 40, "horizon": "12h", "app.rate": 0})
    run_s = engines.REGISTRY["simpy"].run_s
    assert engines.estimate(more, "simpy") - run_s == pytest.approx(8 * (model - run_s))
    often = simlab.load_scenario(
        DEMO, {"connections": 10, "horizon": "6h", "heartbeat.interval": 10}
    )
    assert engines.estimate(often, "simpy") - run_s == pytest.approx(3 * (model - run_s))
    # the analytic engine is constant time: a century costs what an hour does
    short = simlab.load_scenario(CHEN, {"horizon": "1h"})
    long = simlab.load_scenario(CHEN, {"horizon": "36500d"})
    assert engines.estimate(short, "analytic") == engines.estimate(long, "analytic") < 1
    # auto: the engine choose() picks (analytic for Chen's scenario, the model for the demo)
    assert engines.estimate(long, "auto") == engines.estimate(long, "analytic")
    assert engines.estimate(s, "auto") == engines.estimate(s, engines.choose(s)[0])
    assert engines.estimate(long, "simpy") > 10 * engines.BUDGET_S


def test_the_estimate_of_a_fleet_is_clients_x_attempts():
    from simlab.fleet.spec import load

    fleet, _ = load("examples/fleet-restart.yaml")
    model = engines.REGISTRY["simpy"]
    expected = model.run_s + fleet.clients * engines.FLEET_ATTEMPTS / model.attempts_per_s
    assert engines.estimate(fleet) == engines.estimate(fleet, "auto") == pytest.approx(expected)
    bigger, _ = load("examples/fleet-restart.yaml", {"clients": 10 * fleet.clients})
    assert engines.estimate(bigger) > 9 * engines.estimate(fleet)
    gives_up, _ = load(
        "examples/fleet-restart.yaml", {"policy": {"name": "exponential", "max_attempts": 2}}
    )
    assert engines.estimate(gives_up) < engines.estimate(fleet) / 4


@pytest.mark.parametrize("engine", ["simpy", "fast"])
def test_the_estimate_is_within_a_factor_of_ten_of_a_real_run(engine):
    """Rough, but it tells seconds from hours: a real run, timed, against its estimate."""
    import time

    s = simlab.load_scenario(DEMO, {"connections": 20, "horizon": "6h"})
    started = time.perf_counter()
    engines.run(s, engine)
    wall = time.perf_counter() - started
    assert 0.1 < engines.estimate(s, engine) / wall < 10


def test_format_wall_reads_from_milliseconds_to_years():
    assert engines.format_wall(0.037) == "0.037s"
    assert engines.format_wall(45) == "45s"
    assert engines.format_wall(90) == "1.5m"
    assert engines.format_wall(5400) == "1.5h"
    assert engines.format_wall(3 * 86400) == "3d"
    assert engines.format_wall(3e12) == "9.51e+04 years"
