"""The fast engine against the analytic engine (exact) and the SimPy model (both stochastic).

Fixed seeds; tolerance Z standard errors from the spread across independent slots.
Seeds differ from test to test, so one unlucky stretch of a random stream does not
sway several checks at once.
"""

from __future__ import annotations

import numpy as np
import pytest

import simlab
from simlab import analytic, engines, fast

from .test_analytic import PANEL
from .test_model import Z, mean_and_se, scenario


def slot_rates(slots):
    fp = np.array([sl.stats.false_positives / (sl.stats.connected_s / 3600) for sl in slots])
    acc = np.array([1 - sl.stats.suspect_alive_s / sl.stats.alive_s for sl in slots])
    return fp, acc


@pytest.mark.parametrize("name", list(PANEL))
def test_fast_agrees_with_the_analytic_engine(name):
    seed = 11 + list(PANEL).index(name)
    s = scenario(horizon="20000s", connections=24, seed=seed, **PANEL[name])
    a = analytic.run(s)
    out, slots = fast.simulate(s)
    fp, acc = slot_rates(slots)
    mean, se = mean_and_se(fp)
    assert abs(mean - a["fp_per_conn_hour"]) < Z * se, (mean, se, a["fp_per_conn_hour"])
    mean, se = mean_and_se(acc)
    assert abs(mean - a["query_accuracy"]) <= Z * se, (mean, se, a["query_accuracy"])
    durations = np.concatenate([sl.stats.mistake_durations for sl in slots])
    if durations.std() > 0:
        mean, se = mean_and_se(durations)
        assert abs(mean - a["mistake_duration_mean_s"]) < Z * se
    if "detection_latency_mean_s" in a:
        latency = np.concatenate([sl.stats.latencies for sl in slots])
        mean, se = mean_and_se(latency)
        assert abs(mean - a["detection_latency_mean_s"]) < Z * se
        # the hard bound also covers a crash before a connection's first round
        rule = analytic.round_rule(s)
        assert latency.max() <= max(rule.A - rule.emit, rule.B) + 1e-9


TCP_PANEL = {
    "tcp-timeout-reconnect": dict(
        detector={"timeout": "2.5s"},
        link={"transport": "tcp", "loss": 0.05},
        reconnect={"delay": 0},
    ),
    "tcp-client-pings-crash-jitter-lognormal": dict(
        heartbeat={"initiator": "client", "interval": "2s", "jitter": 0.2},
        detector={"timeout": "5s"},
        link={
            "transport": "tcp",
            "loss": 0.1,
            "delay": {"dist": "lognormal", "median": 0.05, "sigma": 0.5},
        },
        peer={"crash": {"mtbf": "300s"}},
    ),
    "tcp-nfd-monitor-crash": dict(
        detector={"kind": "nfd", "nfd": {"delta": 1.5}, "on_declare": "monitor"},
        link={"transport": "tcp", "loss": 0.1},
        peer={"crash": {"mtbf": "300s"}},
    ),
    "tcp-oneway-missed-gilbert": dict(
        detector={"kind": "missed", "missed": {"k": 2, "ack_timeout": "0.8s"}},
        link={
            "transport": "tcp",
            "loss": {
                "model": "gilbert",
                "p_gb": 0.05,
                "p_bg": 0.4,
                "loss_good": 0.01,
                "loss_bad": 0.5,
            },
        },
        reconnect={"delay": "0.5s"},
    ),
    "datagram-server-pings-nat-uniform": dict(
        heartbeat={"interval": "20s"},
        detector={"timeout": "45s"},
        link={"loss": 0.05},
        nat={"idle_timeout": {"dist": "uniform", "low": "15s", "high": "60s"}},
    ),
    "tcp-server-pings-nat-reset-crash": dict(
        heartbeat={"interval": "20s"},
        detector={"timeout": "5m"},
        link={"transport": "tcp", "loss": 0.02},
        nat={"idle_timeout": "60s", "on_expiry": "reset"},
        peer={"crash": {"mtbf": "1h"}},
    ),
    "datagram-client-pings-nat-both-reset": dict(
        heartbeat={"initiator": "client", "interval": "25s", "jitter": 0.3},
        detector={"timeout": "60s"},
        link={"loss": 0.1},
        nat={"idle_timeout": "40s", "refresh": "both", "on_expiry": "reset"},
    ),
    "datagram-oneway-exponential-crash": dict(
        heartbeat={"style": "oneway", "interval": "1s"},
        detector={"timeout": "3s"},
        link={"loss": 0.1, "delay": {"dist": "exponential", "mean": 0.2}},
        peer={"crash": {"mtbf": "200s"}},
    ),
}


def _compare(a_values, b_values):
    (ma, sa), (mb, sb) = mean_and_se(a_values), mean_and_se(b_values)
    return abs(ma - mb) <= Z * np.hypot(sa, sb), (ma, sa, mb, sb)


@pytest.mark.parametrize("name", list(TCP_PANEL))
def test_fast_agrees_with_the_model(name):
    seed = 31 + list(TCP_PANEL).index(name)
    nat = "nat" in TCP_PANEL[name]
    s = scenario(
        horizon="6h" if nat else "10000s",
        connections=24 if nat else 16,
        seed=seed,
        **TCP_PANEL[name],
    )
    out, slots = fast.simulate(s)
    model = simlab.simulate(s)
    if nat:  # NAT breaks per connected hour, slot by slot
        breaks = np.array([sl.stats.breaks["nat"] / sl.stats.connected_s for sl in slots])
        ok, info = _compare(breaks * 3600, model.slots.breaks_nat / model.slots.connected_s * 3600)
        assert ok, info
    fp, acc = slot_rates(slots)
    ok, info = _compare(fp, model.slots.false_positives / (model.slots.connected_s / 3600))
    assert ok, info
    ok, info = _compare(acc, 1 - model.slots.suspect_alive_s / model.slots.alive_s)
    assert ok, info
    latency = np.concatenate([sl.stats.latencies for sl in slots])
    model_latency = model.records.loc[model.records.event == "detection", "value"].to_numpy()
    if len(model_latency) > 20:
        ok, info = _compare(latency, model_latency)
        assert ok, info
        assert latency.max() <= model_latency.max() * 1.5 + 1  # same support, roughly
    per_hour = out["overhead_msgs_per_conn_hour"], model.summary["overhead_msgs_per_conn_hour"]
    assert per_hour[0] == pytest.approx(per_hour[1], rel=0.02)


def test_same_seed_same_results_and_different_seed_different():
    s = scenario(horizon="2h", connections=6, seed=5, **TCP_PANEL["tcp-nfd-monitor-crash"])
    a, b = fast.run(s), fast.run(s)
    drop = {"wall_s"}
    assert {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }
    c = fast.run(
        scenario(horizon="2h", connections=6, seed=6, **TCP_PANEL["tcp-nfd-monitor-crash"])
    )
    assert c["detections"] != a["detections"] or c["false_positives"] != a["false_positives"]


def test_refuses_what_it_does_not_cover_and_auto_uses_it_where_analytic_cannot():
    demo = simlab.load_scenario("examples/demo.yaml")
    missing = " | ".join(fast.unsupported(demo))
    for feature in ("link.outages", "peer.stall"):
        assert feature in missing
    with pytest.raises(simlab.ScenarioError):
        fast.run(demo)
    s = scenario(horizon="10m", connections=2, **TCP_PANEL["tcp-timeout-reconnect"])
    out = engines.run(s, "auto")
    assert out["engine"] == "fast" and "link.transport: tcp" in out["engine_reason"]


def test_keys_are_the_models_minus_what_it_cannot_count():
    s = scenario(horizon="10m", connections=2, **TCP_PANEL["tcp-timeout-reconnect"])
    out = fast.run(s)
    model = simlab.simulate(s).summary
    assert {k for k in out if not k.endswith("_se")} <= set(model)
    assert not set(fast.NOT_PRODUCED + fast.NOT_PRODUCED_TCP) & set(out)
    assert out["query_accuracy_se"] >= 0


def test_datagram_bytes_are_the_models_bookkeeping():
    # every datagram heartbeat, lost or not, is one packet: frame plus IPv4 and UDP headers
    s = scenario(horizon="20m", connections=4, **PANEL[next(iter(PANEL))])
    assert s.link.transport == "datagram"
    out, model = fast.run(s), simlab.simulate(s).summary
    packet = s.heartbeat.frame_bytes + 28
    assert out["overhead_bytes_per_conn_hour"] == pytest.approx(
        out["overhead_msgs_per_conn_hour"] * packet, rel=1e-12
    )
    assert model["overhead_bytes_per_conn_hour"] == pytest.approx(
        model["overhead_msgs_per_conn_hour"] * packet, rel=1e-12
    )


# -- regressions from the engines' review ----------------------------------------------------------

REVIEW = {
    # the detector watches the peer's pings (not pongs to its own)
    "watches-peer-pings": dict(
        heartbeat={"interval": "1s"},
        detector={"timeout": "2.5s", "side": "client", "on_declare": "monitor"},
        link={"uplink": {"loss": 0.2}, "downlink": {"loss": 0.05}},
    ),
    # a crash during a monitor-mode suspicion: the break is counted with its detection
    "crash-during-suspicion": dict(
        heartbeat={"style": "oneway", "initiator": "client", "interval": "1s"},
        detector={"timeout": "2.5s", "on_declare": "monitor"},
        link={"loss": 0.3},
        peer={"crash": {"mtbf": "60s"}},
    ),
    # the peer's socket fails (few retries): it stops pinging and answering
    "peer-gives-up": dict(
        heartbeat={"interval": "2s"},
        detector={"timeout": "30s", "side": "client"},
        link={"transport": "tcp", "loss": 0.25, "tcp": {"max_retries": 2}},
    ),
    # a heartbeat arriving exactly at an NFD freshness point (delta - d = one interval)
    "nfd-tie": dict(
        heartbeat={"style": "oneway", "initiator": "client", "interval": "1s"},
        detector={"kind": "nfd", "nfd": {"delta": "1.05s"}, "on_declare": "monitor"},
        link={"loss": 0.1},
    ),
    # a ping due at the very instant of the declaration is not sent
    "ping-at-declaration": dict(
        heartbeat={"initiator": "client", "interval": "1s"},
        detector={"kind": "missed", "missed": {"k": 3}},
        link={"loss": 0.25, "delay": "100ms"},
        reconnect={"delay": "2s"},
    ),
}


@pytest.mark.parametrize("name", list(REVIEW))
def test_review_cases_agree_with_the_model(name):
    s = scenario(
        horizon="2000s", connections=20, seed=71 + list(REVIEW).index(name), **REVIEW[name]
    )
    out, slots = fast.simulate(s)
    model = simlab.simulate(s)
    fp, _ = slot_rates(slots)
    ok, info = _compare(fp, model.slots.false_positives / (model.slots.connected_s / 3600))
    assert ok, info
    msgs = np.array([sl.stats.heartbeats / sl.stats.connected_s for sl in slots])
    ok, info = _compare(msgs, model.slots.heartbeats_sent / model.slots.connected_s)
    assert ok, info
    for r in (out, model.summary):  # every break is detected or still undetected at the horizon
        assert r["breaks"] == r["detections"] + r["undetected_breaks"]


def test_a_gilbert_chain_that_cannot_move_stays_in_its_state():
    from simlab.scenario import Loss

    stuck = Loss(model="gilbert", p_gb=0.0, p_bg=0.5, loss_good=0.0, loss_bad=1.0)
    keys = fast._keys(1, np.arange(3), 0)
    assert not fast.gilbert_states(stuck, keys, 5000).any()
    assert not fast.gilbert_states(stuck, keys, 25000).any()


def test_gilbert_states_have_the_chains_runs_and_extend_their_prefix():
    from simlab.scenario import Loss

    loss = Loss(model="gilbert", p_gb=0.05, p_bg=0.4, loss_good=0.0, loss_bad=1.0)
    keys = fast._keys(3, np.arange(40), 0)
    states = fast.gilbert_states(loss, keys, 20000)
    assert (fast.gilbert_states(loss, keys, 5000) == states[:, :5000]).all()
    bad = states.mean()
    assert abs(bad - 0.05 / 0.45) < 0.01, bad
    # leaving bad: 0.4 per packet; leaving good: 0.05
    left_bad = (states[:, :-1] & ~states[:, 1:]).sum() / states[:, :-1].sum()
    left_good = (~states[:, :-1] & states[:, 1:]).sum() / (~states[:, :-1]).sum()
    assert abs(left_bad - 0.4) < 0.02 and abs(left_good - 0.05) < 0.005, (left_bad, left_good)


def test_a_slots_results_do_not_depend_on_how_many_slots_run_or_their_windows():
    s = scenario(horizon="3000s", connections=8, seed=9, **TCP_PANEL["tcp-oneway-missed-gilbert"])
    many = fast.FastRun(s).run()
    few = fast.FastRun(
        scenario(horizon="3000s", connections=3, seed=9, **TCP_PANEL["tcp-oneway-missed-gilbert"])
    ).run()
    for a, b in zip(many[:3], few, strict=True):
        assert vars(a.stats) == vars(b.stats)
    assert sum(sl.stats.connections for sl in many) > 2 * len(many)  # several batches ran
    # a first window of one round forces every connection through the regrowing path
    run = fast.FastRun(s)
    run._first_window = lambda slots, numbers, t0, last: np.ones(len(t0), dtype=np.int64)
    for a, b in zip(many, run.run(), strict=True):
        assert vars(a.stats) == vars(b.stats)


def test_a_slots_next_connections_computed_ahead_change_nothing():
    """Bernoulli losses and crashes: a slot's next connections are computed with its current
    one (speculatively); the results are the same as one connection at a time, whatever the
    number of slots or the windows."""
    kw = TCP_PANEL["tcp-client-pings-crash-jitter-lognormal"]
    s = scenario(horizon="3000s", connections=8, seed=13, **kw)
    ahead = fast.FastRun(s)
    assert ahead.speculate
    many = ahead.run()
    assert sum(sl.stats.connections for sl in many) > 2 * len(many)  # several reconnections
    one_by_one = fast.FastRun(s)
    one_by_one.speculate = False
    few = fast.FastRun(scenario(horizon="3000s", connections=3, seed=13, **kw))
    short = fast.FastRun(s)
    short._first_window = lambda slots, numbers, t0, last: np.ones(len(t0), dtype=np.int64)
    for other in (one_by_one.run(), few.run(), short.run()):
        for a, b in zip(many, other, strict=False):  # (few: the first three)
            assert vars(a.stats) == vars(b.stats)


def test_the_rto_with_constant_delays_has_the_filters_closed_form():
    tcp = simlab.load_scenario("examples/demo.yaml").link.tcp
    rng = np.random.default_rng(4)
    once = rng.random((5, 300)) < 0.9
    rtt = np.full((5, 300), 0.083)
    general, closed = fast._Rto(rtt, once, tcp), fast._Rto(None, once, tcp, 0.083)
    r, c = np.nonzero(~once)
    sparse = fast._Rto(None, None, tcp, 0.083, sparse=r * 300 + c)
    sparse.width = 300
    rows, cols = np.indices(once.shape)
    assert np.allclose(general.at(rows, cols), closed.at(rows, cols), rtol=1e-12)
    assert np.allclose(general.at(rows, cols), sparse.at(rows, cols), rtol=1e-12)
    # and the filter agrees with the model's estimator, sample by sample
    from simlab.network import RtoEstimator

    r = rng.lognormal(-3, 0.5, 200)
    est, seen = RtoEstimator(tcp), []
    for x in r:
        seen.append(est.rto)
        est.sample(x)
    rto = fast._Rto(r[None, :], np.ones((1, 200), bool), tcp)
    assert np.allclose(rto.at(np.zeros(200, int), np.arange(200)), seen, rtol=1e-12)
