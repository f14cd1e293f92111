"""Tests for simlab.engines.analytic.detection: when a client notices a silent break, against closed forms.

With a steady, loss-free stream every detector's deadline is a fixed offset from
the last heartbeat's send time; the offsets below are derived by hand from each
detector's rule, and the sampled mean is held to the exact mean within four
standard errors (the latency is uniform given which heartbeat arrived last).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.engines.analytic.detection import silent_detection
from simlab.engines.analytic.theory import timeout_crash_latency
from simlab.scenario import schema as sc


def client(interval=20.0, initiator="server", **detector) -> sc.Scenario:
    return sc.Scenario(
        heartbeat=sc.Heartbeat(interval=interval, initiator=initiator),
        detector=sc.Detector(side="client", **detector),
    )


def test_timeout_detector_declares_timeout_after_the_last_arrival():
    d = silent_detection(client(25.0, kind="timeout", timeout=45.0), rtt=0.1)
    assert d.reach == pytest.approx(0.05)  # the server's ping travels one way
    assert d.after_delivered == pytest.approx(45.05)
    assert d.after_lost == pytest.approx(45.05 - 25.0)
    # theory's crash latency without loss is timeout + delay - phase, for a crash that lets
    # the heartbeat in flight arrive; a broken path loses it (phases below the delay, a
    # share delay/T of them, declare one interval sooner): the mean is lower by the delay
    theory = timeout_crash_latency(25.0, 0.0, 0.05, 45.0)
    assert d.mean == pytest.approx(theory.mean - 0.05, rel=1e-9)


def test_missed_pings_declare_k_intervals_plus_the_ack_timeout_after_the_last_answered_ping():
    d = silent_detection(
        client(20.0, "client", kind="missed", missed=sc.Missed(k=2, ack_timeout=10.0)), rtt=0.2
    )
    assert d.reach == pytest.approx(0.2)  # a pong comes back after a round trip
    assert d.after_delivered == pytest.approx(2 * 20.0 + 10.0)
    assert d.after_lost == pytest.approx(20.0 + 10.0)


def test_nfd_declares_at_the_next_freshness_point():
    d = silent_detection(client(10.0, kind="nfd", timeout=13.0), rtt=0.04)
    assert d.after_delivered == pytest.approx(10.0 + 3.0)  # sigma_J + eta + delta
    assert d.after_lost == pytest.approx(3.0)


def test_phi_declares_at_its_steady_state_threshold_crossing():
    from simlab.rules.detector import _phi_quantile

    d = silent_detection(client(10.0, kind="phi"), rtt=0.02)
    # a full window of equal intervals: mean 10 s, std floored at min_std (0.1 s)
    assert d.after_delivered == pytest.approx(0.01 + 10.0 + _phi_quantile(8.0) * 0.1)


@pytest.mark.parametrize(
    "setting",
    [
        dict(kind="timeout", timeout=45.0),
        dict(kind="missed", missed=sc.Missed(k=3, ack_timeout=5.0)),
        dict(kind="adaptive", timeout=30.0),
    ],
)
def test_sampled_latencies_have_the_exact_mean(setting):
    initiator = "client" if setting["kind"] == "missed" else "server"
    d = silent_detection(client(20.0, initiator, **setting), rtt=0.5)
    x = d.sample(50_000, np.random.default_rng(np.random.SeedSequence(1)))
    # the latency is uniform on an interval of length T - reach or reach: variance <= T^2/12
    se = math.sqrt(20.0**2 / 12 / len(x))
    assert abs(x.mean() - d.mean) <= 4 * se
    assert x.min() >= 0
