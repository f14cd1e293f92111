"""Pieces of the path that hold no SimPy state: loss processes, the TCP RTO, down periods.

Kept apart from the model so each can be read and tested on its own.
"""

from __future__ import annotations

import bisect

import numpy as np

from simlab.scenario.distributions import Distribution, Exponential, Sampler, Uniforms
from simlab.scenario.schema import Loss, Tcp

# Header bytes on the wire per packet: IPv4 (20) + TCP (20) + timestamps option (12);
# IPv4 (20) + UDP (8).
TCP_HEADER = 52
UDP_HEADER = 28


class LossProcess:
    """Per-packet loss: Bernoulli, or a two-state Gilbert-Elliott chain stepped once per packet."""

    __slots__ = ("_u", "_p", "_gilbert", "_bad", "_p_gb", "_p_bg", "_lg", "_lb")

    def __init__(self, loss: Loss, rng: np.random.Generator):
        self._u = Uniforms(rng)
        self._p = loss.p
        self._gilbert = loss.model == "gilbert"
        self._p_gb, self._p_bg = loss.p_gb, loss.p_bg
        self._lg, self._lb = loss.loss_good, loss.loss_bad
        if self._gilbert:  # start in the stationary distribution
            total = loss.p_gb + loss.p_bg
            self._bad = self._u() < (loss.p_gb / total if total else 0.0)

    def lost(self) -> bool:
        if not self._gilbert:
            return self._p > 0 and self._u() < self._p
        u = self._u()
        self._bad = u >= self._p_bg if self._bad else u < self._p_gb
        return self._u() < (self._lb if self._bad else self._lg)


def backoff(rto: float, attempt: int, tcp: Tcp) -> float:
    """Wait before retransmission number ``attempt + 1``: doubling from ``rto``, capped."""
    return min(rto * (1 << attempt), tcp.max_rto)


def give_up_after(rto: float, tcp: Tcp) -> float:
    """From a segment's first send to giving up after ``max_retries`` retransmissions."""
    return sum(backoff(rto, i, tcp) for i in range(tcp.max_retries + 1))


class RtoEstimator:
    """Retransmission timeout, RFC 6298 smoothing with Linux's floor.

    SRTT <- 7/8 SRTT + 1/8 R; RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R| (RFC 6298 2.3);
    Linux adds the floor to the variance term (rto = srtt + max(4 rttvar, rto_min)),
    so the RTO is never below SRTT + 200 ms. Samples only from segments not
    retransmitted (Karn's rule), which the caller ensures.
    """

    __slots__ = ("srtt", "rttvar", "rto", "_cfg")

    def __init__(self, cfg: Tcp):
        self._cfg = cfg
        self.srtt = None
        self.rttvar = 0.0
        self.rto = cfg.initial_rto

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        rto = self.srtt + max(4 * self.rttvar, self._cfg.min_rto)
        self.rto = min(rto, self._cfg.max_rto)

    def backoff(self, attempt: int) -> float:
        return backoff(self.rto, attempt, self._cfg)

    def give_up_after(self) -> float:
        return give_up_after(self.rto, self._cfg)


class DownPeriods:
    """Alternating up/down periods over [0, horizon], drawn in advance: link outages, peer stalls.

    Up times are exponential with mean ``mtbf``; down times come from ``duration``.
    Drawing them up front keeps queries pure: ``end_if_down(t)`` can be asked about
    any time, including a TCP retransmission's future send time.
    """

    def __init__(
        self, mtbf: float, duration: Distribution, horizon: float, rng: np.random.Generator
    ):
        up, length = Sampler(Exponential(mtbf), rng, 64), Sampler(duration, rng, 64)
        self.starts: list[float] = []
        self.ends: list[float] = []
        t = up()
        while t < horizon:
            end = t + length()
            self.starts.append(t)
            self.ends.append(end)
            t = end + up()

    def end_if_down(self, t: float) -> float | None:
        """End of the down period covering ``t``, or None if ``t`` is in an up period."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.ends[i]:
            return self.ends[i]
        return None

    def __len__(self) -> int:
        return len(self.starts)
