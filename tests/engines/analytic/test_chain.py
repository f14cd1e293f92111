"""The analytic engine: equal to the closed forms where they exist, and to the SimPy model elsewhere.

Against the model: fixed seeds, tolerance Z standard errors from the spread across
independent connection slots (or independent durations).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simlab
from simlab.engines.analytic import chain as analytic
from simlab.engines.analytic.theory import k_missed_reset_rounds, nfd_s_qos, timeout_crash_latency
from simlab.scenario.distributions import Constant, Exponential, Lognormal

from ..test_model import Z, mean_and_se, scenario

GILBERT = {"model": "gilbert", "p_gb": 0.05, "p_bg": 0.4, "loss_good": 0.01, "loss_bad": 0.6}


# -- equal to the closed forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    "delay, dist",
    [
        ({"dist": "exponential", "mean": 0.2}, Exponential(0.2)),
        ({"dist": "lognormal", "median": 0.1, "sigma": 1.0}, Lognormal(0.1, 1.0)),
        (0.4, Constant(0.4)),
    ],
)
def test_nfd_s_monitor_is_chen_toueg_aguilera(delay, dist):
    s = scenario(
        heartbeat={"style": "oneway", "interval": 2.0},
        detector={"kind": "nfd", "nfd": {"delta": 1.5}, "on_declare": "monitor"},
        link={"loss": 0.2, "delay": delay},
    )
    out = analytic.run(s)
    qos = nfd_s_qos(2.0, 1.5, 0.2, dist)
    assert out["mistake_rate_per_s"] == pytest.approx(qos.mistake_rate, rel=1e-9)
    assert out["mistake_duration_mean_s"] == pytest.approx(qos.mistake_duration_mean, rel=1e-9)
    assert out["query_accuracy"] == pytest.approx(qos.query_accuracy, rel=1e-9)
    assert out["fp_per_conn_hour"] == pytest.approx(3600 * qos.mistake_rate, rel=1e-9)


def test_timeout_monitor_is_the_k_missed_closed_form_and_its_crash_latency():
    # the reference's worked example: T 1 s, d 50 ms, timeout 3.5 s, loss 0.1
    s = scenario(
        heartbeat={"style": "oneway", "interval": 1.0},
        detector={"timeout": 3.5, "on_declare": "monitor"},
        link={"loss": 0.1, "delay": 0.05},
        peer={"crash": {"mtbf": "1000d"}},
    )
    out = analytic.run(s)
    assert out["mistake_rate_per_s"] == pytest.approx(9.0e-4, rel=1e-12)
    assert out["mistake_duration_mean_s"] == pytest.approx(0.61111111111, rel=1e-9)
    assert out["query_accuracy"] == pytest.approx(0.99945, rel=1e-12)
    crash = timeout_crash_latency(1.0, 0.1, 0.05, 3.5)
    assert out["detection_latency_mean_s"] == pytest.approx(crash.mean, rel=1e-12)
    assert out["detection_latency_max_s"] == pytest.approx(3.55, rel=1e-12)
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert out[f"detection_latency_{key}_s"] == pytest.approx(crash.quantile(q), abs=1e-9)


@pytest.mark.parametrize("k, p", [(1, 0.05), (2, 0.1), (3, 0.2)])
def test_missed_reset_is_the_markov_chain_of_consecutive_misses(k, p):
    s = scenario(
        detector={"kind": "missed", "missed": {"k": k, "ack_timeout": 0.5}},
        link={"loss": p},
        reconnect={"delay": "0.25s"},
    )
    out = analytic.run(s)
    rounds = k_missed_reset_rounds(1 - (1 - p) ** 2, k)
    # a connection lasts its N rounds plus ack_timeout after the last ping
    # (linear algebra against a closed form: agreement to rounding, not to a statistical tolerance)
    assert out["fp_per_conn_hour"] == pytest.approx(3600 / (rounds * 1.0 + 0.5), rel=1e-9)
    assert out["mistake_duration_mean_s"] == 0.25
    assert out["query_accuracy"] == pytest.approx(1 - 0.25 / (rounds + 0.5 + 0.25), rel=1e-9)


def test_gilbert_with_equal_states_is_bernoulli():
    same = {"model": "gilbert", "p_gb": 0.3, "p_bg": 0.2, "loss_good": 0.1, "loss_bad": 0.1}
    for kw in (
        {"detector": {"timeout": 2.5}, "reconnect": {"delay": "0.5s"}},
        {
            "detector": {
                "kind": "missed",
                "missed": {"k": 2, "ack_timeout": 0.5},
                "on_declare": "monitor",
            }
        },
    ):
        a = analytic.run(scenario(link={"loss": same}, **kw))
        b = analytic.run(scenario(link={"loss": 0.1}, **kw))
        for key in ("fp_per_conn_hour", "mistake_duration_mean_s", "query_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-10)


def test_overhead_in_monitor_mode():
    s = scenario(detector={"timeout": 2.5, "on_declare": "monitor"}, link={"loss": 0.1})
    # a ping every second, and a pong for every ping that arrives
    out = analytic.run(s)
    assert out["overhead_msgs_per_conn_hour"] == pytest.approx(3600 * 1.9)
    assert out["overhead_bytes_per_conn_hour"] == pytest.approx(3600 * 1.9 * (6 + 28))
    model = simlab.simulate(
        scenario(
            horizon="4h",
            connections=4,
            detector={"timeout": 2.5, "on_declare": "monitor"},
            link={"loss": 0.1},
        )
    )
    # pongs are binomial (each ping arrives with probability 0.9): the bytes' standard error,
    # plus one round's bytes per connection for the ping that falls on the horizon
    hours, pings = 16, 4 * 4 * 3600
    se = (6 + 28) * math.sqrt(pings * 0.9 * 0.1) / hours
    edge = 2 * (6 + 28) * 4 / hours
    assert (
        abs(model["overhead_bytes_per_conn_hour"] - out["overhead_bytes_per_conn_hour"])
        < Z * se + edge
    )


# -- equal to the SimPy model where there is no closed form --------------------------------------

PANEL = {
    "oneway-timeout-monitor-gilbert": dict(
        heartbeat={"style": "oneway", "interval": 1.0},
        detector={"timeout": 2.5, "on_declare": "monitor"},
        link={"loss": GILBERT, "delay": 0.05},
    ),
    "pingpong-missed-reset-gilbert": dict(
        detector={"kind": "missed", "missed": {"k": 2, "ack_timeout": 0.5}},
        link={"loss": GILBERT},
        reconnect={"delay": "0.25s"},
    ),
    "pingpong-timeout-reset-gilbert": dict(
        detector={"timeout": 2.5}, link={"loss": GILBERT}, reconnect={"delay": "0.5s"}
    ),
    "client-pings-timeout-reset-bernoulli": dict(
        heartbeat={"initiator": "client"},
        detector={"timeout": 2.5},
        link={"uplink": {"loss": 0.15}, "downlink": {"loss": 0.05, "delay": "120ms"}},
        reconnect={"delay": 0},
    ),
    "pingpong-nfd-monitor-crash-mixed": dict(
        detector={"kind": "nfd", "nfd": {"delta": 1.2}, "on_declare": "monitor"},
        link={"loss": GILBERT, "uplink": {"loss": 0.05}},
        peer={"crash": {"mtbf": "1200s"}},
    ),
}


@pytest.mark.parametrize("name", list(PANEL))
def test_analytic_agrees_with_the_model(name):
    s = scenario(horizon="20000s", connections=8, **PANEL[name])
    assert analytic.unsupported(s) == []
    a = analytic.run(s)
    r = simlab.simulate(s)
    slots = r.slots
    fp, se = mean_and_se(slots.false_positives / (slots.connected_s / 3600))
    assert abs(fp - a["fp_per_conn_hour"]) < Z * se, (fp, se, a["fp_per_conn_hour"])
    acc, se = mean_and_se(1 - slots.suspect_alive_s / slots.alive_s)
    # (with no reconnect delay a false positive costs no time: accuracy is exactly 1 in both)
    assert abs(acc - a["query_accuracy"]) <= Z * se, (acc, se, a["query_accuracy"])
    durations = r.records.loc[r.records.event == "trust", "value"]
    if len(durations):
        mean, se = mean_and_se(durations)
        assert abs(mean - a["mistake_duration_mean_s"]) < Z * se
    if "detection_latency_mean_s" in a:
        latency = r.records.loc[r.records.event == "detection", "value"]
        mean, se = mean_and_se(latency)
        assert abs(mean - a["detection_latency_mean_s"]) < Z * se
        # the stationary maximum, or the opening's (a crash before the first round)
        rule = analytic.round_rule(s)
        assert latency.max() <= max(a["detection_latency_max_s"], rule.B) + 1e-9


# -- refusals ---------------------------------------------------------------------------------------


def test_refuses_each_unsupported_feature_by_name():
    s = simlab.load_scenario("examples/demo.yaml")
    missing = analytic.unsupported(s)
    joined = " | ".join(missing)
    for feature in (
        "link.transport: tcp",
        "link.outages",
        "peer.stall",
        "peer.crash",
    ):
        assert feature in joined
    with pytest.raises(simlab.ScenarioError) as info:
        analytic.run(s)
    assert len(info.value.problems) == len(missing)


@pytest.mark.parametrize(
    "kw, feature",
    [
        ({"detector": {"kind": "phi"}}, "detector.kind: phi"),
        (
            {"heartbeat": {"jitter": 0.1}, "detector": {"kind": "nfd"}},
            "jitter > 0 with detector.kind",
        ),
        ({"heartbeat": {"initiator": "both"}}, "initiator: both"),
        ({"link": {"delay": {"dist": "exponential", "mean": 0.05}}}, "random delays"),
        ({"detector": {"timeout": 2.0}}, "ordering tie"),
        ({"detector": {"kind": "missed", "missed": {"ack_timeout": 0.05}}}, "after ack_timeout"),
        ({"app": {"rate": 1.0}, "detector": {"timeout": 2.5, "liveness": "any"}}, "liveness: any"),
    ],
)
def test_refuses_with_a_reason(kw, feature):
    s = scenario(**kw)
    assert any(feature in m for m in analytic.unsupported(s)), analytic.unsupported(s)


def test_analytic_keys_are_a_subset_of_the_models():
    s = scenario(detector={"timeout": 2.5, "on_declare": "monitor"}, peer={"crash": {"mtbf": "1h"}})
    a = analytic.run(s)
    model = simlab.simulate(scenario(horizon="60s", connections=1)).summary
    assert set(a) <= set(model)
    assert not any(isinstance(v, np.generic) for v in a.values())
    assert not any(isinstance(v, float) and math.isnan(v) for v in a.values())
    # no loss: no mistakes, so no mistake duration, and the monitor is always right
    assert a["mistake_duration_mean_s"] is None and a["query_accuracy"] == 1.0


def test_crashes_must_be_rare_against_the_interval_and_the_max_covers_the_opening():
    frequent = scenario(
        detector={"timeout": 2.5, "on_declare": "monitor"}, peer={"crash": {"mtbf": "60s"}}
    )
    assert any("peer.crash.mtbf" in m for m in analytic.unsupported(frequent))
    s = scenario(
        detector={
            "kind": "missed",
            "missed": {"k": 2, "ack_timeout": 0.45},
            "on_declare": "monitor",
        },
        peer={"crash": {"mtbf": "2000s"}},
    )
    rule = analytic.round_rule(s)
    assert analytic.run(s)["detection_latency_max_s"] == pytest.approx(
        max(rule.A - rule.emit, rule.B)
    )


def test_the_detector_watching_the_peers_pings_agrees_with_the_model():
    s = scenario(
        horizon="20000s",
        connections=8,
        seed=61,
        detector={"timeout": "2.5s", "side": "client", "on_declare": "monitor"},
        link={"uplink": {"loss": 0.2}, "downlink": {"loss": 0.05}},
    )
    a = analytic.run(s)
    slots = simlab.simulate(s).slots
    fp, se = mean_and_se(slots.false_positives / (slots.connected_s / 3600))
    assert abs(fp - a["fp_per_conn_hour"]) < Z * se
    # the client watches the server's pings, one packet per round: 0.95 * 0.05^2 per round
    assert a["mistake_rate_per_s"] == pytest.approx(0.95 * 0.05**2, rel=1e-9)


# -- the NAT ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "heartbeat, loss",
    [
        ({"initiator": "server"}, {"uplink": {"loss": 0.1}, "downlink": {"loss": 0.05}}),
        ({"initiator": "client", "style": "oneway"}, {"loss": 0.12}),
    ],
)
def test_nat_expiry_agrees_with_the_model(heartbeat, loss):
    s = scenario(
        horizon="20000s",
        connections=8,
        seed=91,
        heartbeat={"interval": "10s", **heartbeat},
        detector={"timeout": "25s"},
        link=loss,
        nat={"idle_timeout": "20s"},
    )
    a = analytic.run(s)
    assert a["nat_survives"] is False and "fp_per_conn_hour" not in a  # absent, not wrong
    rec = simlab.simulate(s).records
    opened = rec[rec.event == "open"].set_index(["slot", "connection"]).time
    broke = (
        rec[(rec.event == "break") & (rec.detail == "nat")].set_index(["slot", "connection"]).time
    )
    life = (broke - opened.loc[broke.index]).to_numpy()
    mean, se = mean_and_se(life)
    assert abs(mean - a["nat_mean_time_to_expiry_s"]) < Z * se


def test_a_nat_that_survives_changes_nothing_and_auto_knows_when_it_does_not():
    from simlab.engines import registry as engines

    calm = scenario(
        heartbeat={"interval": "10s"}, detector={"timeout": "25s"}, nat={"idle_timeout": "25s"}
    )
    out = analytic.run(calm)
    assert out["nat_survives"] is True and out["fp_per_conn_hour"] == 0.0
    assert engines.choose(calm)[0] == "analytic"
    lossy = scenario(
        heartbeat={"interval": "10s"},
        detector={"timeout": "25s"},
        nat={"idle_timeout": "25s"},
        link={"loss": 0.01},
    )
    assert engines.choose(lossy)[0] == "fast"
    unbounded = scenario(nat={"idle_timeout": {"dist": "exponential", "mean": "25s"}})
    assert any("unbounded" in m for m in analytic.unsupported(unbounded))


# -- jittered heartbeats: the timeout detector's evidence is a renewal process --------------------


@pytest.mark.parametrize(
    "mode, heartbeat, link",
    [
        ("monitor", {"jitter": 0.4}, {"loss": 0.15}),
        ("reconnect", {"jitter": 0.3}, {"uplink": {"loss": 0.1}, "downlink": {"loss": 0.2}}),
        ("reconnect", {"style": "oneway", "initiator": "client", "jitter": 0.5}, {"loss": 0.2}),
    ],
)
def test_jittered_timeout_detector_agrees_with_the_model(mode, heartbeat, link):
    s = scenario(
        horizon="20000s",
        connections=8,
        seed=23,
        heartbeat=heartbeat,
        detector={"timeout": "2.2s", "on_declare": mode},
        link=link,
    )
    out = analytic.run(s)
    slots = simlab.simulate(s).slots
    fp, se = mean_and_se(slots.false_positives / (slots.connected_s / 3600))
    assert abs(fp - out["fp_per_conn_hour"]) < Z * se
    # without the jitter the rate is a different number: the check can tell
    plain = analytic.run(
        scenario(heartbeat={**heartbeat, "jitter": 0.0}, detector={"timeout": "2.2s"}, link=link)
    )
    assert abs(fp - plain["fp_per_conn_hour"]) > Z * se


def test_jittered_nat_figures_come_with_the_detectors():
    s = scenario(
        heartbeat={"interval": "10s", "jitter": 0.3},
        detector={"timeout": "25s"},
        link={"loss": 0.1},
        nat={"idle_timeout": "18s"},
    )
    out = analytic.run(s)
    assert out["nat_survives"] is False and out["engine"] == "analytic"
    assert analytic.unsupported(
        scenario(heartbeat={"jitter": 0.3}, detector={"kind": "missed"})
    ) == ["heartbeat.jitter > 0 with detector.kind: missed (analytic: timeout)"]
