"""The cross-check's statistics and refusals (the end-to-end runs are in test_harness.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.cli.main import main
from simlab.harness import crosscheck as cc
from simlab.scenario.reader import load


def test_equal_poisson_rates_agree_and_a_tenfold_difference_does_not():
    same = cc.compare_rates("fp", 400, 100.0, 20, 5.0)
    assert same.p_value > 0.5
    assert same.model == pytest.approx(4.0) and same.harness == pytest.approx(4.0)
    assert same.model_low < 4.0 < same.model_high
    far = cc.compare_rates("fp", 400, 100.0, 200, 5.0)
    assert far.p_value < 1e-6


def test_no_events_on_either_side_agree():
    c = cc.compare_rates("fp", 0, 10.0, 0, 1.0)
    assert c.p_value == 1.0 and c.harness_low == 0.0


def test_quantiles_within_the_resolution_agree_and_beyond_it_do_not():
    model = np.full(1000, 2.5)  # a timeout detector's latency: one value
    harness = 2.5 + np.random.default_rng(1).uniform(0, 0.004, 60)
    assert cc.quantile_test(model, harness, resolution=0.005) == 1.0
    assert cc.quantile_test(model, harness + 0.02, resolution=0.005) < 1e-6
    assert cc.quantile_test(model, harness - 0.02, resolution=0.005) < 1e-6


def test_quantile_test_on_equal_continuous_distributions_rarely_rejects():
    rng = np.random.default_rng(2)
    ps = [
        cc.quantile_test(rng.exponential(1, 2000), rng.exponential(1, 80), 0.0) for _ in range(200)
    ]
    # Bonferroni over six one-sided tests: the rejection rate at 1% is at most 1%
    assert np.mean(np.array(ps) < 0.01) <= 0.03


def test_few_latencies_are_shown_not_tested():
    c = cc.compare_samples("latency", [1.0] * 100, [1.0] * 3, 0.001)
    assert c.p_value is None and c.agrees(0.01) is None


def test_proportions():
    same = cc.compare_proportions("late", 100, 1000, 10, 100)
    assert same.p_value > 0.5
    assert cc.compare_proportions("late", 100, 1000, 40, 100).p_value < 1e-6


def test_bonferroni_threshold_and_verdict():
    good = cc.compare_rates("a", 10, 1.0, 10, 1.0)
    bad = cc.compare_rates("b", 1000, 1.0, 10, 1.0)
    check = cc.CrossCheck("x", [good, bad], 0.01, {}, {})
    assert check.threshold == pytest.approx(0.005)
    assert not check.agree
    assert [r["verdict"] for r in check.rows()] == ["agree", "DISAGREE"]
    assert "DISAGREE" in cc.format_check(check)


def _scenario(**sections):
    raw = {"horizon": "60s", "connections": 2, **sections}
    return load(raw)[0]


def test_refusals_name_every_unsupported_feature_at_once():
    s = _scenario(
        heartbeat={"style": "oneway", "initiator": "client"},
        detector={"on_declare": "monitor"},
        link={"transport": "datagram", "loss": {"model": "bernoulli", "p": 0.1}},
    )
    keys = {p.path for p in cc.harness_refusals(s, "proxy", "detector")}
    assert {"link.transport", "heartbeat.style", "detector.on_declare", "--backend"} <= keys


def test_proxy_refuses_loss_and_points_to_netns():
    s = _scenario(link={"loss": {"model": "bernoulli", "p": 0.01}})
    msgs = [p.message for p in cc.harness_refusals(s, "proxy", "detector")]
    assert any("netns" in m for m in msgs)


def test_native_policy_needs_the_missed_detector_it_maps_to():
    s = _scenario(detector={"kind": "timeout", "timeout": "40s"})
    problems = cc.harness_refusals(s, "proxy", "websockets-native")
    assert [p.path for p in problems] == ["detector"]
    ok = _scenario(detector={"kind": "missed", "missed": {"k": 1, "ack_timeout": "20s"}})
    assert cc.harness_refusals(ok, "proxy", "websockets-native") == []


def test_cli_refuses_with_exit_2_and_no_traceback(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("horizon: 60s\nlink: {transport: datagram}\n")
    assert main(["crosscheck", str(path), "--backend", "proxy"]) == 2
    err = capsys.readouterr().err
    assert "link.transport" in err and "Traceback" not in err


def test_cli_bad_options_all_reported(capsys):
    code = main(["crosscheck", "--time-scale", "-1", "--connections", "0", "--alpha", "2"])
    assert code == 2
    err = capsys.readouterr().err
    for option in ("--time-scale", "--connections", "--alpha", "scenario"):
        assert option in err
