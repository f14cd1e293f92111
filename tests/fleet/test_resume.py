"""Tests for simlab.fleet.resume: the replay buffer against counts derived by hand.

A periodic stream with a random phase puts exactly L messages in any window of L
periods, so losses at the retention boundary are exact numbers; a Poisson stream's
are held to their means within four standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.fleet.resume import Gaps, account
from simlab.fleet.spec import Messages, Resume

INF = math.inf


def gaps(starts, ends, *, clients=None, gave_up=None, prev=None) -> Gaps:
    n = len(starts)
    return Gaps(
        client=np.arange(n) if clients is None else np.asarray(clients),
        start=np.asarray(starts, float),
        end=np.asarray(ends, float),
        gave_up=np.zeros(n, bool) if gave_up is None else np.asarray(gave_up, bool),
        prev=np.full(n, -INF) if prev is None else np.asarray(prev, float),
    )


def rng(seed=0):
    return np.random.default_rng(np.random.SeedSequence(seed))


def run(g, clients, resume, *, rate=1.0, process="periodic", horizon=100.0, seed=0, edges=None):
    return account(g, clients, horizon, Messages(rate, process, 100), resume, rng(seed), edges)


N = 500


@pytest.mark.parametrize("outage, lost", [(9.5, 0), (10.0, 0), (13.0, 3), (25.0, 15)])
def test_messages_are_lost_exactly_when_the_outage_exceeds_the_time_retention(outage, lost):
    a = run(gaps([5.0] * N, [5.0 + outage] * N), N, Resume(messages=None, time=10.0))
    assert a.lost == lost * N
    assert (a.lost_per_gap == lost).all()
    assert a.replayed == a.replayed_per_gap.sum()
    # every message of the outage comes back or is lost: L or L + 1 of them per client
    per_gap = a.replayed_per_gap + a.lost_per_gap
    assert set(np.unique(per_gap)) <= {math.floor(outage), math.ceil(outage)}


@pytest.mark.parametrize("outage", [3.0, 5.0, 12.0])
def test_a_count_retention_keeps_the_newest_messages(outage):
    a = run(gaps([5.0] * N, [5.0 + outage] * N), N, Resume(messages=5, time=None))
    n = a.replayed_per_gap + a.lost_per_gap
    assert np.array_equal(a.lost_per_gap, np.maximum(n - 5, 0))
    assert (a.replayed_per_gap == np.minimum(n, 5)).all()


def test_the_tighter_of_count_and_time_retention_applies():
    a = run(gaps([5.0] * N, [25.0] * N), N, Resume(messages=15, time=8.0))
    assert (a.replayed_per_gap == 8).all()  # 8 s of messages beat the 15-message bound
    b = run(gaps([5.0] * N, [25.0] * N), N, Resume(messages=4, time=8.0))
    assert (b.replayed_per_gap == 4).all()


def test_without_a_replay_buffer_every_message_of_the_outage_is_lost():
    a = run(gaps([5.0] * N, [15.0] * N), N, None)
    assert a.replayed == 0 and a.duplicates == 0
    assert a.lost == 10 * N
    assert a.peak == 0


def test_a_client_that_gave_up_loses_everything_after_the_break():
    a = run(gaps([5.0] * N, [INF] * N, gave_up=[True] * N), N, Resume(time=10.0))
    assert a.lost == 95 * N and a.pending == 0 and a.replayed == 0


def test_at_the_horizon_a_client_still_trying_has_pending_and_lost_messages():
    a = run(gaps([5.0] * N, [INF] * N), N, Resume(time=10.0))
    assert a.pending == 10 * N  # the last 10 s are still buffered
    assert a.lost == 85 * N


@pytest.mark.parametrize("process", ["periodic", "poisson"])
def test_delivered_plus_lost_plus_pending_is_published(process):
    g = rng(1)
    clients = 300
    half = clients // 2
    who = np.concatenate([np.arange(clients), np.arange(half)])
    start = g.uniform(0, 20, clients)
    end = start + g.exponential(15, clients)
    again = end[:half] + g.uniform(1, 10, half)  # half the clients break a second time
    start = np.concatenate([start, again])
    end = np.concatenate([end, again + g.exponential(15, half)])
    end[half:clients][g.random(clients - half) < 0.2] = INF  # some never come back
    end[clients:][g.random(half) < 0.2] = INF
    gave_up = np.isinf(end) & (g.random(len(end)) < 0.5)
    prev = np.concatenate([np.full(clients, -INF), end[:half]])
    a = run(
        gaps(start, end, clients=who, gave_up=gave_up, prev=prev),
        clients,
        Resume(messages=12, time=20.0, commit_interval=3.0),
        rate=0.7,
        process=process,
        seed=2,
    )
    assert a.published == a.delivered + a.lost + a.pending
    if process == "periodic":
        assert abs(a.published - 0.7 * 100 * clients) <= clients  # 70 per client, +-1
    else:
        expected = 0.7 * 100 * clients
        assert abs(a.published - expected) <= 4 * math.sqrt(expected)


def test_lazy_acknowledgements_make_duplicates():
    # the client acknowledges every 10 s: at the break the messages since its last
    # acknowledgement (U(0, 10) s of them) are replayed again: 5 per resume on average
    a = run(gaps([50.0] * N, [52.0] * N), N, Resume(time=60.0, commit_interval=10.0))
    per = a.duplicates / N
    assert abs(per - 5.0) <= 4 * math.sqrt(100 / 12 / N)
    assert a.lost == 0
    # a connection opened 1 s before the break was acknowledged then: at most 1-2 duplicates
    b = run(
        gaps([50.0] * N, [52.0] * N, prev=[49.0] * N),
        N,
        Resume(time=60.0, commit_interval=10.0),
    )
    assert b.duplicates <= 2 * N
    assert run(gaps([50.0] * N, [52.0] * N), N, Resume(time=60.0)).duplicates == 0


def test_poisson_losses_have_the_expected_mean():
    a = run(
        gaps([5.0] * N, [25.0] * N),
        N,
        Resume(messages=None, time=10.0),
        rate=2.0,
        process="poisson",
    )
    expected = N * 2.0 * 10.0  # the first 10 s of the 20 s outage fall out of the buffer
    assert abs(a.lost - expected) <= 4 * math.sqrt(expected)


def test_the_buffer_holds_one_retention_window_per_broken_session():
    edges = np.array([10.0, 30.0, 49.0, 51.0, 80.0])
    a = run(gaps([0.0] * N, [50.0] * N), N, Resume(time=20.0), edges=edges)
    assert a.peak == 20 * N  # messages of the last 20 s: exactly 20 per client
    assert a.level.tolist() == [10 * N, 20 * N, 20 * N, 0, 0]
    b = run(gaps([0.0] * N, [50.0] * N), N, Resume(messages=5, time=None))
    assert b.peak == 5 * N


def test_no_stream_no_messages():
    a = run(gaps([5.0], [10.0]), 1, Resume(), rate=0.0)
    assert (a.published, a.lost, a.peak) == (0, 0, 0)
