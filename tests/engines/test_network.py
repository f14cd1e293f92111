"""Loss processes, the TCP retransmission timer and pre-drawn down periods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.engines.network import DownPeriods, LossProcess, RtoEstimator
from simlab.scenario.distributions import Constant
from simlab.scenario.schema import Loss, Tcp


def test_rto_follows_rfc6298_with_the_linux_floor():
    rto = RtoEstimator(Tcp())
    assert rto.rto == 1.0  # before any sample (RFC 6298 2.1)
    rto.sample(0.1)  # first sample: SRTT = R, RTTVAR = R/2
    assert (rto.srtt, rto.rttvar) == pytest.approx((0.1, 0.05))
    assert rto.rto == pytest.approx(0.1 + max(4 * 0.05, 0.2))
    rto.sample(0.3)  # RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT <- 7/8 SRTT + 1/8 R
    assert rto.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert rto.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert rto.rto == pytest.approx(rto.srtt + max(4 * rto.rttvar, 0.2))


def test_backoff_doubles_up_to_max_rto_and_linux_gives_up_after_about_924_seconds():
    rto = RtoEstimator(Tcp())
    rto.rto = 0.2
    assert [rto.backoff(i) for i in range(4)] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert rto.backoff(20) == 120.0
    # tcp_retries2 = 15 with a 200 ms start: the kernel documentation's ~924.6 s
    assert rto.give_up_after() == pytest.approx(924.6, abs=0.1)


def test_bernoulli_and_gilbert_loss_rates():
    rng = np.random.default_rng(3)
    n = 200_000
    bern = LossProcess(Loss(p=0.1), rng)
    rate = sum(bern.lost() for _ in range(n)) / n
    assert abs(rate - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)
    loss = Loss(model="gilbert", p_gb=0.02, p_bg=0.2, loss_good=0.01, loss_bad=0.5)
    ge = LossProcess(loss, rng)
    draws = np.array([ge.lost() for _ in range(n)])
    # correlated draws: the standard error from batch means (batches much longer than bursts)
    batches = draws.reshape(200, -1).mean(axis=1)
    se = batches.std(ddof=1) / math.sqrt(len(batches))
    assert abs(draws.mean() - loss.mean) < 4 * se
    after_loss = draws[1:][draws[:-1]].mean()
    assert after_loss > 2 * draws.mean()  # losses cluster


def test_down_periods_alternate_and_answer_any_time():
    rng = np.random.default_rng(5)
    periods = DownPeriods(100.0, Constant(10.0), 1e6, rng)
    starts, ends = np.array(periods.starts), np.array(periods.ends)
    assert np.all(ends - starts == 10.0) and np.all(starts[1:] > ends[:-1])
    # up times are exponential with mean 100 s
    ups = starts[1:] - ends[:-1]
    assert abs(ups.mean() - 100) < 4 * 100 / math.sqrt(len(ups))
    assert periods.end_if_down(starts[3] + 5) == ends[3]
    assert periods.end_if_down(ends[3]) is None
    assert periods.end_if_down(-1.0) is None
