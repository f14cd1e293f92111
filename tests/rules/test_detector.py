"""Tests for simlab.rules.detector: hand-written timelines in, exact declarations out.

Each timeline is replayed the way a driver (the SimPy model, the socket harness) uses a
detector: after every input it reads ``deadline()``; the peer is suspected at ``t`` iff
``t >= deadline()``. Formulas come from /work/shared/reference/failure-detectors.md
(Chen, Toueg and Aguilera's NFD-S and NFD-E; phi accrual as Akka implements it).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import simlab
from simlab.rules import detector as detector_module
from simlab.rules.detector import (
    AdaptiveDetector,
    MissedDetector,
    NfdDetector,
    PhiDetector,
    TimeoutDetector,
    make_detector,
)

INF = math.inf
NAN = math.nan  # default send time: detectors that must not read it would turn it into nan


# --- timelines ---------------------------------------------------------------------------


def hb(t: float, seq: int, sent_at: float = NAN) -> tuple:
    """Heartbeat (or the pong to our ping) ``seq`` arrives at ``t``."""
    return (t, "heartbeat", (seq, sent_at))


def ping(t: float, seq: int) -> tuple:
    """We send ping ``seq`` at ``t``."""
    return (t, "sent", (seq,))


def msg(t: float, heartbeat: bool = False) -> tuple:
    """Some other message arrives at ``t``."""
    return (t, "message", (heartbeat,))


def replay(det, events, until: float = INF) -> list[tuple[str, float]]:
    """Feed ``events`` in order; return the transitions as ("S", t) trust->suspect, ("T", t).

    After each input at ``t``: suspected and deadline > t is a T-transition; trusted and
    deadline <= t is an S-transition at t. Then, if still trusted and the deadline comes
    no later than the next event (or ``until``), a suspicion starts at the deadline.
    """
    times = [e[0] for e in events]
    assert times == sorted(times), "a timeline is written in time order"
    out: list[tuple[str, float]] = []
    suspected = False
    first = times[0] if times else until
    d = det.deadline()
    if d <= first:
        out.append(("S", d))
        suspected = True
    for i, (t, name, args) in enumerate(events):
        getattr(det, name)(t, *args)
        d = det.deadline()
        if suspected and d > t:
            out.append(("T", t))
            suspected = False
        elif not suspected and d <= t:
            out.append(("S", t))
            suspected = True
        nxt = times[i + 1] if i + 1 < len(events) else until
        if not suspected and d <= nxt and d < INF:
            out.append(("S", d))
            suspected = True
    return out


def check(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [k for k, _ in got] == [k for k, _ in expected], got
    assert [t for _, t in got] == pytest.approx([t for _, t in expected], rel=1e-12, abs=1e-12)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12)


def test_replay_helper_on_a_stub():
    class Stub:
        def __init__(self):
            self.d = 5.0

        def deadline(self):
            return self.d

        def heartbeat(self, t, seq, sent_at):
            self.d = t + 2.0

    # 1 -> 3; 2 -> 4; nothing until 7: S at 4, T at 7 (-> 9), S at 9 before the end.
    got = replay(Stub(), [hb(1.0, 1), hb(2.0, 2), hb(7.0, 3)], until=10.0)
    check(got, [("S", 4.0), ("T", 7.0), ("S", 9.0)])
    # A deadline equal to the next event's time starts a suspicion at that time.
    check(replay(Stub(), [hb(5.0, 1)]), [("S", 5.0), ("T", 5.0), ("S", 7.0)])
    check(replay(Stub(), [hb(1.0, 1)], until=2.9), [])


# --- timeout -----------------------------------------------------------------------------


def test_timeout_deadline_is_last_liveness_plus_timeout():
    det = TimeoutDetector(10.0, 3.0)
    assert det.deadline() == approx(13.0)
    assert not det.suspects(12.999) and det.suspects(13.0)
    det.heartbeat(11.5, 1, NAN)
    assert det.deadline() == approx(14.5)
    det.heartbeat(11.0, 2, NAN)  # older: does not move it back
    assert det.deadline() == approx(14.5)
    det.heartbeat(12.25, 3, NAN)
    assert det.deadline() == approx(15.25)


def test_timeout_application_messages_count_only_with_liveness_any():
    strict, loose = TimeoutDetector(0.0, 2.0), TimeoutDetector(0.0, 2.0, liveness="any")
    for det in (strict, loose):
        det.heartbeat(1.0, 1, NAN)
        det.message(1.5)
    assert strict.deadline() == approx(3.0)
    assert loose.deadline() == approx(3.5)
    loose.message(1.2)  # older: no effect
    assert loose.deadline() == approx(3.5)


def test_timeout_heartbeat_traffic_message_always_counts():
    for live in ("heartbeats", "any"):
        det = TimeoutDetector(0.0, 2.0, liveness=live)
        det.message(1.75, heartbeat=True)
        assert det.deadline() == approx(3.75)
        det.message(1.5, heartbeat=True)
        assert det.deadline() == approx(3.75)


def test_timeout_monitor_declaration_then_late_heartbeat_trusts_again():
    events = [hb(1.0, 1), hb(2.0, 2), hb(3.0, 3), hb(6.2, 4), hb(7.0, 5)]
    got = replay(TimeoutDetector(0.0, 2.5), events, until=20.0)
    check(got, [("S", 5.5), ("T", 6.2), ("S", 9.5)])


def test_timeout_timeline_app_traffic_depends_on_liveness():
    events = [hb(1.0, 1), msg(2.0), msg(3.0), hb(5.0, 2), msg(6.0, heartbeat=True)]
    check(replay(TimeoutDetector(0.0, 2.5), events), [("S", 3.5), ("T", 5.0), ("S", 8.5)])
    check(replay(TimeoutDetector(0.0, 2.5, "any"), events), [("S", 8.5)])


# --- k missed pings ----------------------------------------------------------------------


def test_missed_declares_exactly_at_kth_consecutive_window_end():
    # k = 3, ping i sent at i, window (i, i + 1]: pings 1, 2, 3 unanswered -> S at 4.
    events = [ping(float(i), i) for i in range(1, 7)]
    check(replay(MissedDetector(0.0, 3, 1.0), events), [("S", 4.0)])
    # One pong in time (ping 2, at 2.4) -> the streak restarts with ping 3: S at 6.
    events = [ping(1.0, 1), ping(2.0, 2), hb(2.4, 2)] + [ping(float(i), i) for i in range(3, 8)]
    check(replay(MissedDetector(0.0, 3, 1.0), events), [("S", 6.0)])


def test_missed_deadline_is_inf_until_enough_pings_are_pending():
    det = MissedDetector(0.0, 3, 1.0)
    assert det.deadline() == INF
    det.sent(1.0, 1)
    assert det.deadline() == INF
    det.sent(2.0, 2)
    assert det.deadline() == INF
    det.sent(3.0, 3)  # ping 1 missed (window closed at 2); 2 more pending windows needed
    assert det.deadline() == approx(4.0)
    det.heartbeat(3.5, 3, 3.0)  # 2's window closed at 3: a miss; 3 answered: count restarts
    assert det.deadline() == INF
    assert not det.suspects(1e9)


def test_missed_answered_ping_resets_count_and_ends_a_suspicion():
    # k = 2: 1 answered; 2 missed; 3 answered (reset); 4, 5 missed -> S at 6 (end of 5's
    # window); 6 missed too; 7 answered at 7.3 -> T; 8 pending alone: no deadline.
    events = [
        ping(1.0, 1),
        hb(1.1, 1, 1.0),
        ping(2.0, 2),
        ping(3.0, 3),
        hb(3.5, 3, 3.0),
        ping(4.0, 4),
        ping(5.0, 5),
        ping(6.0, 6),
        ping(7.0, 7),
        hb(7.3, 7, 7.0),
        ping(8.0, 8),
    ]
    det = MissedDetector(0.0, 2, 1.0)
    check(replay(det, events), [("S", 6.0), ("T", 7.3)])
    assert det.deadline() == INF


def test_missed_pong_answers_its_ping_and_all_earlier_waiting_ones():
    both = MissedDetector(0.0, 1, 1.0)
    both.sent(0.0, 1)
    both.sent(0.5, 2)
    assert both.deadline() == approx(1.0)
    both.heartbeat(0.8, 2, 0.5)  # cumulative: answers 1 and 2
    assert both.deadline() == INF

    own = MissedDetector(0.0, 1, 1.0)
    own.sent(0.0, 1)
    own.sent(0.5, 2)
    own.heartbeat(0.8, 1, 0.0)  # answers 1 only; 2 still waits
    assert own.deadline() == approx(1.5)


def test_missed_late_pong_answers_nothing():
    det = MissedDetector(0.0, 2, 1.0)
    det.sent(0.0, 1)  # window closes at 1
    det.sent(1.0, 2)  # window closes at 2
    assert det.deadline() == approx(2.0)
    det.heartbeat(1.2, 1, 0.0)  # late: ping 1 is a miss, ping 2 is not answered
    assert det.deadline() == approx(2.0)
    assert det.suspects(2.0)
    # Whereas a pong at exactly the end of the window is in time.
    det = MissedDetector(0.0, 2, 1.0)
    det.sent(0.0, 1)
    det.sent(1.0, 2)
    det.heartbeat(1.0, 1, 0.0)
    assert det.deadline() == INF


def test_missed_late_pong_timeline_still_declares():
    # k = 2; pongs to 1 and 2 arrive after their windows: S at 3 (end of 2's window);
    # the late pong to 3 (at 4.5) does not end it; the pong to 5 in time does.
    events = [
        ping(1.0, 1),
        ping(2.0, 2),
        hb(2.5, 1, 1.0),
        ping(3.0, 3),
        hb(3.7, 2, 2.0),
        ping(4.0, 4),
        hb(4.5, 3, 3.0),
        ping(5.0, 5),
        hb(5.2, 5, 5.0),
    ]
    check(replay(MissedDetector(0.0, 2, 1.0), events), [("S", 3.0), ("T", 5.2)])


def test_missed_liveness_any_message_answers_waiting_pings():
    loose = MissedDetector(0.0, 1, 1.0, liveness="any")
    strict = MissedDetector(0.0, 1, 1.0)
    for det in (loose, strict):
        det.sent(0.0, 1)
        det.sent(0.5, 2)
        det.message(0.7)
        det.sent(0.9, 3)
    assert loose.deadline() == approx(1.9)  # 1 and 2 answered, 3 was sent after it
    assert strict.deadline() == approx(1.0)
    events = [ping(1.0, 1), msg(1.5), ping(2.0, 2), ping(3.0, 3), ping(4.0, 4), msg(4.2)]
    check(replay(MissedDetector(0.0, 2, 1.0, "any"), events), [("S", 4.0), ("T", 4.2)])
    # Without liveness any, pings 1 and 2 are both missed: S at 3, and the message at 4.2
    # answers nothing.
    check(replay(MissedDetector(0.0, 2, 1.0), events), [("S", 3.0)])


def test_missed_overlapping_windows():
    # interval 1, ack_timeout 2.5, k = 2: ping i's window closes at i + 2.5.
    silent = [ping(float(i), i) for i in range(1, 8)]
    check(replay(MissedDetector(0.0, 2, 2.5), silent), [("S", 4.5)])

    det = MissedDetector(0.0, 2, 2.5)
    for i in (1, 2, 3):
        det.sent(float(i), i)
    assert det.deadline() == approx(4.5)
    det.heartbeat(2.2, 1, 1.0)  # in time, answers only 1; 2 and 3 still wait
    assert det.deadline() == approx(5.5)
    det.heartbeat(3.2, 3, 3.0)  # answers 2 and 3 as well (cumulative)
    assert det.deadline() == INF

    # Late pong to 1 (window closed at 3.5) while 2 and 3 wait: answers nothing.
    det = MissedDetector(0.0, 2, 2.5)
    for i in (1, 2, 3):
        det.sent(float(i), i)
    det.heartbeat(3.7, 1, 1.0)
    assert det.deadline() == approx(4.5)

    # Silence, S at 4.5; pong to 3 at 5.2 (its window closes at 5.5) ends it; then 4, 5 miss.
    events = [ping(float(i), i) for i in range(1, 6)]
    events += [hb(5.2, 3, 3.0), ping(6.0, 6), ping(7.0, 7), ping(8.0, 8)]
    check(replay(MissedDetector(0.0, 2, 2.5), events), [("S", 4.5), ("T", 5.2), ("S", 7.5)])


# --- phi accrual -------------------------------------------------------------------------


def akka_phi(silence: float, mean: float, std: float) -> float:
    """Akka's phi, written in a form that neither overflows nor takes log10(0)."""
    y = (silence - mean) / std
    z = y * (1.5976 + 0.070566 * y * y)  # phi = log10(1 + exp(z))
    return (
        (z + math.log1p(math.exp(-z))) / math.log(10)
        if z > 0
        else math.log1p(math.exp(z)) / math.log(10)
    )


def phi_quantile(threshold: float) -> float:
    """The y at which Akka's phi reaches ``threshold``, by bisection."""
    lo, hi = -50.0, 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if akka_phi(mid, 0.0, 1.0) < threshold:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def regular_phi(n: int = 1200, **kw) -> PhiDetector:
    args = dict(threshold=8.0, first_estimate=1.0, window=1000, min_std=0.1)
    args.update(kw)
    det = PhiDetector(0.0, **args)
    for i in range(1, n + 1):
        det.heartbeat(float(i), i, NAN)
    return det


def akka_history(arrivals, threshold, first_estimate, window=1000, min_std=0.1, pause=0.0):
    """Independent replay of Akka's rule with numpy: the kept samples and the final deadline.

    A heartbeat adds its interval only if it arrives before the deadline then in force
    (phi < threshold); the opening at time 0 stands for the first heartbeat.
    """
    samples = [first_estimate * 0.75, first_estimate * 1.25]
    last = 0.0

    def deadline():
        held = np.array(samples[-window:])
        return last + held.mean() + pause + phi_quantile(threshold) * max(held.std(), min_std)

    for t in arrivals:
        if t < deadline():
            samples.append(t - last)
        last = float(t)
    return np.array(samples[-window:]), deadline()


def irregular_phi(seed: int, n: int, **kw) -> tuple[PhiDetector, np.ndarray]:
    rng = np.random.default_rng(seed)
    gaps = rng.uniform(0.5, 1.5, n)
    arrivals = np.cumsum(gaps)
    det = PhiDetector(0.0, **kw)
    for i, t in enumerate(arrivals, 1):
        det.heartbeat(float(t), i, NAN)
    return det, arrivals


def test_phi_reference_number_akka_defaults():
    # Regular 1 s heartbeats, threshold 8, min_std 100 ms, pause 3 s: 4522.6 ms of silence.
    det = regular_phi(acceptable_pause=3.0)
    assert len(det.samples) == 1000 and set(det.samples) == {1.0}  # bootstrap samples gone
    silence = det.deadline() - 1200.0
    assert silence * 1000 == pytest.approx(4522.6, abs=0.5)
    assert silence == approx(4.0 + 0.1 * phi_quantile(8.0))


@pytest.mark.parametrize("threshold", [0.2, 1.0, 3.0, 8.0, 12.0])
@pytest.mark.parametrize(
    "seed, n, min_std, pause",
    [(1, 40, 0.1, 0.0), (2, 300, 0.05, 0.5), (3, 1500, 0.5, 2.0), (4, 3, 0.01, 0.0)],
)
def test_phi_at_deadline_equals_threshold(threshold, seed, n, min_std, pause):
    det, arrivals = irregular_phi(
        seed, n, threshold=threshold, first_estimate=0.8, min_std=min_std, acceptable_pause=pause
    )
    assert det.phi(det.deadline()) == pytest.approx(threshold, rel=1e-9)
    samples, expected = akka_history(arrivals, threshold, 0.8, min_std=min_std, pause=pause)
    assert list(det.samples) == pytest.approx(list(samples), rel=1e-12)
    assert det.deadline() == pytest.approx(expected, rel=1e-12)
    assert not det.suspects(np.nextafter(det.deadline(), -INF))
    assert det.suspects(det.deadline())


def test_phi_is_monotone_in_the_silence():
    det, arrivals = irregular_phi(5, 200, threshold=8.0, first_estimate=1.0, min_std=0.1)
    last = float(arrivals[-1])
    ts = last + np.linspace(0.0, 5.0, 1001)
    phis = np.array([det.phi(float(t)) for t in ts])
    assert np.all(np.diff(phis) >= 0)
    assert phis[-1] > 8.0 > phis[0]
    assert np.all((phis >= 8.0) == (ts >= det.deadline()))
    samples = np.concatenate([[0.75, 1.25], np.diff(np.concatenate([[0.0], arrivals]))])
    mean, std = samples.mean(), max(samples.std(), 0.1)
    for t, p in zip(ts[::50], phis[::50], strict=True):
        assert p == pytest.approx(akka_phi(t - last, mean, std), rel=1e-9, abs=1e-12)


def test_phi_bootstrap_from_first_estimate():
    det = PhiDetector(5.0, threshold=3.0, first_estimate=2.0, min_std=0.1)
    assert list(det.samples) == [1.5, 2.5]  # mean +- mean/4: std 0.5
    assert det.deadline() == approx(5.0 + 2.0 + 0.5 * phi_quantile(3.0))
    # The opening is heartbeat 0: the first heartbeat adds the interval since ``start``.
    det.heartbeat(6.75, 1, NAN)
    samples = np.array([1.5, 2.5, 1.75])
    assert det.deadline() == approx(6.75 + samples.mean() + samples.std() * phi_quantile(3.0))
    # A small first estimate: std 0.05 is floored at min_std, the pause adds to the mean.
    det = PhiDetector(0.0, threshold=8.0, first_estimate=0.2, min_std=0.1, acceptable_pause=1.0)
    assert det.deadline() == approx(0.2 + 1.0 + 0.1 * phi_quantile(8.0))


@pytest.mark.parametrize("window", [2, 5, 17])
def test_phi_window_slides(window):
    det, arrivals = irregular_phi(
        11, 60, threshold=5.0, first_estimate=1.0, window=window, min_std=0.01
    )
    gaps = np.diff(np.concatenate([[0.0], arrivals]))
    recent, expected = akka_history(arrivals, 5.0, 1.0, window=window, min_std=0.01)
    assert len(recent) == window
    assert list(det.samples) == pytest.approx(list(recent), rel=1e-12)
    assert det.deadline() == pytest.approx(expected, rel=1e-12)
    # Early on, the window still holds the bootstrap samples.
    det = PhiDetector(0.0, threshold=5.0, first_estimate=1.0, window=window, min_std=0.01)
    all_samples = [0.75, 1.25]
    for i, t in enumerate(arrivals[:4], 1):
        det.heartbeat(float(t), i, NAN)
        all_samples.append(gaps[i - 1])
        held = np.array(all_samples[-window:])
        expected = t + held.mean() + phi_quantile(5.0) * max(held.std(), 0.01)
        assert det.deadline() == pytest.approx(expected, rel=1e-12)


def test_phi_stale_heartbeat_and_liveness_any_messages():
    det = regular_phi(n=10, threshold=8.0)
    before = (det.deadline(), list(det.samples))
    det.heartbeat(9.5, 99, NAN)  # older than the last arrival: ignored
    det.message(10.5)  # not liveness with liveness=heartbeats
    assert (det.deadline(), list(det.samples)) == before
    det.message(10.5, heartbeat=True)  # heartbeat traffic: moves the last arrival only
    assert list(det.samples) == before[1]
    assert det.deadline() == approx(before[0] + 0.5)

    loose = regular_phi(n=10, threshold=8.0, liveness="any")
    loose.message(10.25)
    assert list(loose.samples) == before[1]
    assert loose.deadline() == approx(before[0] + 0.25)


def test_phi_right_after_a_heartbeat_with_akka_defaults_is_zero():
    det = regular_phi(acceptable_pause=3.0)
    assert det.phi(1200.0) == pytest.approx(0.0, abs=1e-12)
    assert det.phi(1201.0) == pytest.approx(0.0, abs=1e-12)


def test_phi_long_silence_with_akka_defaults_keeps_growing():
    det = regular_phi(acceptable_pause=3.0)
    assert det.phi(1206.0) >= 8.0
    assert det.phi(1210.0) >= det.phi(1206.0)


def test_phi_messages_do_not_distort_the_heartbeat_history():
    pure = regular_phi(n=10, threshold=8.0, liveness="any")
    mixed = PhiDetector(0.0, threshold=8.0, first_estimate=1.0, min_std=0.1, liveness="any")
    for i in range(1, 11):
        mixed.message(i - 0.5)
        mixed.heartbeat(float(i), i, NAN)
    assert list(mixed.samples) == list(pure.samples)
    assert mixed.deadline() == approx(pure.deadline())


def test_phi_heartbeat_after_suspicion_is_not_added_like_akka():
    det = regular_phi(acceptable_pause=3.0)
    assert det.suspects(1210.0)
    det.heartbeat(1210.0, 1201, NAN)
    assert set(det.samples) == {1.0}
    assert det.deadline() == approx(1210.0 + 4.0 + 0.1 * phi_quantile(8.0))


# --- NFD-S -------------------------------------------------------------------------------


def test_nfd_initial_deadline_and_largest_sequence_number():
    det = NfdDetector(2.0, eta=1.0, delta=0.5)
    assert det.deadline() == approx(3.5)
    det.heartbeat(3.2, 1, 3.0)  # sigma_1 = 3
    assert det.deadline() == approx(4.5)
    det.heartbeat(5.1, 3, 5.0)  # 2 lost
    assert det.deadline() == approx(6.5)
    det.heartbeat(5.3, 2, 4.0)  # older, arrives later: no effect
    assert det.deadline() == approx(6.5)
    det.heartbeat(5.4, 3, 5.0)  # duplicate
    assert det.deadline() == approx(6.5)
    det.message(6.0, heartbeat=True)  # only the heartbeat stream counts
    det.message(6.0)
    assert det.deadline() == approx(6.5)
    nfd_any = NfdDetector(0.0, eta=1.0, delta=0.5, liveness="any")
    nfd_any.message(1.0)
    assert nfd_any.deadline() == approx(1.5)


ETA, DELTA = 1.0, 0.7
# Send times sigma_i = i, freshness points tau_i = i + 0.7. Losses: 3, 4, 10, 14, 15, 16...
# Reordering: 5 after 6, 12 after 13. 9 arrives just after tau_9.
NFD_ARRIVALS = {
    1: 1.1,
    2: 2.3,
    5: 6.9,
    6: 6.2,
    7: 7.1,
    8: 8.65,
    9: 9.75,
    11: 11.2,
    12: 13.1,
    13: 13.05,
}


def nfd_events() -> list[tuple]:
    order = sorted(NFD_ARRIVALS, key=NFD_ARRIVALS.get)
    return [hb(NFD_ARRIVALS[j], j, j * ETA) for j in order]


def chen_trusts(t: float) -> bool:
    """Chen's rule, evaluated directly: in [tau_i, tau_i+1) trust iff some m_j, j >= i, arrived."""
    i = math.floor((t - DELTA) / ETA)
    if i < 0:  # before tau_0
        return True
    received = [0] + [j for j, a in NFD_ARRIVALS.items() if a <= t]  # m_0: the opening
    return max(received) >= i


def test_nfd_timeline_with_losses_and_reordering():
    got = replay(NfdDetector(0.0, ETA, DELTA), nfd_events(), until=18.0)
    expected = [("S", 3.7), ("T", 6.2), ("S", 9.7), ("T", 9.75)]
    expected += [("S", 10.7), ("T", 11.2), ("S", 12.7), ("T", 13.05), ("S", 14.7)]
    check(got, expected)


def test_nfd_matches_chens_rule_at_many_times():
    events = nfd_events()
    for t in 0.0025 + 0.005 * np.arange(3600):  # 0 .. 18 s, never on a tau or an arrival
        t = float(t)
        det = NfdDetector(0.0, ETA, DELTA)
        for time, name, args in events:
            if time <= t:
                getattr(det, name)(time, *args)
        assert (not det.suspects(t)) == chen_trusts(t), t


# --- NFD-E -------------------------------------------------------------------------------


def test_adaptive_hand_timeline():
    det = AdaptiveDetector(0.0, eta=1.0, alpha=0.5, window=3)
    assert det.deadline() == approx(1.5)
    det.heartbeat(1.2, 1, NAN)  # offsets [0.2]
    assert det.deadline() == approx(0.2 + 2.0 + 0.5)
    det.heartbeat(2.1, 2, NAN)  # [0.2, 0.1]
    assert det.deadline() == approx(0.15 + 3.0 + 0.5)
    det.heartbeat(4.4, 4, NAN)  # 3 lost: [0.2, 0.1, 0.4]
    assert det.deadline() == approx(0.7 / 3 + 5.0 + 0.5)
    det.heartbeat(4.5, 3, NAN)  # stale
    det.heartbeat(4.6, 4, NAN)  # duplicate
    det.message(4.7, heartbeat=True)
    assert det.deadline() == approx(0.7 / 3 + 5.0 + 0.5)
    det.heartbeat(5.0, 5, NAN)  # window slides: [0.1, 0.4, 0.0]
    assert det.deadline() == approx(0.5 / 3 + 6.0 + 0.5)


def test_adaptive_timeline_declarations():
    # eta 1, alpha 0.5, window 3: 1 at 1.2 -> 2.7, 2 at 2.1 -> 3.65, silence -> S 3.65,
    # 4 at 4.4 -> 5.7333 (T), 3 (stale) at 4.5, 5 at 5.0 -> 6.6667; nothing after.
    events = [hb(1.2, 1), hb(2.1, 2), hb(4.4, 4), hb(4.5, 3), hb(5.0, 5)]
    got = replay(AdaptiveDetector(0.0, 1.0, 0.5, 3), events)
    check(got, [("S", 3.65), ("T", 4.4), ("S", 0.5 / 3 + 6.5)])


def test_adaptive_matches_numpy_on_a_random_timeline():
    rng = np.random.default_rng(20261126)
    eta, alpha, window, start = 0.5, 0.3, 20, 3.0
    n = 400
    seqs = np.arange(1, n + 1)
    arrivals = start + seqs * eta + rng.exponential(0.4, n)  # reorders often
    kept = rng.random(n) >= 0.1
    order = np.argsort(arrivals[kept], kind="stable")
    seqs, arrivals = seqs[kept][order], arrivals[kept][order]

    det = AdaptiveDetector(start, eta, alpha, window)
    accepted_seq, accepted_at = [], []
    expected = start + eta + alpha
    stale = 0
    for seq, t in zip(seqs, arrivals, strict=True):
        det.heartbeat(float(t), int(seq), NAN)
        if not accepted_seq or seq > accepted_seq[-1]:
            accepted_seq.append(seq)
            accepted_at.append(t)
            a, s = np.array(accepted_at[-window:]), np.array(accepted_seq[-window:])
            expected = np.mean(a - s * eta) + (seq + 1) * eta + alpha
        else:
            stale += 1
        assert det.deadline() == pytest.approx(expected, rel=1e-12)
    assert stale > 20  # the timeline does exercise reordering


# --- make_detector -----------------------------------------------------------------------


def scenario(detector: dict, interval="2s"):
    return simlab.load_scenario({"heartbeat": {"interval": interval}, "detector": detector})


def test_make_detector_timeout():
    det = make_detector(scenario({"kind": "timeout", "timeout": "5s", "liveness": "any"}), 7.0)
    assert type(det) is TimeoutDetector
    assert det.timeout == 5.0 and det.count_any and det.start == 7.0
    assert det.deadline() == approx(12.0)


def test_make_detector_missed_ack_timeout():
    det = make_detector(scenario({"kind": "missed", "missed": {"k": 3}}), 0.0)
    assert type(det) is MissedDetector
    assert (det.k, det.ack_timeout, det.count_any) == (3, 2.0, False)
    det = make_detector(scenario({"kind": "missed", "missed": {"ack_timeout": "1.5s"}}), 0.0)
    assert (det.k, det.ack_timeout) == (2, 1.5)
    s = scenario({"kind": "missed", "missed": {"ack_timeout": "3s", "overlap": True}})
    assert make_detector(s, 0.0).ack_timeout == 3.0


def test_make_detector_phi():
    det = make_detector(scenario({"kind": "phi"}), 1.0)
    assert type(det) is PhiDetector
    assert list(det.samples) == [1.5, 2.5]  # first_estimate defaults to the interval (2 s)
    assert (det.window, det.min_std, det.pause) == (1000, 0.1, 0.0)
    assert det.deadline() == approx(1.0 + 2.0 + 0.5 * phi_quantile(8.0))
    phi = {
        "threshold": 3,
        "window": 50,
        "min_std": "200ms",
        "acceptable_pause": "1s",
        "first_estimate": "4s",
    }
    det = make_detector(scenario({"kind": "phi", "phi": phi, "liveness": "any"}), 0.0)
    assert list(det.samples) == [3.0, 5.0]
    assert (det.window, det.min_std, det.pause, det.count_any) == (50, 0.2, 1.0, True)
    assert det.deadline() == approx(4.0 + 1.0 + 1.0 * phi_quantile(3.0))


def test_make_detector_nfd_delta():
    det = make_detector(scenario({"kind": "nfd", "timeout": "5s"}), 10.0)
    assert type(det) is NfdDetector
    assert (det.eta, det.delta) == (2.0, 3.0)  # delta = timeout - interval
    assert det.deadline() == approx(15.0)
    det = make_detector(scenario({"kind": "nfd", "nfd": {"delta": "0.5s"}}), 10.0)
    assert (det.eta, det.delta) == (2.0, 0.5)


def test_make_detector_adaptive_alpha():
    det = make_detector(scenario({"kind": "adaptive", "timeout": "7s"}), 0.0)
    assert type(det) is AdaptiveDetector
    assert (det.eta, det.alpha, det.window) == (2.0, 5.0, 100)  # alpha = timeout - interval
    s = scenario({"kind": "adaptive", "adaptive": {"alpha": "1s", "window": 8}})
    det = make_detector(s, 0.0)
    assert (det.eta, det.alpha, det.window) == (2.0, 1.0, 8)


# --- purity ------------------------------------------------------------------------------


def test_detector_module_is_pure():
    source = Path(detector_module.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
    forbidden = ("simpy", "asyncio", "time", "random", "numpy.random")
    bad = sorted(m for m in imported for f in forbidden if m == f or m.startswith(f + "."))
    assert not bad, bad
    assert "math" in imported  # the walk does see the module's imports
