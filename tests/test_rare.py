"""Rare false positives by importance sampling: unbiased against exact values, honest about budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest

import simlab
from simlab import analytic, fast, rare
from simlab.cli import main

from .test_model import Z, mean_and_se


def rare_scenario(loss, detector, seed=1, **extra):
    raw = {
        "name": "rare",
        "horizon": "1d",
        "connections": 10,
        "seed": seed,
        "heartbeat": {"interval": "30s"},
        "detector": {"on_declare": "monitor", **detector},
        "link": {"transport": "datagram", "loss": loss, "delay": "40ms"},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return simlab.load_scenario(raw)


CASES = {
    "missed-k3-1e-6": (0.005, {"kind": "missed", "missed": {"k": 3, "ack_timeout": "10s"}}),
    "missed-k3-1e-9": (0.0005, {"kind": "missed", "missed": {"k": 3, "ack_timeout": "10s"}}),
    "missed-k2-common": (0.05, {"kind": "missed", "missed": {"k": 2, "ack_timeout": "10s"}}),
    "timeout-65s": (0.01, {"kind": "timeout", "timeout": "65s"}),
    "nfd-35s": (0.005, {"kind": "nfd", "nfd": {"delta": "35s"}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_estimate_agrees_with_the_exact_rate(name):
    loss, detector = CASES[name]
    s = rare_scenario(loss, detector, seed=100 + list(CASES).index(name))
    exact = analytic.run(s)["mistake_rate_per_s"]
    r = rare.estimate(s, rel_error=0.05, max_wall=30)
    assert not r["rare_event_budget_exhausted"]
    assert r["rare_event_rel_half_width"] <= 0.05
    assert abs(r["mistake_rate_per_s"] - exact) < Z * r["mistake_rate_per_s_se"]
    assert r["rare_event_effective_sample_size"] > 100


def test_estimate_agrees_with_brute_force_on_random_delays_and_jitter():
    # nothing exact covers jitter with random delays: check against the fast engine's brute force
    s = rare_scenario(
        0.05,
        {"kind": "timeout", "timeout": "2.5s"},
        seed=7,
        heartbeat={"interval": "1s", "jitter": 0.2, "style": "oneway"},
        link={"delay": {"dist": "exponential", "mean": 0.2}},
    )
    s = simlab.load_scenario(
        {**simlab.scenario.to_dict(s), "horizon": "20000s", "connections": 16},
    )
    r = rare.estimate(s, rel_error=0.02, max_wall=30)
    _, slots = fast.simulate(s)
    brute, se = mean_and_se([sl.stats.false_positives / sl.stats.alive_s for sl in slots])
    assert abs(r["mistake_rate_per_s"] - brute) < Z * np.hypot(se, r["mistake_rate_per_s_se"])


def test_budget_exhaustion_is_reported_not_hidden():
    s = rare_scenario(0.0005, CASES["missed-k3-1e-9"][1])
    r = rare.estimate(s, rel_error=0.001, max_wall=0.0)
    assert r["rare_event_budget_exhausted"] is True
    assert r["rare_event_rel_half_width"] > 0.001
    assert r["fp_per_conn_hour_ci_low"] <= r["fp_per_conn_hour"] <= r["fp_per_conn_hour_ci_high"]


@pytest.mark.parametrize(
    "extra, feature",
    [
        ({"link": {"transport": "tcp"}}, "link.transport: tcp"),
        (
            {"link": {"loss": {"model": "gilbert", "p_gb": 0.01, "p_bg": 0.5, "loss_bad": 0.5}}},
            "gilbert",
        ),
        ({"peer": {"crash": {"mtbf": "1d"}}}, "peer.crash"),
    ],
)
def test_refuses_what_its_windows_cannot_represent(extra, feature):
    s = rare_scenario(0.005, CASES["missed-k3-1e-6"][1], **extra)
    assert any(feature in m for m in rare.unsupported(s))
    with pytest.raises(simlab.ScenarioError):
        rare.estimate(s, 0.1)


def test_cli_rel_error(capsys, tmp_path):
    path = tmp_path / "rare.yaml"
    path.write_text(
        "heartbeat: {interval: 30s}\n"
        "detector: {kind: missed, missed: {k: 3, ack_timeout: 10s}, on_declare: monitor}\n"
        "link: {transport: datagram, loss: 0.005, delay: 40ms}\n"
    )
    assert main(["run", str(path), "--engine", "fast", "--rel-error", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "fast" and "importance sampling" in out["rare_event_method"]
    assert out["rare_event_rel_half_width"] <= 0.1
    assert main(["run", str(path), "--rel-error", "0.1"]) == 2  # the simpy engine has no such mode
    assert "fast engine" in capsys.readouterr().err
    assert main(["run", str(path), "--engine", "fast", "--rel-error", "2"]) == 2


def test_the_detector_watching_the_peers_pings_is_one_packet_per_round():
    s = rare_scenario(0.01, {"kind": "timeout", "timeout": "65s", "side": "client"})
    exact = analytic.run(s)["mistake_rate_per_s"]
    r = rare.estimate(s, rel_error=0.05)
    assert abs(r["mistake_rate_per_s"] - exact) < Z * r["mistake_rate_per_s_se"]


@pytest.mark.parametrize(
    "detector, delay, reason",
    [
        (
            {"kind": "timeout", "timeout": "60.05s", "on_declare": "reconnect"},
            "40ms",
            "fewer failed rounds",
        ),
        (
            {"kind": "timeout", "timeout": "30.05s", "on_declare": "reconnect"},
            "40ms",
            "before a heartbeat",
        ),
        (
            {"kind": "missed", "missed": {"k": 2, "ack_timeout": "60ms"}},
            "40ms",
            "after ack_timeout",
        ),
    ],
)
def test_refuses_cases_where_the_stationary_rate_is_not_the_answer(detector, delay, reason):
    s = rare_scenario(0.01, detector, link={"delay": delay})
    assert any(reason in m for m in rare.unsupported(s)), rare.unsupported(s)
