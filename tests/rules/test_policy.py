"""Adaptive heartbeat policies: the pure state machines on hand-written timelines, then in the model.

The pure tests drive :mod:`simlab.rules.policy` the way any driver does (times in,
interval/timeout/due out). The model tests hold the SimPy integration to
predictions computed here from the policy's schedule rules (growth, bisection,
timer alignment), with deterministic paths so the comparison is exact, and to
the fixed policy with fixed seeds and tolerances of Z standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simlab
from simlab.cli.main import main
from simlab.engines import policy_metrics as pm
from simlab.errors import EngineRefusal, ScenarioError
from simlab.lab import policies
from simlab.rules.policy import (
    INF,
    FixedPolicy,
    NatProbePolicy,
    NetworkStatePolicy,
    StateSetting,
    TimerThrottle,
    TrafficAwarePolicy,
    make_policy,
    make_throttle,
    traffic_requirements,
)
from simlab.scenario.reader import from_dict, load
from simlab.scenario.schema import flatten, to_dict

Z = 4.0

# -- the timer throttle ---------------------------------------------------------------------------


def test_throttle_schedule_follows_chrome_hidden_then_intensive():
    th = TimerThrottle(hidden_at=100.0, align=1.0, intensive_after=300.0, intensive_align=60.0)
    assert th.fire_at(99.5) == 99.5  # visible: on time
    assert th.fire_at(100.2) == 101.0  # hidden: the next whole second
    assert th.fire_at(250.0) == 250.0  # already on the grid
    assert th.fire_at(399.9) == 400.0  # still the 1 s grid (hidden 299.9 s)
    assert th.fire_at(400.0) == 420.0  # intensive from 400 s: the next whole minute
    assert th.fire_at(421.0) == 480.0
    assert th.fire_at(480.0) == 480.0
    assert TimerThrottle(0.0, 0.0, 300.0, 60.0).fire_at(12.3) == 12.3  # align 0: only intensive
    # a policy with a throttle hands its timers to it; one without fires on time
    assert FixedPolicy(25.0, th).timer_at(425.0) == 480.0
    assert FixedPolicy(25.0).timer_at(425.0) == 425.0


def test_fixed_policy_is_inert():
    p = FixedPolicy(30.0)
    p.opened(0.0)
    p.sent(30.0, 1)
    p.answered(30.1, 1)
    p.app(31.0, "received")
    p.ended(40.0, "detector")
    assert (p.interval(), p.timeout(), p.due(55.0), p.events()) == (30.0, None, 55.0, [])
    assert not p.adaptive


# -- network-state ----------------------------------------------------------------------------------

SETTINGS = {
    "normal": StateSetting(30.0, 60.0),
    "weak": StateSetting(15.0, 45.0),
    "high_latency": StateSetting(45.0, 90.0),
}


def drive_rounds(policy, outcomes, start=0.0):
    """One connection pinging every interval; each outcome is an RTT (answered) or None (no
    pong: counted lost when the next ping goes out). Returns the state after each round."""
    t, states = start, []
    policy.opened(t)
    for seq, rtt in enumerate(outcomes, 1):
        t += policy.interval()
        policy.sent(t, seq)
        if rtt is not None:
            policy.answered(t + rtt, seq)
        states.append(policy.state)
    policy.ended(t + 1.0, "detector")  # a last unanswered ping is never resolved
    return states


def losses_at(rate: float, n: int, offset: float = 0.0) -> list:
    """n rounds with losses spread evenly at ``rate`` (a deterministic boundary sequence)."""
    return [
        None if math.floor((i + 1) * rate + offset) > math.floor(i * rate + offset) else 0.05
        for i in range(n)
    ]


def changes(states) -> int:
    return sum(1 for a, b in zip(states, states[1:], strict=False) if a != b)


def test_network_state_hysteresis_does_not_flap_at_the_threshold():
    # the loss over any window of 20 sits at 10 % or 5 %: on and around the enter threshold
    sequence = losses_at(0.1, 60) + losses_at(0.075, 400)
    steady = NetworkStatePolicy(SETTINGS, window=20, hold=10, weak_loss=0.1, weak_exit_loss=0.02)
    states = drive_rounds(steady, sequence)
    assert changes(states) == 1 and states[-1] == "weak"
    # the same sequence without hysteresis (exit = enter) and without a hold flaps
    flappy = NetworkStatePolicy(SETTINGS, window=20, hold=1, weak_loss=0.1, weak_exit_loss=0.1)
    assert changes(drive_rounds(flappy, sequence)) > 20


def test_network_state_waits_for_a_full_window_and_holds_a_state():
    p = NetworkStatePolicy(SETTINGS, window=10, hold=5, weak_loss=0.1, weak_exit_loss=0.0)
    states = drive_rounds(p, [None] * 11)  # 100 % loss; a ping is resolved by the next one
    assert states[-2] == "normal"  # nine resolved: the window is not full yet
    assert states[-1] == "weak"  # the 10th fills it
    assert (p.interval(), p.timeout()) == (15.0, 45.0)
    assert p.events() == [("state:weak", 15.0)]
    # a clean path from now on: the window is clean after 10 rounds, the hold (5) is no obstacle
    states = drive_rounds(p, [0.05] * 12, start=1000.0)
    assert states.index("normal") == 9
    assert (p.interval(), p.timeout()) == (30.0, 60.0)


def test_network_state_round_trip_time_and_late_pongs():
    p = NetworkStatePolicy(SETTINGS, window=10, hold=1, high_rtt=1.0, high_exit_rtt=0.6, late=0.15)
    assert drive_rounds(p, [1.2] * 10)[-1] == "high_latency"
    assert (p.interval(), p.timeout()) == (45.0, 90.0)
    assert drive_rounds(p, [0.8] * 20)[-1] == "high_latency"  # between exit and enter: stays
    assert drive_rounds(p, [0.5] * 20)[-1] == "normal"
    # a pong later than the median by more than `late` is a loss (a TCP retransmission)
    q = NetworkStatePolicy(SETTINGS, window=10, hold=1, late=0.15, weak_loss=0.2)
    assert q.measure() == (1.0, INF)  # nothing measured yet
    drive_rounds(q, [0.05] * 8 + [0.3, 0.3])
    assert q.measure() == (pytest.approx(0.2), pytest.approx(0.05))
    assert q.state == "weak"


def test_network_state_pings_of_a_dead_connection_do_not_count():
    p = NetworkStatePolicy(SETTINGS, window=4, hold=1)
    p.opened(0.0)
    p.sent(30.0, 1)
    p.ended(60.0, "detector")
    p.opened(61.0)
    p.sent(91.0, 1)
    assert list(p.samples) == []  # ping 1 of the first connection was not counted lost


# -- nat-probe -------------------------------------------------------------------------------------


def probe_oracle(policy, timeout_of, rtt=0.05, horizon=None, reconnect=1.0):
    """Drive a nat-probe policy against a NAT that drops any idle gap >= timeout_of(t).

    Heartbeats go out one ``interval()`` after the previous one (or the opening). A
    surviving one gets its pong after ``rtt``; a failed one ends the connection at the
    detector's deadline (the last heartbeat plus the policy's ``timeout()``), and the next
    connection opens ``reconnect`` later. Runs until the policy settles, or until
    ``horizon``. Returns the probes (heartbeats longer than any that had survived) as
    (gap, survived), in order.
    """
    t = 0.0
    policy.opened(t)
    last, seq, probes = t, 0, []
    while (policy.settled is None) if horizon is None else (t < horizon):
        seq += 1
        t = last + policy.interval()
        gap, lo = t - last, policy.lo
        policy.sent(t, seq)
        if gap < timeout_of(t):
            policy.answered(t + rtt, seq)
            if gap > lo:
                probes.append((gap, True))
            last = t
        else:
            probes.append((gap, False))
            t = last + policy.timeout()
            policy.ended(t, "detector")
            t += reconnect
            policy.opened(t)
            last = t
    return probes


def expected_probes(N, floor, growth, ceiling, precision) -> int:
    """Growth until a failure (or the ceiling), then halve (lo, hi] until it is within precision."""
    targets = [floor]
    while targets[-1] < N and targets[-1] < ceiling:
        targets.append(min(ceiling, targets[-1] * growth))
    if targets[-1] < N:  # the ceiling survived: settled there
        return len(targets)
    if len(targets) == 1:  # the floor failed: settled there
        return 1
    width = targets[-1] - targets[-2]
    return len(targets) + max(0, math.ceil(math.log2(width / precision)))


@pytest.mark.parametrize("N", [31.0, 45.0, 100.0, 299.0, 300.0, 301.0, 900.0, 1799.0, 2500.0])
def test_nat_probe_converges_within_precision_in_the_expected_probes(N):
    p = NatProbePolicy(30.0, 1800.0, growth=2.0, precision=10.0, margin=0.1, slack=30.0)
    probes = probe_oracle(p, lambda t: N)
    assert len(probes) == expected_probes(N, 30.0, 2.0, 1800.0, 10.0)
    assert p.probes == p.probes_to_settle == len(probes)
    assert p.failed == sum(1 for _, ok in probes if not ok)
    if N > 1800.0:  # the ceiling survived: no NAT limit within reach
        assert p.settled == 1800.0
    else:
        assert 0 < N - p.lo <= 10.0  # the stated precision: N in (lo, lo + precision]
        assert p.settled == pytest.approx(max(30.0, p.lo * 0.9))
        assert p.timeout() == pytest.approx(p.settled + 30.0)


def test_nat_probe_below_the_floor_settles_at_the_floor():
    p = NatProbePolicy(30.0, 1800.0, slack=30.0)
    assert probe_oracle(p, lambda t: 20.0) == [(30.0, False)]
    assert p.settled == 30.0


def test_nat_probe_additive_step():
    p = NatProbePolicy(30.0, 600.0, growth=1.0, step=60.0, precision=5.0, slack=30.0)
    probes = probe_oracle(p, lambda t: 200.0)
    assert [g for g, _ in probes][:4] == [30.0, 90.0, 150.0, 210.0]
    assert 0 < 200.0 - p.lo <= 5.0


def test_nat_probe_reprobes_and_follows_a_longer_timeout():
    p = NatProbePolicy(30.0, 1800.0, precision=10.0, reprobe=3600.0, slack=30.0)
    probes = probe_oracle(p, lambda t: 300.0 if t < 20000 else 600.0, horizon=40000.0)
    assert 0 < 600.0 - p.lo <= 10.0 and p.settled is not None
    # while the NAT stayed at 300 s, each reprobe tried hi (300 s) once and failed
    reprobes = [g for g, ok in probes if not ok and abs(g - 300.0) < 1e-6]
    assert len(reprobes) >= 1 + (20000 - 3000) // 3600


def test_nat_probe_unexplained_failures_restart_the_search():
    p = NatProbePolicy(30.0, 1800.0, precision=10.0, reprobe=None, slack=30.0)
    probe_oracle(p, lambda t: 300.0)
    settled = p.settled
    # two connections die at the settled interval (it survived before): the timeout got shorter
    for t in (1e6, 1e6 + 1000):
        p.opened(t)
        p.sent(t + settled, 1)
        p.ended(t + settled + 60, "detector")
    assert p.settled is None and p.lo == 0.0 and p.hi == settled
    assert [e for e, _ in p.events()][-2:] == ["unexplained_failure", "search_restarted"]
    probe_oracle(p, lambda t: 120.0)
    assert 0 < 120.0 - p.lo <= 10.0


def test_nat_probe_times_idle_gaps_from_a_pong_that_refreshed_the_path():
    # a client over TCP: its ACK of the pong goes out through the NAT when the pong arrives
    p = NatProbePolicy(30.0, 1800.0, pong_refreshes=True, slack=30.0)
    p.opened(0.0)
    p.sent(30.0, 1)  # the first idle gap counts from the opening
    p.answered(30.2, 1)  # survived; the next target is 60 s of idleness after this pong
    assert p.lo == 30.0
    assert p.interval() == pytest.approx(60.2)  # from the last send: one round trip more
    assert p.timeout() == pytest.approx(90.2)
    p.sent(90.2, 2)
    assert p.inflight == {2: pytest.approx(60.0)}
    # without it (a server pinger: the client's pong left before it arrived here)
    q = NatProbePolicy(30.0, 1800.0, slack=30.0)
    q.opened(0.0)
    q.sent(30.0, 1)
    q.answered(30.2, 1)
    assert q.interval() == 60.0


def test_nat_probe_counts_app_traffic_that_refreshes_the_path():
    p = NatProbePolicy(30.0, 1800.0, refresh_by=frozenset({"sent"}), slack=30.0)
    p.opened(0.0)
    p.app(20.0, "sent")
    p.sent(30.0, 1)  # idle for 10 s only: the app message refreshed the mapping
    p.app(35.0, "received")  # inbound: does not refresh (refresh_by: sent)
    p.sent(60.0, 2)
    assert p.inflight == {1: 10.0, 2: 30.0}


# -- traffic-aware ---------------------------------------------------------------------------------


def test_traffic_aware_skips_exactly_when_every_job_was_done_within_the_interval():
    jobs = {"liveness": frozenset({"received"}), "nat": frozenset({"sent"})}
    p = TrafficAwarePolicy(30.0, jobs)
    p.opened(0.0)
    assert p.due(30.0) == 30.0  # nothing yet: send
    p.app(10.0, "received")
    assert p.due(30.0) == 30.0  # liveness done, the NAT not
    p.app(12.0, "sent")
    assert p.due(30.0) == 40.0  # both: skip until the older (10 s) is an interval old
    assert p.due(40.0) == 40.0  # then send
    p.app(41.0, "received")
    p.app(41.5, "sent")
    assert p.due(60.0) == 71.0
    assert p.skipped == 2
    p.opened(100.0)  # a new connection: no traffic on it yet
    assert p.due(130.0) == 130.0
    never = TrafficAwarePolicy(30.0, {"liveness": frozenset(), "nat": frozenset({"sent"})})
    never.opened(0.0)
    never.app(29.0, "sent")
    never.app(29.0, "received")
    assert never.due(30.0) == 30.0


def base(**sections):
    raw = {
        "horizon": "1h",
        "connections": 4,
        "seed": 1,
        "heartbeat": {"interval": "30s"},
        "detector": {"timeout": "65s", "liveness": "any"},
        "link": {"transport": "datagram", "loss": 0.0, "delay": "30ms"},
        "nat": {"idle_timeout": "2m"},
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    return raw


@pytest.mark.parametrize(
    ("initiator", "transport", "refresh", "liveness", "jobs"),
    [
        # the server pings and detects: what it receives proves the client alive and went out through the NAT
        ("server", "datagram", "outbound", "any", {"liveness": {"received"}, "nat": {"received"}}),
        (
            "server",
            "tcp",
            "outbound",
            "any",
            {"liveness": {"received"}, "nat": {"received", "sent"}},
        ),
        # the client pings and detects: it must hear the server, and send through the NAT
        ("client", "datagram", "outbound", "any", {"liveness": {"received"}, "nat": {"sent"}}),
        (
            "client",
            "datagram",
            "both",
            "any",
            {"liveness": {"received"}, "nat": {"sent", "received"}},
        ),
        (
            "client",
            "tcp",
            "outbound",
            "heartbeats",
            {"liveness": set(), "nat": {"sent", "received"}},
        ),
    ],
)
def test_traffic_requirements_follow_the_nat_and_the_detector(
    initiator, transport, refresh, liveness, jobs
):
    s = simlab.load_scenario(
        base(
            heartbeat={"initiator": initiator},
            detector={"liveness": liveness},
            link={"transport": transport},
            nat={"refresh": refresh},
        )
    )
    assert traffic_requirements(s, initiator) == {k: frozenset(v) for k, v in jobs.items()}


def test_traffic_requirements_oneway_sender_proves_liveness_by_what_it_sends():
    s = simlab.load_scenario(
        base(heartbeat={"style": "oneway", "initiator": "client"}, nat={"idle_timeout": None})
    )
    assert traffic_requirements(s, "client") == {"liveness": frozenset({"sent"})}


# -- in the model: fixed is unchanged ------------------------------------------------------------


def test_explicit_fixed_policy_changes_nothing_and_adds_no_keys():
    raw = base(app={"rate": 0.1}, heartbeat={"jitter": 0.2}, link={"loss": 0.05})
    a = simlab.simulate(simlab.load_scenario(raw))
    b = simlab.simulate(simlab.load_scenario(raw, {"heartbeat.policy": {"kind": "fixed"}}))
    drop = {"wall_s"}
    assert {k: v for k, v in a.summary.items() if k not in drop} == {
        k: v for k, v in b.summary.items() if k not in drop
    }
    assert a.records.equals(b.records)
    assert not set(pm.ADAPTIVE_KEYS) & set(a.summary)
    assert set(a.records.event) <= {
        "open",
        "close",
        "break",
        "detection",
        "false_positive",
        "trust",
    }


# -- in the model: nat-probe ----------------------------------------------------------------------


def nat_probe_scenario(idle, loss=0.0, delay="40ms", initiator="server", **policy):
    return simlab.load_scenario(
        {
            "horizon": "12h",
            "connections": 6,
            "seed": 2,
            "heartbeat": {
                "interval": "30s",
                "initiator": initiator,
                "policy": {"kind": "nat-probe", **policy},
            },
            "detector": {"kind": "timeout", "timeout": "60s"},
            "link": {"transport": "tcp", "loss": loss, "delay": delay},
            "nat": {"idle_timeout": idle},
        }
    )


@pytest.mark.parametrize(
    ("idle", "loss", "initiator"),
    [
        (100.0, 0.0, "server"),
        (300.0, 0.0, "server"),
        (1200.0, 0.0, "server"),
        (100.0, 0.02, "server"),
        (300.0, 0.02, "server"),
        (1200.0, 0.02, "server"),
        (300.0, 0.02, "client"),
        (1200.0, 0.0, "client"),
    ],
)
def test_nat_probe_in_the_model_finds_the_nats_timeout_within_precision(idle, loss, initiator):
    s = nat_probe_scenario(
        idle, loss, delay={"dist": "exponential", "mean": "30ms"}, initiator=initiator
    )
    r = simlab.simulate(s)
    assert r["nat_probe_settled_fraction"] == 1.0
    settles = r.records[(r.records.event == "policy") & (r.records.detail == "nat_estimate")]
    first = settles.groupby("slot").value.first()
    assert len(first) == s.connections
    precision = s.heartbeat.policy.precision
    assert ((idle - first > 0) & (idle - first <= precision)).all(), first
    assert r["nat_probe_error_max_abs_s"] <= precision
    assert r["nat_probe_failed_probes"] >= s.connections  # each slot paid at least one break
    assert r["policy_breaks"] == r["breaks_nat"]  # every NAT break came from a probe


def predicted_nat_probe(
    N,
    floor=30.0,
    growth=2.0,
    ceiling=1800.0,
    precision=10.0,
    margin=0.1,
    d=0.04,
    slack=30.0,
    reconnect=1.0,
):
    """Settle time and interval of nat-probe on a server-pinged TCP path without loss (constant delay d).

    A server ping crosses the NAT (at the client end) d after it is sent. The mapping was
    last refreshed by the connection's opening, or by the client's ACK and pong of the
    previous ping (d after that ping was sent): so a connection's first ping is idle for
    gap + d, the others for gap. A failed ping is declared at the detector's deadline: the
    last pong (or the opening) plus the interval plus the slack; the next connection
    opens ``reconnect`` later.
    """
    lo, hi, t0 = 0.0, INF, 0.0
    last_ping, last_heard, first = t0, t0, True
    target = floor
    while True:
        gap = target
        send = last_ping + gap
        idle = gap + d if first else gap
        if idle < N:
            lo, last_ping, last_heard, first, now = gap, send, send + 2 * d, False, send + 2 * d
        else:
            hi = gap
            now = last_heard + gap + slack
            t0 = now + reconnect
            last_ping, last_heard, first = t0, t0, True
        if hi - lo <= precision:
            return now, max(floor, lo * (1 - margin))
        if lo >= ceiling:
            return now, ceiling
        target = min(ceiling, lo * growth) if hi == INF else (lo + hi) / 2


@pytest.mark.parametrize("idle", [100.0, 300.0, 1000.0])
def test_nat_probe_convergence_time_is_what_the_growth_schedule_predicts(idle):
    s = nat_probe_scenario(idle, reprobe=None)
    r = simlab.simulate(s)
    when, interval = predicted_nat_probe(idle)
    assert r["nat_probe_converge_time_max_s"] == pytest.approx(when, abs=1e-6)
    assert r["nat_probe_converge_time_mean_s"] == pytest.approx(when, abs=1e-6)
    assert r["nat_probe_interval_mean_s"] == pytest.approx(interval)
    # the interval records: growth, failures, bisection, then the settled interval
    gaps = pm.interval_records(r.records)
    slot0 = gaps[gaps.slot == 0]
    assert slot0.interval_s.iloc[0] == 30.0
    after = slot0[slot0.time > when + interval + 1]
    assert (after.interval_s.round(6) == round(interval, 6)).all() and len(after) > 10


def test_nat_probe_interval_and_timeout_reach_the_detector():
    r = simlab.simulate(nat_probe_scenario(300.0))
    # no false positive although the interval grew far past detector.timeout (60 s)
    assert r["false_positives"] == 0
    assert r["heartbeat_interval_mean_s"] > 200


# -- in the model: traffic-aware -----------------------------------------------------------------


def traffic_run(kind, initiator="server", direction="both", crash=True):
    raw = base(
        horizon="6h",
        connections=8,
        seed=5,
        heartbeat={"initiator": initiator, "policy": kind},
        link={"loss": 0.02},
        app={"rate": 0.2, "direction": direction},
        peer={"crash": {"mtbf": "3h"}} if crash else {},
    )
    return simlab.simulate(simlab.load_scenario(raw))


@pytest.mark.parametrize("initiator", ["server", "client"])
def test_traffic_aware_with_steady_traffic_sends_far_fewer_heartbeats_and_detects_as_well(
    initiator,
):
    fixed, aware = traffic_run("fixed", initiator), traffic_run("traffic-aware", initiator)
    # traffic every 5 s on average each way: a 30 s gap in it is a 1-in-400 event
    assert aware["heartbeats_sent"] < fixed["heartbeats_sent"] / 20
    assert aware["heartbeats_skipped"] > 0
    # no more false positives (within the Poisson noise of both counts) and no NAT break
    fp_a, fp_f = aware["false_positives"], fixed["false_positives"]
    assert fp_a <= fp_f + Z * math.sqrt(fp_a + fp_f + 1)
    assert aware["breaks_nat"] == 0 and aware["policy_breaks"] == 0
    # crashes are still detected (the peer's traffic stops, so the heartbeats resume), as fast
    assert aware["detections"] + aware["undetected_breaks"] == aware["breaks"] > 5

    def latencies(r):
        return r.records.loc[r.records.event == "detection", "value"].to_numpy()

    a, f = latencies(aware), latencies(fixed)
    se = math.hypot(a.std(ddof=1) / math.sqrt(len(a)), f.std(ddof=1) / math.sqrt(len(f)))
    assert a.mean() - f.mean() < Z * se


def test_traffic_aware_keeps_heartbeats_when_traffic_only_flows_inbound_through_an_outbound_nat():
    # the client pings (and detects) through an outbound-refresh NAT over datagrams:
    # downlink traffic proves the server alive but does not refresh the mapping
    fixed = traffic_run("fixed", "client", "down", crash=False)
    aware = traffic_run("traffic-aware", "client", "down", crash=False)
    assert aware["heartbeats_skipped"] == 0
    assert aware["heartbeats_sent"] == fixed["heartbeats_sent"]
    assert aware["breaks_nat"] == 0
    # traffic in both directions does both jobs
    both = traffic_run("traffic-aware", "client", "both", crash=False)
    assert both["heartbeats_sent"] < fixed["heartbeats_sent"] / 20 and both["breaks_nat"] == 0


# -- in the model: throttled-client -------------------------------------------------------------


def throttled(align, d=0.03, reconnect=1.5, timeout=44.0, interval=25.0, policy=True):
    pol = (
        {"kind": "throttled-client", "throttle": {"intensive_align": align}} if policy else "fixed"
    )
    return simlab.load_scenario(
        {
            "horizon": "1h",
            "connections": 3,
            "seed": 1,
            "heartbeat": {
                "style": "pingpong",
                "initiator": "client",
                "interval": interval,
                "policy": pol,
            },
            "detector": {"kind": "timeout", "timeout": timeout, "side": "server"},
            "link": {"transport": "tcp", "delay": d},
            "reconnect": {"delay": reconnect},
        }
    )


def predicted_ping_timeouts(s) -> list[float]:
    """Times the server closes a live client whose ping timer a hidden tab throttles.

    The client's ping timer is set one interval after its last ping (or the opening)
    and fires on the throttle's grid; the ping arrives d later; the server declares
    when nothing came for the timeout; the client reconnects ``reconnect.delay`` later.
    """
    th = make_throttle(s)
    interval, timeout = s.heartbeat.interval, s.detector.timeout
    d, horizon = s.link.up.delay.value, s.horizon
    out, t0 = [], 0.0
    while t0 < horizon:
        last_heard, last_ping = t0, t0
        while True:
            fire = th.fire_at(last_ping + interval)
            deadline = last_heard + timeout
            if (
                deadline <= fire + d
            ):  # nothing arrived in time (d and the reconnect delay avoid ties)
                if deadline >= horizon:
                    return out
                out.append(deadline)
                t0 = deadline + s.reconnect.delay
                break
            if fire >= horizon:
                return out
            last_heard, last_ping = fire + d, fire
    return out


def test_throttled_client_reproduces_ping_timeout_disconnects():
    s = throttled(60.0)  # Chrome's intensive throttling: one wake-up a minute > the 44 s timeout
    r = simlab.simulate(s)
    expected = predicted_ping_timeouts(s)
    assert len(expected) > 40  # a disconnect about every minute once the tab is hidden 5 minutes
    assert min(expected) >= 300
    fps = r.records[r.records.event == "false_positive"]
    for slot in range(s.connections):
        assert fps[fps.slot == slot].time.tolist() == pytest.approx(expected)
    assert r["breaks"] == 0  # the client was alive every time
    # a throttle that keeps every gap under the timeout costs nothing; nor does no throttle
    assert predicted_ping_timeouts(throttled(15.0)) == []
    assert simlab.simulate(throttled(15.0))["false_positives"] == 0
    assert simlab.simulate(throttled(60.0, policy=False))["false_positives"] == 0


def test_a_throttled_client_detector_fires_late_instead_of_early():
    # the server pings (Engine.IO 4): the client's detector timer is throttled, so a
    # pong-less minute is declared on the next grid point, never before the deadline
    raw = {
        "horizon": "1h",
        "connections": 2,
        "seed": 4,
        "heartbeat": {"interval": "25s", "policy": {"kind": "fixed", "throttle": {"hidden_at": 0}}},
        "detector": {"kind": "timeout", "timeout": "45s", "side": "client"},
        "link": {"transport": "tcp", "delay": "30ms"},
        "peer": {"crash": {"mtbf": "20m"}},
    }
    r = simlab.simulate(simlab.load_scenario(raw))
    plain = simlab.simulate(simlab.load_scenario(raw, {"heartbeat.policy": "fixed"}))
    assert r["false_positives"] == plain["false_positives"] == 0
    det = r.records[r.records.event == "detection"]
    late = det[det.time >= 300]
    assert len(late) > 0 and (late.time % 60 == 0).all()  # on the minute grid
    assert r["detection_latency_mean_s"] > plain["detection_latency_mean_s"]


# -- in the model: network-state ----------------------------------------------------------------


def network_state_run(loss=0.0, delay="20ms", **policy):
    raw = base(
        horizon="6h",
        connections=8,
        seed=3,
        heartbeat={"policy": {"kind": "network-state", **policy}},
        detector={"timeout": "60s", "liveness": "heartbeats", "on_declare": "monitor"},
        link={"loss": loss, "delay": delay},
        nat={"idle_timeout": None},
    )
    return simlab.simulate(simlab.load_scenario(raw))


def test_network_state_in_the_model_flaps_far_less_than_without_hysteresis_at_the_threshold():
    at_threshold = 1 - math.sqrt(
        0.9
    )  # a ping or its pong is lost 10 % of the time: the enter threshold
    steady = network_state_run(at_threshold)
    flappy = network_state_run(at_threshold, hold=1, weak={"exit_loss": 0.1})

    def per_slot(r):
        recs = r.records[r.records.event == "policy"]
        recs = recs[recs.detail.str.startswith("state:")]
        counts = recs.groupby("slot").size().reindex(range(8), fill_value=0)
        return counts.mean(), counts.std(ddof=1) / math.sqrt(8)

    (a, se_a), (b, se_b) = per_slot(steady), per_slot(flappy)
    assert b - a > Z * math.hypot(se_a, se_b)
    assert a < b / 5
    assert 0.2 < steady["state_time_weak"] < 0.9  # the path really sits at the boundary


def test_network_state_in_the_model_picks_the_states_of_the_design_table():
    clean = network_state_run()
    assert clean["state_time_normal"] == 1.0 and clean["state_changes_per_conn_hour"] == 0
    assert clean["heartbeat_interval_mean_s"] == 30.0
    far = network_state_run(delay="600ms")  # RTT 1.2 s
    assert far["state_time_high_latency"] > 0.9
    gaps = pm.interval_records(far.records)
    assert gaps.interval_s.iloc[-1] == 45.0
    lossy = network_state_run(0.15)  # a ping or its pong lost 28 % of the time
    assert lossy["state_time_weak"] > 0.9
    assert pm.interval_records(lossy.records).interval_s.iloc[-1] == 15.0


# -- figures and comparisons ----------------------------------------------------------------------


def test_overhead_saved_and_recommendation():
    fixed = {
        "30s": {"overhead_bytes_per_conn_hour": 20000.0, "breaks_nat": 0, "fp_per_conn_hour": 0.0},
        "120s": {"overhead_bytes_per_conn_hour": 5000.0, "breaks_nat": 12, "fp_per_conn_hour": 0.0},
    }
    adaptive = {
        "nat-probe": {
            "overhead_bytes_per_conn_hour": 4000.0,
            "breaks_nat": 0,
            "fp_per_conn_hour": 0.0,
        }
    }
    limits = {"breaks_nat": 0, "fp_per_conn_hour": 0.01}
    assert policies.best_by_means(fixed, limits)[0] == "30s"
    saved = policies.overhead_saved(adaptive["nat-probe"], fixed["30s"])
    assert saved["saved"] == 16000.0 and saved["saved_fraction"] == 0.8
    rec = policies.recommend_by_means(fixed, adaptive, limits)
    assert rec == {
        "best_fixed": "30s",
        "best_adaptive": "nat-probe",
        "recommend": "nat-probe",
        "saved": 16000.0,
        "saved_fraction": 0.8,
    }
    assert policies.recommend_by_means(fixed, {}, limits)["recommend"] == "30s"
    assert policies.meets({"detection_latency_p95_s": None}, {"detection_latency_p95_s": 10})
    assert not policies.meets({}, {"breaks_nat": 0})


def test_overhead_saved_takes_two_results():
    s = simlab.load_scenario(
        base(link={"transport": "tcp"}, heartbeat={"policy": "traffic-aware"}, app={"rate": 0.2})
    )
    aware = simlab.simulate(s)
    fixed = simlab.simulate(simlab.load_scenario(to_dict(s), {"heartbeat.policy": "fixed"}))
    saved = policies.overhead_saved(aware, fixed)
    assert saved["saved_fraction"] > 0.9


# -- the scenario format: validation, round trips, sweeps, engines ------------------------------


def test_policy_loads_with_its_defaults_and_shorthand():
    s, warnings = load(base(heartbeat={"policy": "nat-probe"}))
    assert warnings == []
    p = s.heartbeat.policy
    assert (p.kind, p.floor, p.ceiling, p.growth, p.precision, p.margin) == (
        "nat-probe",
        None,
        1800.0,
        2.0,
        10.0,
        0.1,
    )
    assert make_policy(s, "server").floor == 30.0  # the floor defaults to heartbeat.interval
    assert make_policy(s, "server").slack == 35.0  # detector.timeout - heartbeat.interval
    t, _ = load({"heartbeat": {"initiator": "client", "policy": "throttled-client"}})
    assert t.heartbeat.policy.throttle.intensive_align == 60.0  # Chrome's, unless given


@pytest.mark.parametrize(
    "policy",
    [
        {
            "kind": "nat-probe",
            "floor": "20s",
            "ceiling": "1h",
            "growth": 1.5,
            "step": "10s",
            "reprobe": None,
        },
        {
            "kind": "network-state",
            "window": 10,
            "weak": {"interval": "10s", "timeout": "40s"},
            "normal": {"interval": "25s"},
        },
        {"kind": "traffic-aware", "throttle": {"hidden_at": "10m", "intensive_align": "30s"}},
        {"kind": "throttled-client"},
    ],
)
def test_policy_round_trips_and_every_resolved_key_can_be_set(policy):
    raw = base(heartbeat={"initiator": "client", "policy": policy}, app={"rate": 0.1})
    s, _ = load(raw)
    again, _ = from_dict(to_dict(s))
    assert again == s
    for key, value in flatten(to_dict(s)).items():
        assert load(raw, {key: value})[0] == s, key


BAD_POLICIES = [
    (
        {"policy": {"kind": "adaptive"}},
        "heartbeat.policy.kind",
        "one of fixed, network-state, nat-probe",
    ),
    (
        {"policy": {"kind": "nat-probe", "growht": 2}},
        "heartbeat.policy.growht",
        "did you mean 'growth'",
    ),
    (
        {"policy": {"kind": "fixed", "growth": 2}},
        "heartbeat.policy.growth",
        "belongs to kind: nat-probe, not fixed",
    ),
    ({"policy": {"kind": "nat-probe", "growth": 0.5}}, "heartbeat.policy.growth", "must be >= 1"),
    ({"policy": {"kind": "nat-probe", "growth": 1}}, "heartbeat.policy.growth", "never grow"),
    (
        {"policy": {"kind": "nat-probe", "floor": "1h"}},
        "heartbeat.policy.floor",
        "above the ceiling",
    ),
    (
        {"policy": {"kind": "nat-probe", "margin": 1}},
        "heartbeat.policy.margin",
        "must be >= 0 and < 1",
    ),
    (
        {"policy": {"kind": "network-state", "weak": {"exit_loss": 0.2}}},
        "heartbeat.policy.weak.exit_loss",
        "would flap",
    ),
    (
        {"policy": {"kind": "network-state", "weak": {"timeout": "10s"}}},
        "heartbeat.policy.weak.timeout",
        "not longer than the state's interval",
    ),
    ({"policy": {"kind": "network-state", "hold": 0}}, "heartbeat.policy.hold", "integer >= 1"),
    (
        {"policy": {"kind": "network-state", "weak": {"los": 0.2}}},
        "heartbeat.policy.weak.los",
        "did you mean 'loss'",
    ),
    (
        {"policy": {"throttle": {"intensive_align": 0}}},
        "heartbeat.policy.throttle.intensive_align",
        "positive duration",
    ),
    (
        {"style": "oneway", "policy": "nat-probe"},
        "heartbeat.policy.kind",
        "needs heartbeat.style: pingpong",
    ),
    ({"initiator": "both", "policy": "traffic-aware"}, "heartbeat.policy.kind", "not both"),
]


@pytest.mark.parametrize(
    ("heartbeat", "path", "phrase"),
    BAD_POLICIES,
    ids=[b[1] + ":" + b[2][:12] for b in BAD_POLICIES],
)
def test_bad_policy_keys_are_reported_with_path_and_reason(heartbeat, path, phrase):
    with pytest.raises(ScenarioError) as info:
        load({"heartbeat": heartbeat})
    problems = {p.path: p.message for p in info.value.problems}
    assert path in problems, problems
    assert phrase in problems[path]


def test_policy_with_an_nfd_detector_is_refused_and_the_cli_exits_2(tmp_path, capsys):
    file = tmp_path / "s.yaml"
    file.write_text(
        "heartbeat: {policy: nat-probe}\ndetector: {kind: nfd}\napp: {direction: sideways}\n"
    )
    assert main(["run", str(file)]) == 2
    err = capsys.readouterr().err
    assert (
        "heartbeat.policy.kind: nat-probe changes or skips heartbeats" not in err
    )  # app is bad: later
    assert "app.direction" in err and "one of both, up, down" in err
    file.write_text("heartbeat: {policy: nat-probe}\ndetector: {kind: nfd}\n")
    assert main(["run", str(file)]) == 2
    err = capsys.readouterr().err
    assert (
        "heartbeat.policy.kind: nat-probe changes or skips heartbeats" in err
        and "Traceback" not in err
    )


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        (
            base(
                heartbeat={"policy": "traffic-aware"},
                detector={"liveness": "heartbeats"},
                app={"rate": 1},
            ),
            "will skip no heartbeat",
        ),
        (base(heartbeat={"policy": "traffic-aware"}), "no application traffic"),
        (
            base(heartbeat={"policy": "nat-probe"}, nat={"idle_timeout": None}),
            "grows the interval to the ceiling",
        ),
        (base(heartbeat={"policy": "throttled-client"}), "the client neither sends heartbeats"),
    ],
)
def test_policies_that_would_do_nothing_are_warned_about(raw, phrase):
    _, warnings = load(raw)
    assert any(phrase in str(w) for w in warnings), warnings


@pytest.mark.parametrize("engine", ["fast", "analytic"])
@pytest.mark.parametrize(
    ("policy", "feature"),
    [
        ("nat-probe", "heartbeat.policy.kind: nat-probe"),
        ({"kind": "fixed", "throttle": {}}, "heartbeat.policy.throttle"),
    ],
)
def test_round_engines_refuse_policies_naming_them(engine, policy, feature):
    from simlab.engines import fast, rare
    from simlab.engines import registry as engines
    from simlab.engines.analytic import chain as analytic

    s = simlab.load_scenario(
        base(heartbeat={"initiator": "client", "policy": policy}, nat={"idle_timeout": None})
    )
    assert any(feature in f for f in {"fast": fast, "analytic": analytic}[engine].unsupported(s))
    assert any(feature in f for f in rare.unsupported(s))
    with pytest.raises(EngineRefusal) as info:
        engines.run(s, engine)
    assert any(feature in p.message for p in info.value.problems)
    assert engines.choose(s)[0] == "simpy"


def test_policy_keys_sweep_like_any_other(tmp_path):
    from simlab.sweeps.sweep import SweepError, parse_sweep, run_sweep

    raw = base(horizon="20m", connections=2, link={"transport": "tcp"}, nat={"idle_timeout": "5m"})
    spec = parse_sweep(
        {
            "base": raw,
            "grid": {"heartbeat.policy.kind": ["fixed", "nat-probe"]},
            "zip": [
                {
                    "heartbeat.policy.throttle.intensive_align": ["30s", "1m"],
                    "heartbeat.initiator": ["client", "client"],
                }
            ],
        }
    )
    assert len(spec.points) == 4
    outcome = run_sweep(spec, tmp_path / "kinds.csv", workers=1, progress=False)
    rows = outcome.rows
    assert outcome.failed == [] and len(rows) == 4
    assert rows["heartbeat_interval_mean_s"].notna().all()  # every point is adaptive (throttled)
    probe = rows[rows["heartbeat.policy.kind"] == "nat-probe"]
    assert probe["nat_probe_failed_probes"].notna().all()
    assert rows[rows["heartbeat.policy.kind"] == "fixed"]["nat_probe_failed_probes"].isna().all()
    # keys of one kind, nested keys, and the policy's shorthand in the base
    nested = parse_sweep(
        {
            "base": {**raw, "heartbeat": {"policy": "nat-probe"}},
            "grid": {
                "heartbeat.policy.growth": [1.5, 2],
                "heartbeat.policy.precision": ["5s", "20s"],
            },
        }
    )
    assert len(nested.points) == 4
    states = parse_sweep(
        {
            "base": raw,
            "grid": {
                "heartbeat.policy.kind": ["network-state"],
                "heartbeat.policy.weak.interval": ["10s", "20s"],
            },
        }
    )
    assert [
        simlab.load_scenario(raw, p.params).heartbeat.policy.weak.interval for p in states.points
    ] == [10.0, 20.0]
    # a key that does not belong to one of the kinds is reported before any run
    with pytest.raises(SweepError) as info:
        parse_sweep(
            {
                "base": raw,
                "grid": {
                    "heartbeat.policy.kind": ["fixed", "nat-probe"],
                    "heartbeat.policy.growth": [3],
                },
            }
        )
    assert "belongs to kind: nat-probe, not fixed" in str(info.value)
    with pytest.raises(SweepError) as info:
        parse_sweep(
            {"base": raw, "grid": {"heartbeat.policy.kind": ["nat-probe"]}, "engine": "fast"}
        )
    assert "does not cover the point" in str(info.value) and "nat-probe" in str(info.value)


def test_cli_table_and_json_show_the_adaptive_figures(capsys):
    assert (
        main(
            [
                "run",
                "examples/adaptive-nat-probe.yaml",
                "--connections",
                "2",
                "--set",
                "horizon=2h",
                "--json",
            ]
        )
        == 0
    )
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["nat_probe_settled_fraction"] == 1.0
    assert np.isfinite(data["nat_probe_converge_time_mean_s"])
    assert (
        main(
            ["run", "examples/adaptive-nat-probe.yaml", "--connections", "2", "--set", "horizon=2h"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "adaptive heartbeats" in out and "nat_probe_error_mean_s" in out


def test_compare_policies_mix_table_and_figures():
    from matplotlib.figure import Figure

    from simlab.lab.policy_plots import interval_over_time, policy_costs

    networks = {
        "5 min NAT": {"nat": {"idle_timeout": "5m"}},
        "60 s LB": {"nat": {"idle_timeout": "60s", "refresh": "both"}},
    }
    raw = base(link={"transport": "tcp"}, horizon="2h", connections=2)
    del raw["nat"]
    table, runs = policies.run_policy_mix(networks, {"nat-probe": "nat-probe"}, [30, 90], raw)
    assert list(table.label) == ["nat-probe", "fixed 30s", "fixed 90s"] * 2
    assert table.fixed.isna().sum() == 2 and set(table.fixed.dropna()) == {30.0, 90.0}
    lb = table[table.network == "60 s LB"].set_index("label")
    assert lb.loc["fixed 90s", "nat_breaks_per_conn_hour"] > 0  # 90 s outlives the LB
    assert lb.loc["fixed 30s", "nat_breaks_per_conn_hour"] == 0
    mix = policies.mix_table(table, {"nat_breaks_per_conn_hour": 0.0}).set_index("label")
    assert not mix.loc["fixed 90s", "meets"]  # fine behind the NAT, not behind the LB
    assert mix.loc["fixed 30s", "meets"] and mix.loc["fixed 30s", "recommended"]
    assert (mix.best_fixed == "fixed 30s").all()
    assert mix.loc["fixed 30s", "saved_fraction"] == 0
    both = [runs[(n, "nat-probe")] for n in networks]
    expected = np.mean([r["overhead_bytes_per_conn_hour"] for r in both])
    assert mix.loc["nat-probe", "overhead_bytes_per_conn_hour"] == pytest.approx(expected)
    fig = interval_over_time({n: runs[(n, "nat-probe")] for n in networks}, reference={"NAT": 300})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_yscale() == "log"  # 30 s to 480 s
    assert all(ax.get_ylabel() == "interval (s)" for ax in fig.axes)
    costs = policy_costs(table)
    assert isinstance(costs, Figure) and len(costs.axes) == 4  # a bar axis and a twin per network
