"""The SimPy model held to independent results: the failure-detector literature, NAT and TCP facts.

Statistical checks use fixed seeds and a tolerance of Z standard errors, the
standard error estimated from the spread across independent connection slots
(or across independent durations), never a hand-picked slack.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simlab
from simlab.engines.analytic.theory import k_missed_reset_rounds, nfd_s_qos, timeout_crash_latency
from simlab.scenario.distributions import Constant, Exponential, Lognormal

Z = 4.0  # standard errors: a correct model fails a single check about once in 16,000 runs


def scenario(**sections):
    """A scenario mapping with the defaults these tests share, updated by sections."""
    base = {
        "name": "test",
        "horizon": "1h",
        "connections": 10,
        "seed": 1,
        "heartbeat": {"style": "pingpong", "initiator": "server", "interval": "1s"},
        "detector": {"kind": "timeout", "timeout": "2.5s"},
        "link": {"transport": "datagram", "loss": 0.0, "delay": "50ms"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return simlab.load_scenario(base)


def mean_and_se(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return a.mean(), a.std(ddof=1) / math.sqrt(len(a))


# -- 1. Chen, Toueg, Aguilera 2002: NFD-S over a lossy datagram link -------------------------

NFD_CASES = [
    # eta, delta, p_L, delay (scenario spelling), delay (theory object)
    (1.0, 0.3, 0.1, {"dist": "exponential", "mean": 0.2}, Exponential(0.2)),
    (1.0, 0.5, 0.05, {"dist": "lognormal", "median": 0.1, "sigma": 1.0}, Lognormal(0.1, 1.0)),
    (2.0, 1.5, 0.2, {"dist": "constant", "value": 0.4}, Constant(0.4)),
]


@pytest.mark.parametrize("eta, delta, p_loss, delay, dist", NFD_CASES)
def test_nfd_s_matches_chen_toueg_aguilera(eta, delta, p_loss, delay, dist):
    s = scenario(
        horizon=f"{15000 * eta}s",
        connections=12,
        heartbeat={"style": "oneway", "interval": eta},
        detector={"kind": "nfd", "nfd": {"delta": delta}, "on_declare": "monitor"},
        link={"loss": p_loss, "delay": delay},
    )
    result = simlab.simulate(s)
    theory = nfd_s_qos(eta, delta, p_loss, dist)
    per_slot = result.slots
    rate, rate_se = mean_and_se(per_slot.false_positives / per_slot.alive_s)
    assert abs(rate - theory.mistake_rate) < Z * rate_se, (rate, rate_se, theory)
    accuracy, acc_se = mean_and_se(1 - per_slot.suspect_alive_s / per_slot.alive_s)
    assert abs(accuracy - theory.query_accuracy) < Z * acc_se, (accuracy, acc_se, theory)
    durations = result.records.loc[result.records.event == "trust", "value"]
    duration, duration_se = mean_and_se(durations)
    assert abs(duration - theory.mistake_duration_mean) < Z * duration_se
    assert result["mistake_duration_mean_s"] == pytest.approx(duration)
    assert result["breaks"] == 0 and result["detections"] == 0


# -- 2. k consecutive misses, counter reset by the reconnect --------------------------------


@pytest.mark.parametrize("k, p_each_way", [(2, 0.1), (3, 0.2)])
def test_k_missed_rounds_between_false_declarations(k, p_each_way):
    interval, ack = 1.0, 0.5
    s = scenario(
        horizon="20000s",
        connections=8,
        detector={"kind": "missed", "missed": {"k": k, "ack_timeout": ack}},
        link={"loss": p_each_way},
        reconnect={"delay": "0.25s"},
    )
    rec = simlab.simulate(s).records
    opened = rec[rec.event == "open"].set_index(["slot", "connection"]).time
    fp = rec[rec.event == "false_positive"].set_index(["slot", "connection"]).time
    # the declaration comes ack_timeout after the k-th missed ping, before the next is sent
    rounds = (fp - opened.loc[fp.index] - ack) / interval
    assert np.allclose(rounds, np.round(rounds), atol=1e-9)
    q = 1 - (1 - p_each_way) ** 2
    expected = k_missed_reset_rounds(q, k)
    mean, se = mean_and_se(rounds)
    assert len(rounds) > 1000
    assert abs(mean - expected) < Z * se, (mean, se, expected)


# -- 3. Crash detection latency of a timeout detector ----------------------------------------


@pytest.mark.parametrize("p_loss", [0.1, 0.01])
def test_crash_detection_latency(p_loss):
    period, d, timeout = 1.0, 0.05, 3.5
    s = scenario(
        horizon="60000s",
        connections=4,
        heartbeat={"style": "oneway", "interval": period},
        detector={"timeout": timeout},
        link={"loss": p_loss, "delay": d},
        peer={"crash": {"mtbf": "200s"}},
        reconnect={"delay": 0},
    )
    result = simlab.simulate(s)
    latencies = result.records.loc[result.records.event == "detection", "value"]
    assert len(latencies) > 800
    assert latencies.max() <= timeout + d + 1e-9  # T_D <= timeout + d, always
    theory = timeout_crash_latency(period, p_loss, d, timeout)
    mean, se = mean_and_se(latencies)
    assert abs(mean - theory.mean) < Z * se, (mean, se, theory.mean)
    if p_loss <= 0.01:  # the approximation, for rare losses
        approx = timeout + d - period / 2 - period * p_loss / (1 - p_loss)
        assert abs(mean - approx) < Z * se
    assert result["breaks_crash"] == result["detections"] + result["undetected_breaks"]


# -- 4. NAT idle timeouts ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "datagram"])
@pytest.mark.parametrize("initiator", ["server", "client"])
def test_interval_below_nat_timeout_never_breaks(transport, initiator):
    s = scenario(
        horizon="4h",
        heartbeat={"initiator": initiator, "interval": "50s"},
        detector={"timeout": "120s"},
        link={"transport": transport, "loss": 0.0},
        nat={"idle_timeout": "60s", "refresh": "outbound"},
    )
    result = simlab.simulate(s)
    assert result["breaks_nat"] == 0 and result["false_positives"] == 0


def test_interval_above_nat_timeout_breaks_every_connection_at_last_refresh_plus_timeout():
    idle = 60.0
    s = scenario(
        horizon="3h",
        heartbeat={"initiator": "client", "interval": "50s", "jitter": 0.5},
        detector={"timeout": "120s"},
        link={"loss": 0.0},
        nat={"idle_timeout": idle},
    )
    result = simlab.simulate(s, trace=True)
    rec, trace = result.records, result.trace
    breaks = rec[rec.event == "break"]
    assert set(breaks.detail) == {"nat"}
    opened = rec[rec.event == "open"]
    assert len(breaks) >= len(opened) - s.connections  # all but the last of each slot, at least
    sends = trace[(trace.event == "send") & (trace.src == "client")]
    for row in breaks.itertuples():
        mine = sends[(sends.slot == row.slot) & (sends.connection == row.connection)]
        start = opened[(opened.slot == row.slot) & (opened.connection == row.connection)].time
        last = max([start.iloc[0], *mine.time[mine.time <= row.time]])
        assert row.time == pytest.approx(last + idle, abs=1e-9)


def test_server_pings_over_tcp_keep_an_outbound_only_nat_alive_through_acks():
    """Over TCP the client's ACK of a server ping is outbound traffic; over datagrams nothing is."""
    common = {
        "horizon": "2h",
        "heartbeat": {"style": "oneway", "initiator": "server", "interval": "30s"},
        "detector": {"timeout": "65s"},
        "nat": {"idle_timeout": "60s", "refresh": "outbound"},
    }
    tcp = simlab.simulate(scenario(**common, link={"transport": "tcp"}))
    udp = simlab.simulate(scenario(**common, link={"transport": "datagram"}))
    assert tcp["breaks_nat"] == 0
    assert udp["breaks_nat"] >= 10 * udp["connections"]  # every connection, a minute after opening


def test_nat_reset_is_detected_by_the_reset():
    s = scenario(
        horizon="2h",
        heartbeat={"initiator": "server", "interval": "90s"},
        detector={"timeout": "200s"},
        link={"transport": "tcp"},
        nat={"idle_timeout": "60s", "on_expiry": "reset"},
    )
    result = simlab.simulate(s)
    assert result["breaks_nat"] > 0
    assert result["detections_by_reset"] == result["detections"] > 0
    # the server's next ping (at most one interval after the expiry) meets the RST at once
    assert result["detection_latency_max_s"] <= 90 - 60 + 0.1 + 1e-9  # ping to the NAT, RST back


def test_nat_timeout_distribution_is_drawn_per_connection():
    s = scenario(
        horizon="1h",
        connections=200,
        heartbeat={"initiator": "client", "interval": "60s"},
        detector={"timeout": "200s"},
        nat={"idle_timeout": {"dist": "uniform", "low": "30s", "high": "90s"}},
        reconnect={"delay": "1h"},  # one connection per slot
    )
    result = simlab.simulate(s)
    # a mapping survives the first ping at 60 s iff its timeout exceeds 60 s: half of them
    broken = result["breaks_nat"]
    se = math.sqrt(200 * 0.25)
    assert abs(broken - 100) < Z * se


# -- 5. TCP against datagrams ------------------------------------------------------------------


def test_tcp_turns_loss_into_delay_and_far_fewer_false_positives():
    common = {
        "horizon": "30000s",
        "connections": 10,
        "detector": {"timeout": "2.5s"},
        "reconnect": {"delay": 0},
    }
    udp = simlab.simulate(scenario(**common, link={"transport": "datagram", "loss": 0.02}))
    tcp = simlab.simulate(scenario(**common, link={"transport": "tcp", "loss": 0.02}))
    # datagrams: two rounds in a row failing (q ~ 4%) is a false positive, ~1.5e-3 per round
    assert udp["fp_per_conn_hour_ci_low"] > 20 * tcp["fp_per_conn_hour_ci_high"]
    # each transmission is lost with p: p / (1 - p) retransmissions per segment
    retrans, segments, p = tcp["tcp_retransmissions"], tcp["heartbeats_sent"], 0.02
    expected = segments * p / (1 - p)
    assert abs(retrans - expected) < Z * math.sqrt(expected)


def test_tcp_pong_delays_follow_the_rto_ladder():
    p = 0.05
    s = scenario(
        horizon="20000s",
        connections=4,
        detector={"timeout": "10s"},
        link={"transport": "tcp", "loss": p, "delay": "50ms"},
    )
    trace = simlab.simulate(s, trace=True).trace

    # a segment held behind a late one (head-of-line blocking) is delivered in the same instant
    # as that one: skip rounds whose ping or pong was held, their delay is not on the ladder
    def unheld(event):
        rows = trace[(trace.event == event) & (trace.kind == "pong")]
        held = rows.time.diff().eq(0) & rows.slot.diff().eq(0) & rows.connection.diff().eq(0)
        return rows[~held].set_index(["slot", "connection", "seq"])

    received, replied = unheld("receive"), unheld("send")
    rounds = received.index.intersection(replied.index)
    rtts = received.loc[rounds].query("seq > 1").value
    # constant delay: SRTT 0.1 s, RTTVAR decays, so RTO = SRTT + 200 ms (Linux floor) = 0.3 s;
    # each retransmission waits twice the previous one: extra delay 0, 0.3, 0.9, 2.1, ...
    ladder = np.array([0.3 * (2**n - 1) for n in range(6)])
    sums = np.unique(np.add.outer(ladder, ladder).ravel())  # the ping's and the pong's ladders
    extra = rtts.to_numpy() - 0.1
    assert np.abs(extra[:, None] - sums[None, :]).min(axis=1).max() < 1e-9
    n = len(extra)
    one = np.mean(np.isclose(extra, 0.3))  # one segment lost exactly once, the other not at all
    expected = 2 * p * (1 - p) ** 2
    assert abs(one - expected) < Z * math.sqrt(expected * (1 - expected) / n)
    two = np.mean(np.isclose(extra, 0.9))  # one segment lost twice in a row
    expected2 = 2 * p**2 * (1 - p) ** 2
    assert abs(two - expected2) < Z * math.sqrt(expected2 * (1 - expected2) / n)


def test_long_outage_makes_tcp_give_up():
    s = scenario(
        horizon="6h",
        connections=4,
        detector={"timeout": "3000s"},  # slower than TCP on purpose
        heartbeat={"interval": "30s"},
        link={
            "transport": "tcp",
            "outages": {"mtbf": "1h", "duration": "2000s"},
            "tcp": {"max_retries": 5},
        },
    )
    result = simlab.simulate(s)
    assert result["breaks_tcp_timeout"] > 0
    assert result["detections_by_tcp_timeout"] > 0
    assert result["false_positives"] == 0


# -- other behaviour -------------------------------------------------------------------------------


def test_stall_longer_than_the_slack_is_a_false_positive_then_the_pongs_catch_up():
    s = scenario(
        horizon="20000s",
        connections=4,
        detector={"timeout": "5s", "on_declare": "monitor"},
        peer={"stall": {"mtbf": "600s", "duration": "10s"}},
    )
    result = simlab.simulate(s)
    stalls = 20000 / 610 * 4
    assert abs(result["false_positives"] - stalls) < Z * math.sqrt(stalls)
    # the stalled peer answers the queued pings when it resumes: the mistake ends then
    assert result["breaks"] == 0
    assert 4 < result["mistake_duration_mean_s"] < 6.2


def test_app_traffic_counts_only_with_liveness_any():
    # a link outage of 100 s stops heartbeats and app messages alike
    def run(rate, liveness, **extra):
        return simlab.simulate(
            scenario(
                horizon="4h",
                heartbeat={"interval": "30s"},
                detector={"timeout": "65s", "liveness": liveness},
                app={"rate": rate},
                **extra,
            )
        )

    outages = {"link": {"outages": {"mtbf": "20m", "duration": "100s"}}}
    assert run(1.0, "any", **outages)["false_positives"] > 0

    # the client watches the server's pings (Engine.IO style); half of them are lost, but the
    # server's app messages (1/s) arrive too, and count as signs of life only with liveness any
    def watch(liveness):
        return simlab.simulate(
            scenario(
                horizon="4h",
                heartbeat={"interval": "30s"},
                detector={"timeout": "65s", "liveness": liveness, "side": "client"},
                link={"downlink": {"loss": 0.5}},
                app={"rate": 1.0},
            )
        )

    assert watch("any")["false_positives"] == 0
    assert watch("heartbeats")["false_positives"] > 50  # two pings in a row lost: 1 in 4 rounds


def test_app_messages_into_a_broken_connection_are_blackholed():
    s = scenario(
        horizon="2h",
        heartbeat={"interval": "30s"},
        detector={"timeout": "90s"},
        peer={"crash": {"mtbf": "30m"}},
        app={"rate": 0.5},
    )
    result = simlab.simulate(s)
    # from the crash to its detection the detector side keeps sending at 0.5/s
    expected = 0.5 * result["detection_latency_mean_s"] * result["detections"]
    assert result["app_msgs_blackholed"] == pytest.approx(expected, rel=0.25)


def test_overhead_counts_frames_headers_and_acks():
    def run(interval):
        s = scenario(
            horizon="1h",
            connections=1,
            heartbeat={"interval": interval, "frame_bytes": 6},
            detector={"timeout": "25s"},
            link={"transport": "tcp"},
        )
        return simlab.simulate(s)

    result = run("8s")
    rounds = 3600 // 8 - 1  # the last ping falls exactly on the horizon
    assert result["heartbeats_sent"] == 2 * rounds
    # ping 6+52, pong 6+52, the pong's pure ACK 52
    assert result["overhead_bytes_per_conn_hour"] == pytest.approx(rounds * (58 + 58 + 52))
    # the client's radio: pings 8 s apart stay within the 10 s tail: one wakeup, at the opening
    assert result["wakeups_per_conn_hour"] == 1
    # 12 s apart, every ping wakes it
    assert run("12s")["wakeups_per_conn_hour"] == 1 + (3600 // 12 - 1)


# -- 6. Reproducibility ----------------------------------------------------------------------------


def test_same_seed_same_results_and_slots_independent_of_connection_count():
    kw = {
        "horizon": "15m",
        "link": {"transport": "tcp", "loss": 0.05, "delay": {"dist": "exponential", "mean": 0.05}},
        "peer": {"crash": {"mtbf": "1h"}, "stall": {"mtbf": "20m", "duration": "3s"}},
        "nat": {"idle_timeout": {"dist": "uniform", "low": "1s", "high": "20s"}},
        "app": {"rate": 0.1},
    }
    a = simlab.simulate(scenario(connections=100, **kw))
    b = simlab.simulate(scenario(connections=100, **kw))
    c = simlab.simulate(scenario(connections=101, **kw))
    drop = {"wall_s"}
    assert {k: v for k, v in a.summary.items() if k not in drop} == {
        k: v for k, v in b.summary.items() if k not in drop
    }
    first = c.records[c.records.slot < 100].reset_index(drop=True)
    assert first.equals(a.records)
    other = simlab.simulate(scenario(connections=100, seed=2, **kw))
    assert not other.records.equals(a.records)


# Figures and a digest of every record and trace row, pinned from the model before its hot path
# was rewritten for speed (simlab.engines.model: light events, blocks of draws, the common cases
# written out): a change to the order of events or of random draws shows here, bit for bit.
PINNED = {
    "tcp-nat-stall-outage-crash": (
        dict(
            horizon="2h",
            connections=3,
            seed=3,
            heartbeat={"interval": "20s"},
            detector={"timeout": "45s"},
            link={
                "transport": "tcp",
                "loss": 0.05,
                "delay": "40ms",
                "outages": {"mtbf": "40m", "duration": "30s"},
            },
            nat={"idle_timeout": "2m", "on_expiry": "drop"},
            peer={"crash": {"mtbf": "1h"}, "stall": {"mtbf": "20m", "duration": "5s"}},
        ),
        (6, 2, 1, 2148, 31635.727184331157, 26.297250499246047, 1.0),
        ("bfa419abdc6fc5dd", 16, 3373),
    ),
    "datagram-gilbert-missed-monitor-jitter": (
        dict(
            horizon="1h",
            connections=3,
            seed=4,
            heartbeat={"interval": "2s", "jitter": 0.2},
            detector={"kind": "missed", "missed": {"k": 2}, "on_declare": "monitor"},
            link={
                "loss": {
                    "model": "gilbert",
                    "p_gb": 0.05,
                    "p_bg": 0.4,
                    "loss_good": 0.01,
                    "loss_bad": 0.6,
                }
            },
        ),
        (3, 122, 0, 10421, 118104.66666666667, None, 1.685701389129803),
        ("959b60cc8d35651f", 250, 15822),
    ),
    "nat-probe-app-reset": (
        dict(
            horizon="6h",
            connections=2,
            seed=5,
            heartbeat={"interval": "30s", "policy": {"kind": "nat-probe", "ceiling": "20m"}},
            detector={"timeout": "60s"},
            link={"transport": "tcp", "loss": 0.01, "delay": "40ms"},
            nat={"idle_timeout": "4m", "on_expiry": "reset"},
            app={"rate": 0.01, "direction": "up"},
        ),
        (9, 0, 7, 393, 2760.44729470053, 40.48179967881976, None),
        ("c14e90066355e06a", 259, 1475),
    ),
}
PINNED_KEYS = (
    "connections_opened",
    "false_positives",
    "detections",
    "heartbeats_sent",
    "overhead_bytes_per_conn_hour",
    "detection_latency_mean_s",
    "mistake_duration_mean_s",
)


@pytest.mark.parametrize("name", list(PINNED))
def test_figures_records_and_trace_are_pinned_bit_for_bit(name):
    import hashlib

    sections, figures, (digest, records, trace) = PINNED[name]
    r = simlab.simulate(scenario(**sections), trace=True)
    assert tuple(r.summary[k] for k in PINNED_KEYS) == figures  # exact, not approx
    assert (len(r.records), len(r.trace)) == (records, trace)
    rows = repr(r.records.values.tolist()) + repr(r.trace.values.tolist())
    assert hashlib.sha256(rows.encode()).hexdigest()[:16] == digest


def test_a_long_outage_is_one_false_positive_and_reconnects_when_it_ends():
    from simlab.engines.model import SlotModel

    s = scenario(
        horizon="12h",
        connections=3,
        heartbeat={"interval": "10s"},
        detector={"timeout": "30s"},
        link={"outages": {"mtbf": "1h", "duration": "300s"}},
    )
    for slot in range(s.connections):
        m = SlotModel(s, slot).run()
        starts = [t for t in m.outages.starts if t < s.horizon - 60]
        assert len(starts) > 3
        assert m.stats.false_positives == len(starts)
        opened = [r[2] for r in m.records if r[3] == "open"][1:]
        ends = [e for t, e in zip(m.outages.starts, m.outages.ends, strict=True) if t in starts]
        assert opened == pytest.approx(ends[: len(opened)])


# -- regressions from the model review ----------------------------------------------------------


def test_a_reconnect_held_up_by_an_outage_counts_the_whole_gap():
    s = scenario(
        horizon="1h",
        connections=1,
        heartbeat={"interval": "10s"},
        detector={"timeout": "30s"},
        link={"outages": {"mtbf": "20m", "duration": "5m"}},
    )
    r = simlab.simulate(s)
    rec = r.records
    fp_times = rec[rec.event == "false_positive"].time.to_numpy()
    opens = rec[rec.event == "open"].time.to_numpy()[1:]
    gaps = [
        min(o for o in opens if o > t) - t if any(opens > t) else s.horizon - t for t in fp_times
    ]
    assert r["false_positives"] >= 1
    assert r.slots.suspect_alive_s.sum() == pytest.approx(sum(gaps))
    assert r.slots.alive_s.sum() == pytest.approx(s.horizon)  # no crash: alive all along


def test_a_crashed_peer_sends_nothing_not_even_retransmissions():
    # TCP with heavy loss: without the fix, retransmissions scheduled before the crash arrived
    # after it and pushed the detection past timeout + delay
    s = scenario(
        horizon="2h",
        connections=20,
        heartbeat={"style": "oneway", "initiator": "client", "interval": "1s"},
        detector={"timeout": "5s"},
        link={"transport": "tcp", "loss": 0.3},
        peer={"crash": {"mtbf": "10m"}},
    )
    r = simlab.simulate(s)
    assert r["detections"] > 100
    assert r["detection_latency_max_s"] <= 5 + 0.05 + 1e-9


def test_a_crashed_client_does_not_ack_so_the_nat_expires_and_resets():
    s = scenario(
        horizon="6h",
        connections=4,
        heartbeat={"interval": "20s"},
        detector={"timeout": "5m"},
        link={"transport": "tcp"},
        nat={"idle_timeout": "60s", "on_expiry": "reset"},
        peer={"crash": {"mtbf": "1h"}},
    )
    r = simlab.simulate(s)
    assert r["breaks_crash"] > 5
    # the mapping expires 60 s after the dead client's last packet; the next ping meets the RST
    assert r["detections_by_reset"] == r["detections"]
    assert r["detection_latency_max_s"] <= 60 + 20 + 0.1 + 1e-9


def test_a_segment_tcp_will_give_up_on_breaks_the_connection_when_it_is_sent():
    s = scenario(
        horizon="6h",
        connections=4,
        heartbeat={"style": "oneway", "initiator": "client", "interval": "1s"},
        detector={"timeout": "5s"},
        link={
            "transport": "tcp",
            "tcp": {"max_retries": 6},
            "outages": {"mtbf": "30m", "duration": "10m"},
        },
        reconnect={"delay": "1s"},
    )
    r = simlab.simulate(s)
    # a 10-minute outage outlasts TCP's 6 retries: the declarations during it are detections
    assert r["breaks_tcp_timeout"] > 0
    assert r["detections_by_detector"] >= r["breaks_tcp_timeout"] - r["undetected_breaks"]
    assert r["false_positives"] == 0


def test_a_stalled_peer_sends_its_app_messages_when_it_resumes():
    s = scenario(
        horizon="4h",
        connections=4,
        heartbeat={"interval": "10s"},
        detector={"timeout": "200s"},
        peer={"stall": {"mtbf": "5m", "duration": "2m"}},
        app={"rate": 1.0},
    )
    trace = simlab.simulate(s, trace=True).trace
    sent = trace[(trace.event == "send") & (trace.kind == "app")]
    by_side = sent.src.value_counts()
    n = by_side.sum() / 2
    assert abs(by_side["client"] - by_side["server"]) < Z * math.sqrt(2 * n)


def test_retransmissions_to_a_dead_peer_are_counted_until_the_close():
    s = scenario(
        horizon="2h",
        heartbeat={"interval": "10s"},
        detector={"timeout": "60s"},
        link={"transport": "tcp", "loss": 0.0},
        peer={"crash": {"mtbf": "20m"}},
    )
    r = simlab.simulate(s)
    # no loss at all: every retransmission is a ping to a crashed peer
    assert r["breaks_crash"] > 0 and r["tcp_retransmissions"] > r["breaks_crash"]
