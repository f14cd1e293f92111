"""Tests for simlab.engines.analytic.theory: the reference's worked examples, identities, limits, Monte Carlo.

Worked examples come from /work/shared/reference/failure-detectors.md (Chen, Toueg,
Aguilera 2002 and derived k-missed results).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.engines.analytic.theory import (
    CrashLatency,
    NfdQos,
    k_missed_monitor,
    k_missed_reset_rounds,
    nfd_s_configure,
    nfd_s_qos,
    pingpong_round_failure,
    poisson_interval,
    timeout_crash_latency,
)
from simlab.scenario.distributions import Constant, Exponential, Lognormal, Pareto, Uniform

DAY = 86400.0
ALL_DELAYS = [
    Constant(0.3),
    Uniform(0.1, 0.5),
    Exponential(0.2),
    Lognormal(0.2, 0.5),
    Pareto(0.1, 1.5),
]


def rel(x: float) -> object:
    return pytest.approx(x, rel=1e-3)


# --- NFD-S QoS ------------------------------------------------------------------------


def test_reference_configuration_point():
    qos = nfd_s_qos(eta=9.9762, delta=20.0238, p_loss=0.01, delay=Exponential(0.02))
    assert qos.mistake_recurrence_mean / DAY == rel(30.8)
    assert qos.mistake_duration_mean == rel(2.66)
    assert qos.detection_time_bound == pytest.approx(30.0)


def test_third_heartbeat_at_freshness_point():
    # eta = 10, delta = 20: m_2 is sent exactly at tau_0, so u(0) = p_L^2
    qos = nfd_s_qos(eta=10, delta=20, p_loss=0.01, delay=Exponential(0.02))
    assert qos.mistake_recurrence_mean / DAY == rel(1.17)
    assert qos.p_s == pytest.approx(0.99 * 0.01**2, rel=1e-9)


@pytest.mark.parametrize("delay", ALL_DELAYS, ids=lambda d: type(d).__name__)
def test_self_consistency(delay):
    qos = nfd_s_qos(eta=1.0, delta=0.3, p_loss=0.1, delay=delay)
    assert isinstance(qos, NfdQos)
    assert qos.mistake_recurrence_mean == pytest.approx(1 / qos.mistake_rate, rel=1e-12)
    assert qos.query_accuracy == pytest.approx(
        1 - qos.mistake_rate * qos.mistake_duration_mean, rel=1e-12
    )
    assert 0 < qos.query_accuracy < 1
    assert qos.mistake_duration_mean > 0


@pytest.mark.parametrize("delay", ALL_DELAYS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize(("eta", "delta"), [(1.0, 0.3), (0.25, 0.6)])
def test_query_accuracy_against_riemann_sum(delay, eta, delta):
    """1 - P_A is the mean of u over [0, eta); recompute u here from delay.sf directly."""
    p_loss, n = 0.1, 4000
    xs = (np.arange(n) + 0.5) / n * eta
    sf = np.vectorize(delay.sf, otypes=[float])
    u = np.ones(n)
    for j in range(math.floor((delta + eta) / eta) + 1):
        args = delta + xs - j * eta
        u *= np.where(args < 0, 1.0, p_loss + (1 - p_loss) * sf(args))
    qos = nfd_s_qos(eta=eta, delta=delta, p_loss=p_loss, delay=delay)
    assert 1 - qos.query_accuracy == pytest.approx(u.mean(), rel=2e-3)


def test_never_trusts_when_no_heartbeat_can_arrive_in_time():
    # delta + eta = 2 is below D's support [5, 6]: q never trusts p, so no S-transitions
    qos = nfd_s_qos(eta=1.0, delta=1.0, p_loss=0.0, delay=Uniform(5.0, 6.0))
    assert qos.p_s == 0
    assert qos.mistake_rate == 0
    assert qos.mistake_recurrence_mean == math.inf
    assert math.isnan(qos.mistake_duration_mean)
    assert qos.query_accuracy == 0


@pytest.mark.parametrize("delay", [Uniform(0.1, 0.2), Constant(0.2)], ids=["uniform", "constant"])
def test_no_mistakes_without_loss_when_delta_covers_the_delay(delay):
    qos = nfd_s_qos(eta=1.0, delta=0.2, p_loss=0.0, delay=delay)
    assert qos.p_s == 0
    assert qos.mistake_recurrence_mean == math.inf
    assert qos.query_accuracy == 1


def _simulate_nfd_s(eta, delta, p_loss, mean_delay, n, rng):
    """Per freshness interval: (S-transition at tau_i?, seconds suspected in [tau_i, tau_i+1))."""
    send = np.arange(n) * eta
    lost = rng.random(n) < p_loss
    arrival = np.where(lost, np.inf, send + rng.exponential(mean_delay, n))
    # q trusts at t in [tau_i, tau_{i+1}) iff some m_j, j >= i, arrived by t
    earliest = np.minimum.accumulate(arrival[::-1])[::-1]
    tau = send + delta
    suspected = np.clip(earliest - tau, 0.0, eta)
    trusted_before = earliest[:-1] < tau[1:]
    s_transition = trusted_before & (earliest[1:] > tau[1:])
    return s_transition, suspected[1:]


def test_nfd_s_against_monte_carlo():
    eta, delta, p_loss, mean_delay = 1.0, 0.3, 0.1, 0.2
    n, batches = 400_000, 40
    s_trans, suspected = _simulate_nfd_s(
        eta, delta, p_loss, mean_delay, n, np.random.default_rng(7)
    )
    # drop the tail: the last intervals have no later heartbeats
    size = (len(s_trans) - 100) // batches
    s_trans = s_trans[: size * batches].reshape(batches, size)
    suspected = suspected[: size * batches].reshape(batches, size)
    rate = s_trans.sum(axis=1) / (size * eta)
    accuracy = 1 - suspected.sum(axis=1) / (size * eta)
    duration = suspected.sum(axis=1) / s_trans.sum(axis=1)

    qos = nfd_s_qos(eta=eta, delta=delta, p_loss=p_loss, delay=Exponential(mean_delay))
    for estimates, exact in (
        (rate, qos.mistake_rate),
        (accuracy, qos.query_accuracy),
        (duration, qos.mistake_duration_mean),
    ):
        stderr = estimates.std(ddof=1) / math.sqrt(batches)
        assert abs(estimates.mean() - exact) < 4 * stderr


@pytest.mark.parametrize("delay", ALL_DELAYS, ids=lambda d: type(d).__name__)
def test_vectorised_sf_matches_the_distribution(delay):
    """theory._sf re-implements each family's sf for speed; it must not drift from it."""
    from simlab.engines.analytic.theory import _sf

    xs = np.concatenate([np.linspace(-1, 3, 401), [0.0, 0.1, 0.2, 0.3, 0.5]])
    expected = np.array([delay.sf(x) for x in xs])
    np.testing.assert_allclose(_sf(delay, xs), expected, rtol=1e-12, atol=1e-15)


def test_nfd_s_rejects_bad_input():
    with pytest.raises(ValueError):
        nfd_s_qos(eta=0, delta=1, p_loss=0.1, delay=Constant(0.1))
    with pytest.raises(ValueError):
        nfd_s_qos(eta=1, delta=1, p_loss=1.5, delay=Constant(0.1))


# --- configuration ----------------------------------------------------------------------


def test_configure_reference_example():
    delay = Exponential(0.02)
    eta, delta = nfd_s_configure(
        max_detection=30,
        min_mistake_recurrence=30 * DAY,
        max_mistake_duration=60,
        p_loss=0.01,
        delay=delay,
    )
    assert eta == pytest.approx(9.9762, rel=1e-4)
    assert delta == pytest.approx(20.0238, rel=1e-4)
    assert eta + delta == pytest.approx(30)
    qos = nfd_s_qos(eta=eta, delta=delta, p_loss=0.01, delay=delay)
    assert qos.mistake_recurrence_mean >= 30 * DAY
    # eta sits at the crossing f(eta) = T_MR^L, and E(T_MR) = f(eta) / q_0 here
    assert qos.mistake_recurrence_mean == pytest.approx(30 * DAY / 0.99, rel=1e-6)
    assert qos.mistake_duration_mean <= 60


def test_configure_takes_the_largest_eta_when_f_jumps():
    # Constant delay 0.7, T_D^U = 10: f(eta) = eta / p_L^3 on ((10 - 0.7)/4, 3.1] but only
    # eta / p_L^2 just above 3.1, so the answer is the breakpoint 3.1 itself
    eta, delta = nfd_s_configure(
        max_detection=10,
        min_mistake_recurrence=1e5,
        max_mistake_duration=20,
        p_loss=0.01,
        delay=Constant(0.7),
    )
    assert eta == pytest.approx(3.1, rel=1e-9)
    assert delta == pytest.approx(6.9, rel=1e-9)


@pytest.mark.parametrize("delay", ALL_DELAYS, ids=lambda d: type(d).__name__)
def test_configure_meets_the_targets(delay):
    targets = {"max_detection": 10.0, "min_mistake_recurrence": 1e6, "max_mistake_duration": 5.0}
    eta, delta = nfd_s_configure(**targets, p_loss=0.05, delay=delay)
    qos = nfd_s_qos(eta=eta, delta=delta, p_loss=0.05, delay=delay)
    assert qos.detection_time_bound <= 10.0 + 1e-9
    assert qos.mistake_recurrence_mean >= 1e6
    assert qos.mistake_duration_mean <= 5.0


def test_configure_infeasible():
    with pytest.raises(ValueError, match="infeasible"):
        nfd_s_configure(30, 30 * DAY, 60, p_loss=0.01, delay=Constant(40))
    with pytest.raises(ValueError, match="infeasible"):
        # 1% delivery: even at the scan floor eta = 0.03 s, f(eta) < 0.03 * 0.99**-1000 ~ 700 s
        nfd_s_configure(30, 1e6, 3000, p_loss=0.99, delay=Exponential(0.02))


# --- k missed heartbeats ----------------------------------------------------------------


def test_k_missed_worked_example():
    qos = k_missed_monitor(period=1.0, p_loss=0.1, delay=0.05, timeout=3.5)
    assert qos.mistake_rate == rel(9.0e-4)
    assert qos.mistake_duration_mean == rel(0.611)
    assert qos.query_accuracy == pytest.approx(0.99945, rel=1e-6)
    assert qos.detection_time_bound == pytest.approx(3.55)


@pytest.mark.parametrize(
    ("period", "p", "d", "timeout"),
    [(1.0, 0.1, 0.05, 3.5), (2.0, 0.2, 0.3, 5.1), (30.0, 0.01, 0.1, 45.0), (5.0, 0.3, 4.9, 19.0)],
)
def test_k_missed_closed_form(period, p, d, timeout):
    k = math.floor(timeout / period)
    s = (k + 1) * period - timeout
    rate = (1 - p) * p**k / period
    duration = (s + p * (period - s)) / (1 - p)
    qos = k_missed_monitor(period=period, p_loss=p, delay=d, timeout=timeout)
    assert qos.mistake_rate == pytest.approx(rate, rel=1e-9)
    assert qos.mistake_duration_mean == pytest.approx(duration, rel=1e-9)
    assert qos.query_accuracy == pytest.approx(1 - rate * duration, rel=1e-9)


def test_k_missed_rejects_delay_beyond_period():
    with pytest.raises(ValueError):
        k_missed_monitor(period=1.0, p_loss=0.1, delay=1.5, timeout=3.5)


def test_pingpong_reset_rounds_reference_example():
    q = pingpong_round_failure(p_up=0.01, p_down=0.01)
    assert q == pytest.approx(1 - 0.99**2)
    hours = k_missed_reset_rounds(q, 2) * 30 / 3600
    assert hours == pytest.approx(21.5, abs=0.05)
    assert hours == pytest.approx((1 / q + 1 / q**2) * 30 / 3600, rel=1e-12)


def test_reset_rounds_edge_cases():
    assert k_missed_reset_rounds(0.5, 1) == pytest.approx(2.0)
    assert k_missed_reset_rounds(0.5, 3) == pytest.approx(2 + 4 + 8)
    assert k_missed_reset_rounds(1.0, 4) == 4
    assert k_missed_reset_rounds(1 - 1e-12, 3) == pytest.approx(3.0, rel=1e-9)
    assert k_missed_reset_rounds(0.0, 2) == math.inf
    with pytest.raises(ValueError):
        k_missed_reset_rounds(0.5, 0)


# --- crash detection latency --------------------------------------------------------------


def test_crash_latency_worked_example():
    latency = timeout_crash_latency(period=1.0, p_loss=0.1, delay=0.05, timeout=3.5)
    assert isinstance(latency, CrashLatency)
    assert latency.mean == rel(2.939)
    assert latency.max == pytest.approx(3.55)
    approx = 3.5 + 0.05 - 0.5 - 0.1 / 0.9
    assert latency.mean == pytest.approx(approx, abs=1e-3)


def test_crash_latency_without_loss_is_uniform():
    latency = timeout_crash_latency(period=2.0, p_loss=0.0, delay=0.1, timeout=5.0)
    assert latency.mean == pytest.approx(5.0 + 0.1 - 1.0)
    assert latency.cdf(3.1) == pytest.approx(0, abs=1e-12)
    assert latency.cdf(4.1) == pytest.approx(0.5)
    assert latency.quantile(0.25) == pytest.approx(3.6)


def test_crash_latency_small_loss_approximation():
    latency = timeout_crash_latency(period=1.0, p_loss=0.01, delay=0.02, timeout=4.5)
    assert latency.mean == pytest.approx(4.52 - 0.5 - 0.01 / 0.99, rel=1e-6)


def test_crash_latency_distribution_against_monte_carlo():
    period, p, d, timeout, n = 1.0, 0.3, 0.05, 2.5, 200_000
    rng = np.random.default_rng(11)
    phase = rng.uniform(0, period, n)  # time since the last heartbeat sent before the crash
    lost = rng.random((n, 40)) < p  # the 40 heartbeats before the crash, newest first
    lag = np.argmin(lost, axis=1)  # index of the newest delivered one
    last_heard = -phase - lag * period + d  # relative to the crash
    detection = np.maximum(0.0, last_heard + timeout)

    latency = timeout_crash_latency(period=period, p_loss=p, delay=d, timeout=timeout)
    assert abs(detection.mean() - latency.mean) < 4 * detection.std() / math.sqrt(n)
    for t in (0.0, 0.4, 1.3, 2.0, 2.5):
        frac = np.mean(detection <= t)
        stderr = math.sqrt(max(frac * (1 - frac), 1e-6) / n)
        assert abs(frac - latency.cdf(t)) < 4 * stderr
    assert detection.max() <= latency.max


def test_crash_latency_quantile_inverts_cdf():
    latency = timeout_crash_latency(period=1.0, p_loss=0.1, delay=0.05, timeout=3.5)
    atom = latency.cdf(0.0)
    assert atom == pytest.approx(0.9 * 0.001 * 0.45 + 1e-4)
    assert latency.quantile(atom / 2) == 0
    for q in (0.01, 0.5, 0.9, 0.999):
        assert latency.cdf(latency.quantile(q)) == pytest.approx(q, abs=1e-9)
    assert latency.quantile(1.0) == pytest.approx(3.55)
    assert latency.cdf(-1) == 0 and latency.cdf(3.55) == 1


# --- Poisson rate intervals -----------------------------------------------------------------


def test_garwood_interval_known_values():
    assert poisson_interval(0, 1.0) == (0.0, pytest.approx(3.689, rel=1e-3))
    low, high = poisson_interval(10, 1.0)
    assert low == pytest.approx(4.795, rel=1e-3)
    assert high == pytest.approx(18.39, rel=1e-3)
    low, high = poisson_interval(count=10, exposure=100.0)
    assert (low, high) == (pytest.approx(0.04795, rel=1e-3), pytest.approx(0.1839, rel=1e-3))


def test_garwood_interval_level():
    narrow = poisson_interval(5, 1.0, level=0.5)
    wide = poisson_interval(5, 1.0, level=0.99)
    assert wide[0] < narrow[0] < 5 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        poisson_interval(-1, 1.0)


# -- NAT survival ---------------------------------------------------------------------------------


def test_nat_survival_closed_forms():
    from simlab.engines.analytic.theory import nat_survival

    # one lost heartbeat at 30 s makes a 60 s silence: expired (a refresh at the expiry is late)
    r = nat_survival(30, 60, 0.1)
    assert r.p_gap_too_long == pytest.approx(0.1) and not r.survives
    assert r.mean_time_to_expiry == pytest.approx(30 * 0.9 / 0.1 + 60)
    assert nat_survival(30, 25).mean_time_to_expiry == 25  # the first silence already too long
    assert nat_survival(30, 60, 0.0, 0.5).survives  # gaps of 15..45 s never reach 60 s
    # jitter: two heartbeats' sum in [48, 72] s reaches 60 s half the time
    j = nat_survival(30, 60, 0.1, 0.2)
    assert j.p_gap_too_long == pytest.approx(0.9 * 0.1 * 0.5 + 0.1**2, rel=1e-3)


@pytest.mark.parametrize("loss, jitter", [(0.1, 0.0), (0.15, 0.3)])
def test_nat_survival_matches_the_model(loss, jitter):
    import simlab
    from simlab.engines.analytic.theory import nat_survival

    s = simlab.load_scenario(
        {
            "horizon": "20000s",
            "connections": 8,
            "seed": 41,
            "heartbeat": {
                "style": "oneway",
                "initiator": "client",
                "interval": "10s",
                "jitter": jitter,
            },
            "detector": {"timeout": "25s"},
            "link": {"transport": "datagram", "loss": loss, "delay": "40ms"},
            "nat": {"idle_timeout": "20s"},
        }
    )
    rec = simlab.simulate(s).records
    opened = rec[rec.event == "open"].set_index(["slot", "connection"]).time
    broke = (
        rec[(rec.event == "break") & (rec.detail == "nat")].set_index(["slot", "connection"]).time
    )
    life = (broke - opened.loc[broke.index]).to_numpy()
    theory = nat_survival(10, 20, loss, jitter)
    assert len(life) > 300
    se = life.std(ddof=1) / np.sqrt(len(life))
    assert abs(life.mean() - theory.mean_time_to_expiry) < 4 * se
