"""Tests for simlab.fleet.model: the storm model against closed forms, conservation, reproducibility.

Closed forms: without jitter every client retries at the same instants; a server
admitting mu handshakes per second finishes N simultaneous arrivals in N / mu;
full jitter spreads first attempts uniformly (bins within binomial standard
errors); Socket.IO's attempts are exactly 5 s (plus the refusal's round trip)
apart from the 5th on; exact counts for refused, dropped and timed-out attempts.
Fleets are small (hundreds of clients) except one bounded 20,000-client run.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from simlab.cli.main import main
from simlab.engines.analytic.detection import silent_detection
from simlab.fleet.model import FLEET_METRIC_KEYS, OUTCOMES, compare_policies, simulate_fleet
from simlab.fleet.plots import attempts_figure
from simlab.fleet.spec import load
from simlab.sweeps.sweep import SweepError, parse_sweep
from simlab.sweeps.sweep import sweep as sweep_api
from tests.fleet.test_spec import EXAMPLE

# an idle server with room for everyone: no admission effects unless a test adds them
BASE = {
    "kind": "fleet",
    "name": "test",
    "clients": 200,
    "horizon": "2m",
    "seed": 3,
    "client": {"rtt": 0},
    "policy": {"name": "custom"},
    "server": {"handshake_rate": 1e9, "backlog": 100_000, "connect_timeout": "1h"},
    "trigger": {"kind": "restart", "down": "10s"},
}


def storm(**changes):
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        node = raw
        *path, last = key.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    fleet, _ = load(raw)
    return simulate_fleet(fleet)


def at_once(**changes):
    """Every client's first attempt at t = 5 s, when the server is back: N simultaneous arrivals."""
    return storm(
        policy={"name": "phoenix", "steps": ["5s"], "then": "100s"},
        trigger={"kind": "restart", "down": "5s"},
        horizon="20s",
        **changes,
    )


def test_without_jitter_every_client_retries_at_the_same_instants():
    r = storm()
    counts = r.attempts.groupby("t").size()
    # 1, 2, 4, 8 s backoff from the close notice at 0: refused at 1, 3, 7, admitted at 15
    assert counts.index.tolist() == [1.0, 3.0, 7.0, 15.0]
    assert (counts == 200).all()
    assert (r.attempts.outcome[r.attempts.t < 10] == "refused_down").all()
    assert (r.attempts.outcome[r.attempts.t == 15] == "connected").all()
    assert r["peak_attempts_per_s"] == 200 and r["time_to_100pct_reconnected_s"] == pytest.approx(
        15.0
    )


def test_n_simultaneous_arrivals_at_rate_mu_finish_in_n_over_mu():
    r = at_once(server__handshake_rate=100.0)
    done = np.sort(r.attempts.done.to_numpy())
    assert np.allclose(done, 5.0 + np.arange(1, 201) / 100.0)
    assert r["time_to_100pct_reconnected_s"] == pytest.approx(5.0 + 200 / 100.0)
    assert r["time_to_50pct_reconnected_s"] == pytest.approx(5.0 + 100 / 100.0)
    busy = r.timeline.set_index("t").utilisation
    assert busy[5.0] == pytest.approx(1.0) and busy[6.0] == pytest.approx(1.0)
    assert busy[4.0] == 0 and busy[7.0] == pytest.approx(0.0, abs=1e-9)


def test_parallel_workers_share_the_rate_and_tls_resumption_is_cheaper():
    r = at_once(server__handshake_rate=100.0, server__workers=4)
    assert r["time_to_100pct_reconnected_s"] == pytest.approx(7.0)
    r = at_once(server__handshake_rate=100.0, server__resumable=1.0, server__resume_cost=0.25)
    assert r["time_to_100pct_reconnected_s"] == pytest.approx(5.0 + 200 * 0.25 / 100.0)
    assert r["handshakes_tls_resumed"] == 200


@pytest.mark.parametrize("on_full, code", [("refuse", "refused_full"), ("drop", "dropped_full")])
def test_a_full_backlog_refuses_or_drops_exactly_the_overflow(on_full, code):
    r = at_once(
        server__handshake_rate=100.0,
        server__backlog=50,
        server__on_full=on_full,
        server__connect_timeout="3s",
        client={"rtt": "20ms"},
    )
    first = r.attempts[r.attempts.attempt == 1]
    assert np.allclose(first.t, 5.01)  # notice after half the round trip, then 5 s
    assert (first.outcome == "connected").sum() == 51  # one served at once, 50 waiting
    overflow = first[first.outcome == code]
    assert len(overflow) == 149
    learnt = 5.01 + (0.02 if on_full == "refuse" else 3.0)
    assert np.allclose(overflow.done, learnt)
    assert r["backlog_peak"] == 50


def test_attempts_queued_past_the_connect_timeout_are_abandoned_but_served():
    r = at_once(server__handshake_rate=100.0, server__connect_timeout="1005ms")
    first = r.attempts[r.attempts.t == 5.0]
    assert (first.outcome == "connected").sum() == 100
    assert (first.outcome == "queue_timeout").sum() == 100
    assert r["handshakes_wasted"] == 100
    # the server still did the abandoned handshakes: busy until 5 + 200/100
    assert r.timeline.set_index("t").utilisation[6.0] == pytest.approx(1.0)


def test_full_jitter_spreads_first_attempts_uniformly():
    n, window = 4000, 20.0
    r = storm(
        clients=n,
        policy={"name": "custom", "base": window, "cap": window, "jitter": "full"},
        trigger={"kind": "blip", "fraction": 1.0, "duration": 0, "notice": "close"},
        horizon="30s",
    )
    assert r["attempts_total"] == n and r["attempts_connected"] == n
    per_second = r.timeline.attempts.to_numpy()[: int(window)]
    p = 1 / window
    se = math.sqrt(n * p * (1 - p))
    assert np.all(np.abs(per_second - n * p) <= 4 * se), per_second
    assert n * p <= r["peak_attempts_per_s"] <= n * p + 4 * se
    assert r.timeline.attempts.to_numpy()[int(window) :].sum() == 0


def test_socketio_clients_retry_exactly_5s_apart_from_the_5th_attempt():
    r = storm(
        policy="socketio",
        client={"rtt": "50ms"},
        trigger={"kind": "restart", "down": "60s"},
        horizon="70s",
    )
    a = r.attempts.sort_values(["client", "t"])
    gap = a.groupby("client").t.diff()
    during = (a.t < 60) & (a.attempt >= 5)
    assert during.sum() > 1000
    assert np.allclose(gap[during], 5.0 + 0.05)  # the cap, plus the refusal's round trip
    early = (a.attempt <= 3) & (a.attempt >= 2)
    assert gap[early].std() > 0.1  # the first retries are still jittered


@pytest.mark.parametrize("retention, lost", [("16s", 0), ("15s", 0), ("12s", 3), ("5s", 10)])
def test_a_resumed_session_loses_what_the_outage_held_beyond_the_retention(retention, lost):
    # everyone is back at 15 s (see above): 15 s of messages, one a second, per client
    r = storm(messages={"rate": 1.0}, resume={"time": retention, "messages": None})
    assert r["time_to_100pct_reconnected_s"] == pytest.approx(15.0)
    assert r["messages_lost"] == 200 * lost
    assert r["messages_replayed"] == 200 * (15 - lost)
    assert r["messages_delivered"] == r["messages_published"] - r["messages_lost"]


def test_a_policy_that_gives_up_leaves_everyone_disconnected():
    r = storm(
        policy="exponential",
        trigger={"kind": "restart", "down": "5m"},
        horizon="6m",
        messages={"rate": 1.0},
    )
    assert r["gave_up"] == 200 and r["reconnected"] == 0
    assert (r.clients.attempts == 10).all()
    # the 10th attempt at 1 + 2 + 4 + 8 + 16 + 30 * 5 = 181 s fails, and that is the end
    assert r.attempts.t.max() == pytest.approx(181.0)
    gave_up = r.timeline.set_index("t").gave_up
    assert gave_up[179.0] == 0 and gave_up[181.0] == 200
    assert r["messages_lost"] == 200 * 360 and r["messages_delivered"] == 0


def test_a_rolling_deploy_moves_clients_to_servers_that_are_up():
    r = storm(
        clients=400,
        server={"servers": 4, "handshake_rate": 1e9, "backlog": 100_000},
        trigger={"kind": "rolling", "down": "10s", "interval": "30s"},
        horizon="3m",
    )
    assert r["clients_affected"] == 400  # every server goes down once: every client moves
    assert r["disconnections"] > 400  # some moved to a server that went down later
    assert r["attempts_refused_down"] == 0  # the balancer never picks a server that is down
    assert r["reconnected"] == 400
    disconnected = r.attempts.groupby("client").t.min()
    assert sorted(np.unique(np.floor(disconnected))) == [1.0, 31.0, 61.0, 91.0]


def test_a_blip_drops_its_share_and_the_detector_times_the_notice():
    r = storm(
        clients=400,
        client={"rtt": "40ms"},
        trigger={"kind": "blip", "fraction": 0.25, "duration": "2s"},
    )
    assert r["disconnections"] == 100 and r["clients_affected"] == 100
    fleet, _ = load({**BASE, "client": {"rtt": "40ms"}})
    detection = silent_detection(fleet.client.scenario(), 0.04)
    se = fleet.client.heartbeat.interval / math.sqrt(12 * 100)
    assert abs(r["notice_delay_mean_s"] - detection.mean) <= 4 * se
    assert r["attempts_path_down"] == 0  # 45 s timeouts notice long after a 2 s blip


def test_attempts_during_a_blip_time_out():
    r = storm(
        trigger={"kind": "blip", "fraction": 1.0, "duration": "20s", "notice": "close"},
        server={"handshake_rate": 1e9, "backlog": 100_000, "connect_timeout": "4s"},
    )
    path = r.attempts[r.attempts.outcome == "path_down"]
    assert len(path) > 0 and (path.t < 20).all()
    assert np.allclose(path.done - path.t, 4.0)


CASES = [
    dict(policy="socketio"),
    dict(policy="websockets", trigger={"kind": "restart", "down": "20s", "notice": "silent"}),
    dict(policy="full_jitter", server={"handshake_rate": 20, "backlog": 10}),
    dict(policy="decorrelated_jitter", trigger={"kind": "blip", "fraction": 0.5, "duration": "5s"}),
    dict(
        policy="phoenix",
        server={"servers": 3, "handshake_rate": 30, "backlog": 5, "on_full": "drop"},
        trigger={"kind": "rolling", "down": "15s", "interval": "20s"},
    ),
    dict(policy="exponential", server={"handshake_rate": 5, "backlog": 20}, resume=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c["policy"] for c in CASES])
def test_conservation(case):
    r = storm(messages={"rate": 0.5, "process": "poisson"}, **case)
    s = r.summary
    assert s["reconnected"] + s["gave_up"] + s["still_reconnecting"] == s["clients_affected"]
    assert (
        s["messages_delivered"] + s["messages_lost"] + s["messages_pending"]
        == s["messages_published"]
    )
    assert r.clients.attempts.sum() == s["attempts_total"] == len(r.attempts)
    assert s["attempts_connected"] + s["attempts_refused"] + s["attempts_timed_out"] == len(
        r.attempts
    )
    tl = r.timeline
    assert tl.attempts.sum() == s["attempts_total"]
    assert ((tl.connected + tl.disconnected + tl.gave_up) == s["clients"]).all()
    assert (tl.utilisation <= 1 + 1e-9).all() and (tl.utilisation >= -1e-12).all()
    # every figure a sweep needs is there, and a number (or None where undefined)
    assert set(FLEET_METRIC_KEYS) <= set(s)
    assert all(s[k] is None or isinstance(s[k], int | float) for k in FLEET_METRIC_KEYS)


def test_a_seed_fixes_every_result():
    a = storm(policy="full_jitter", messages={"rate": 1.0, "process": "poisson"})
    b = storm(policy="full_jitter", messages={"rate": 1.0, "process": "poisson"})
    c = storm(policy="full_jitter", messages={"rate": 1.0, "process": "poisson"}, seed=4)
    drop = {"wall_s"}
    assert {k: v for k, v in a.summary.items() if k not in drop} == {
        k: v for k, v in b.summary.items() if k not in drop
    }
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    pd.testing.assert_frame_equal(a.attempts, b.attempts)
    assert not a.attempts.t.equals(c.attempts.t)


def test_rows_carry_their_parameters_and_seed():
    r = storm(policy="phoenix", bin="5s")
    tl = r.timeline
    assert len(tl) == 24  # 2 minutes in 5 s bins
    assert (tl.seed == 3).all() and (tl.policy == "phoenix").all()
    assert (tl["param.server.handshake_rate"] == 1e9).all()
    assert (tl["param.trigger.down"] == 10.0).all()
    assert (r.attempts.seed == 3).all() and (r.clients.seed == 3).all()
    assert list(r.attempts.outcome.cat.categories) == list(OUTCOMES)


def test_a_20000_client_storm_is_bounded_and_conserves():
    fleet, _ = load(EXAMPLE, {"clients": 20_000})
    r = simulate_fleet(fleet)
    s = r.summary
    assert s["reconnected"] == 20_000 and s["gave_up"] == 0
    assert s["wall_s"] < 30
    assert s["messages_delivered"] == s["messages_published"]
    assert 0 < s["peak_attempts_per_s"] <= 20_000


def test_storm_command_prints_json_and_writes_the_timeline(tmp_path, capsys):
    out = tmp_path / "storm.json"
    argv = ["storm", str(EXAMPLE), "--clients", "300", "--set", "policy=full_jitter"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["policy"] == "full_jitter" and printed["clients"] == 300
    written = json.loads(out.read_text())
    assert written["parameters"]["clients"] == 300
    timeline = pd.read_csv(out.with_suffix(".timeline.csv"))
    assert timeline.attempts.sum() == printed["attempts_total"]
    assert main([*argv, "--seed", "9"]) == 0
    table = capsys.readouterr().out
    assert "recovery (seconds from the trigger)" in table and "peak_attempts_per_s" in table


def test_a_sweep_can_vary_a_fleet_file(tmp_path):
    raw = {
        "base": str(EXAMPLE),
        "grid": {"policy": ["phoenix", "full_jitter"], "clients": [100]},
        "replications": 2,
        "seed": 2,
    }
    frame = sweep_api(raw, tmp_path / "fleet.csv", workers=1, progress=False)
    assert len(frame) == 4 and frame.error.isna().all()
    assert set(FLEET_METRIC_KEYS) <= set(frame.columns)
    assert list(frame.columns).count("clients") == 1  # varied and a figure: one column
    assert set(frame.policy) == {"phoenix", "full_jitter"}
    summary = frame.attrs["summary"]
    assert "time_to_99pct_reconnected_s_mean" in summary
    with pytest.raises(SweepError) as info:
        parse_sweep({**raw, "engine": "analytic", "grid": {"policy": ["socketio", "phonix"]}})
    text = str(info.value)
    assert "does not cover fleet files" in text and "did you mean 'phoenix'" in text


def test_policies_compared_on_one_plot():
    fleet, _ = load(EXAMPLE, {"clients": 200, "horizon": "1m"})
    timelines, summaries = compare_policies(fleet)
    assert summaries.policy.tolist() == [
        "exponential",
        "full_jitter",
        "equal_jitter",
        "decorrelated_jitter",
        "socketio",
        "websockets",
        "phoenix",
    ]
    fig = attempts_figure(timelines)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 8  # seven policies and the admission capacity
    assert ax.get_legend() is not None
