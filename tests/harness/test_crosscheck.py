"""The cross-check's statistics and refusals (the end-to-end runs are in test_harness.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
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


def test_no_events_on_either_side_is_no_evidence_not_agreement():
    c = cc.compare_rates("fp", 0, 10.0, 0, 1.0)
    assert c.no_evidence and c.p_value is None and c.harness_low == 0.0
    assert c.verdict(0.01) == "no evidence"
    assert not cc.compare_rates("fp", 0, 10.0, 1, 1.0).no_evidence
    assert cc.compare_proportions("late", 0, 1000, 0, 100).verdict(0.01) == "no evidence"
    assert cc.compare_samples("latency", [], [], 0.001).verdict(0.01) == "no evidence"
    assert cc.compare_samples("latency", [1.0] * 10, [], 0.001).verdict(0.01) == "shown"


def test_the_verdict_says_what_was_and_was_not_tested():
    rates = [cc.compare_rates(m, 10, 1.0, 10, 1.0) for m in ("fp /conn-h", "a", "b")]
    none = cc.compare_rates("breaks (nat) /conn-h", 0, 1.0, 0, 1.0)
    check = cc.CrossCheck("x", [*rates, none], 0.01, {}, {})
    assert check.agree and check.verdict == "AGREE"
    assert check.threshold == pytest.approx(0.01 / 3)  # no evidence is not a test
    assert check.summary() == (
        "agree on 3 metrics; no evidence on breaks (nat) (0 events on both sides)"
    )
    assert [r["verdict"] for r in check.rows()][-1] == "no evidence"
    text = cc.format_check(check)
    assert "no evidence on breaks (nat)" in text and "verdict: AGREE" in text
    doc = check.to_json()
    assert doc["verdict"] == "AGREE" and doc["no_evidence"] == ["breaks (nat) /conn-h"]
    assert doc["summary"] == check.summary()


def test_nothing_tested_does_not_agree():
    check = cc.CrossCheck("x", [cc.compare_rates("fp /conn-h", 0, 1.0, 0, 1.0)], 0.01, {}, {})
    assert not check.agree and check.verdict == "NO EVIDENCE"
    assert check.summary().startswith("nothing tested; no evidence on fp")
    assert "verdict: NO EVIDENCE" in cc.format_check(check)


def _result(**counts):
    summary = {"connected_hours": 1.0, "false_positives": 0}
    for key in ("breaks_crash", "breaks_nat", "breaks_tcp_timeout"):
        summary[key] = 0
    for key in ("detections_by_detector", "detections_by_reset", "detections_by_tcp_timeout"):
        summary[key] = 0
    summary.update(counts)
    records = pd.DataFrame(columns=["slot", "time", "event", "detail", "value"])
    return SimpleNamespace(summary=summary, records=records, trace=None, info={})


def test_an_expected_cause_without_events_is_reported_not_left_out():
    m, h = _result(false_positives=4), _result(false_positives=1)
    quiet = cc.compare(m, h, loss=False)
    assert [c.metric for c in quiet.comparisons] == ["false positives /conn-h"]
    check = cc.compare(m, h, loss=False, expect=("nat",))
    rows = {r["metric"]: r["verdict"] for r in check.rows()}
    assert rows == {"false positives /conn-h": "agree", "breaks (nat) /conn-h": "no evidence"}
    assert "no evidence on breaks (nat)" in check.summary()


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


# -- the command line: connections, the time scale, the JSON verdict ---------------------


def _fake_run(calls, comparisons=None):
    """A stand-in for run_crosscheck: records its arguments, returns a made-up check."""

    def run(scenario, **kwargs):
        calls.append(kwargs)
        cs = comparisons or [cc.compare_rates("fp /conn-h", 10, 1.0, 10, 1.0)]
        check = cc.CrossCheck(scenario.name, cs, kwargs["alpha"], {}, {})
        check.ran = {"backend": kwargs["backend"], "time_scale": 0.05}
        return check

    return run


def _file(tmp_path, text="connections: 16\nhorizon: 60s\n"):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path)


def test_the_scenarios_connections_are_used_unless_the_option_is_given(
    tmp_path, capsys, monkeypatch
):
    calls = []
    monkeypatch.setattr(cc, "run_crosscheck", _fake_run(calls))
    path = _file(tmp_path)
    assert main(["crosscheck", path, "--backend", "proxy", "--quiet"]) == 0
    assert calls[-1]["connections"] == 16
    assert "connections:" not in capsys.readouterr().err
    assert main(["crosscheck", path, "--backend", "proxy", "--connections", "8"]) == 0
    assert calls[-1]["connections"] == 8
    err = capsys.readouterr().err
    assert "connections: 8 (--connections; the scenario says 16)" in err.splitlines()
    assert calls[-1]["progress"] is not None  # the progress line, unless --quiet
    assert main(["crosscheck", path, "--backend", "proxy", "--quiet"]) == 0
    assert calls[-1]["progress"] is None


def test_too_many_connections_in_the_scenario_is_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cc, "run_crosscheck", _fake_run([]))
    path = _file(tmp_path, "connections: 5000\nhorizon: 60s\n")
    assert main(["crosscheck", path, "--backend", "proxy"]) == 2
    err = capsys.readouterr().err
    assert "5000" in err and "--connections" in err and "Traceback" not in err


def test_json_says_no_evidence_and_nothing_tested_is_exit_1(tmp_path, capsys, monkeypatch):
    none = [cc.compare_rates("breaks (nat) /conn-h", 0, 1.0, 0, 1.0)]
    monkeypatch.setattr(cc, "run_crosscheck", _fake_run([], none))
    assert main(["crosscheck", _file(tmp_path), "--backend", "proxy", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["verdict"] == "NO EVIDENCE" and doc[0]["agree"] is False
    assert doc[0]["comparisons"][0]["verdict"] == "no evidence"
    assert "0 events on both sides" in doc[0]["summary"]


def test_a_time_scale_that_changes_the_question_is_refused(tmp_path, capsys):
    # outages lose packets, so the 200 ms minimum RTO matters: 3 s * 0.05 = 0.15 s is under it
    path = _file(
        tmp_path,
        "horizon: 60s\nconnections: 2\nheartbeat: {interval: 3s}\n"
        "detector: {kind: timeout, timeout: 10s}\n"
        "link: {outages: {mtbf: 60s, duration: {dist: constant, value: 1s}}}\n",
    )
    code = main(["crosscheck", path, "--backend", "proxy", "--time-scale", "0.05"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--time-scale" in err and "minimum RTO" in err and "heartbeat interval" in err
    assert "--time-scale 0.0734" in err and "Traceback" not in err  # 0.22 / 3, rounded up


def test_the_nat_rounding_case_is_refused_on_netns(tmp_path, capsys):
    from simlab.harness import netns

    if netns.unavailable_reason():
        pytest.skip(netns.unavailable_reason())
    path = _file(
        tmp_path,
        "horizon: 60s\nconnections: 2\nheartbeat: {interval: 3s}\n"
        "detector: {kind: timeout, timeout: 10s}\nnat: {idle_timeout: 2s}\n",
    )
    assert main(["crosscheck", path, "--backend", "netns", "--time-scale", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "conntrack rounds to 1 s" in err and "--time-scale 0.5 " in err


def test_the_estimate_comes_first_then_progress_on_the_runs_clock():
    """A small proxy run (~3 s): the estimate before the run, then the clock as it goes."""
    s = load(
        {
            "horizon": "50s",
            "connections": 2,
            "heartbeat": {"interval": "10s"},
            "detector": {"kind": "timeout", "timeout": "25s"},
            "nat": {"idle_timeout": "30s", "on_expiry": "drop"},
        }
    )[0]
    heard = []
    check = cc.run_crosscheck(
        s,
        backend="proxy",
        announce=lambda text: heard.append(("announce", text)),
        progress=lambda now, total: heard.append(("progress", now, total)),
    )
    assert heard[0][0] == "announce" and "expected wall time" in heard[0][1]
    ticks = [h for h in heard if h[0] == "progress"]
    assert len(ticks) >= 3
    total = ticks[0][2]
    assert total == pytest.approx((50 + 10 / 2) * 0.05)  # horizon + the last slot's origin
    assert [t[1] for t in ticks] == sorted(t[1] for t in ticks)
    assert ticks[-1][1] > 0.5 * total
    assert check.ran["time_scale"] == pytest.approx(0.05)  # automatic: the default kept it
    assert check.ran["harness"]["connections"] == 2  # the scenario's own
    # a NAT the interval always beats: no break on either side is said, not hidden
    rows = {r["metric"]: r["verdict"] for r in check.rows()}
    assert rows["breaks (nat) /conn-h"] == "no evidence"
