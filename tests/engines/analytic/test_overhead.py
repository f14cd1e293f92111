"""Heartbeat overhead, exactly: closed forms, ties left out, and agreement with the SimPy model.

Against the model: the analytic figures are long-run rates; a finite run adds its
edges, at most one round's messages per slot at the horizon and one wakeup per slot
for the first opening (the radio starts idle), so the tolerance is Z standard errors
across slots plus those edges.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simlab
from simlab.engines.analytic import chain as analytic
from simlab.engines.analytic import overhead

from ..test_model import Z, scenario

GILBERT = {"model": "gilbert", "p_gb": 0.05, "p_bg": 0.4, "loss_good": 0.01, "loss_bad": 0.6}


def test_beats_every_twelve_seconds_each_wake_the_radio():
    s = scenario(
        heartbeat={"style": "oneway", "initiator": "client", "interval": "12s"},
        detector={"timeout": "25s", "on_declare": "monitor"},
        link={"loss": 0.3},
    )
    out = analytic.run(s)
    assert out["overhead_msgs_per_conn_hour"] == pytest.approx(300, rel=1e-12)
    assert out["wakeups_per_conn_hour"] == pytest.approx(300, rel=1e-12)


def test_server_pings_wake_the_radio_after_three_lost_rounds():
    # 4 s rounds: a ping that arrives wakes the radio only if the 2 before it were lost (12 s > 10 s)
    s = scenario(
        heartbeat={"interval": "4s"},
        detector={"timeout": "9.5s", "on_declare": "monitor"},
        link={"loss": 0.5},
    )
    out = analytic.run(s)
    assert out["wakeups_per_conn_hour"] == pytest.approx(900 * 0.5 * 0.5**2, rel=1e-12)
    assert out["overhead_msgs_per_conn_hour"] == pytest.approx(900 * 1.5, rel=1e-12)


def test_a_silence_of_exactly_the_radio_tail_is_left_out_not_guessed():
    # every ping arrives 10 s after the one before: the model's event order decides
    s = scenario(
        heartbeat={"interval": "10s"},
        detector={"timeout": "25.5s", "on_declare": "monitor"},
    )
    out = analytic.run(s)
    assert "overhead_msgs_per_conn_hour" in out and "wakeups_per_conn_hour" not in out


def test_reconnect_mode_has_the_opening_cost_when_nothing_is_lost():
    # no round fails: one connection for ever, as in monitor mode
    s = scenario(heartbeat={"interval": "4s"}, detector={"timeout": "9.5s"})
    assert analytic.run(s)["overhead_msgs_per_conn_hour"] == pytest.approx(1800, rel=1e-12)
    assert overhead.monitor(s).msgs_per_hour == pytest.approx(1800, rel=1e-12)


CASES = {
    "server-pings-timeout-reconnect": dict(
        heartbeat={"interval": "4s"}, detector={"timeout": "9.5s"}, link={"loss": 0.2}
    ),
    "client-pings-timeout-reconnect": dict(
        heartbeat={"interval": "12s", "initiator": "client"},
        detector={"timeout": "26s"},
        link={"loss": 0.25, "delay": "0.5s"},
    ),
    "client-pings-missed-reconnect": dict(
        heartbeat={"interval": "11s", "initiator": "client"},
        detector={"kind": "missed", "missed": {"k": 1, "ack_timeout": "3s"}},
        link={"loss": 0.15, "delay": "0.6s"},
    ),
    "server-heartbeats-nfd-reconnect": dict(
        heartbeat={"interval": "3s", "style": "oneway"},
        detector={"kind": "nfd", "nfd": {"delta": "4s"}},
        link={"loss": 0.3},
    ),
    "server-pings-gilbert-monitor": dict(
        heartbeat={"interval": "4s"},
        detector={"timeout": "9s", "on_declare": "monitor"},
        link={"loss": GILBERT},
    ),
    "server-pings-gilbert-reconnect-long-silences": dict(
        heartbeat={"interval": "4s"},
        detector={"timeout": "13s"},
        link={"loss": GILBERT},
        reconnect={"delay": "2.5s"},
    ),
    "client-heartbeats-monitor": dict(
        heartbeat={"interval": "6s", "initiator": "client", "style": "oneway"},
        detector={"timeout": "13s", "on_declare": "monitor"},
        link={"loss": 0.3},
    ),
}


def _ratio(y, x) -> tuple[float, float]:
    y, x = np.asarray(y, float), np.asarray(x, float)
    r = y.sum() / x.sum()
    resid = y - r * x
    return r, math.sqrt(len(x) / (len(x) - 1) * float(resid @ resid)) / x.sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_overhead_agrees_with_the_model(name):
    s = scenario(horizon="40000s", connections=8, seed=5, **CASES[name])
    out = analytic.run(s)
    slots = simlab.simulate(s).slots
    hours = slots.connected_s.to_numpy() / 3600
    edge = len(hours) / hours.sum()  # one event per slot, per connection-hour
    for key, column, per_slot in (
        ("overhead_msgs_per_conn_hour", "heartbeats_sent", 2),
        ("wakeups_per_conn_hour", "wakeups", 1),
    ):
        model, se = _ratio(slots[column], hours)
        assert abs(model - out[key]) <= Z * se + per_slot * edge, (key, model, se, out[key])
