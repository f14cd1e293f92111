"""Failure detectors as pure state machines: events and times in, a deadline out.

No clock, no I/O, no randomness. Whoever drives a detector (the SimPy model with
``env.now``, the real-socket harness with the event loop's clock) feeds it what
happened and when, and asks :meth:`Detector.deadline`: the time at which it will
suspect the peer if nothing else arrives. The peer is suspected at ``t`` exactly
when ``t >= deadline()``; a later input can move the deadline past ``t`` again
(a T-transition, in Chen, Toueg and Aguilera's terms).

Inputs, all with explicit times:

- ``sent(t, seq)``: this side sent its ping number ``seq`` (pingpong only);
- ``heartbeat(t, seq, sent_at)``: an element of the monitored heartbeat stream
  arrived: the pong to our ping ``seq`` (``sent_at`` = when we sent it), or the
  peer's heartbeat/ping ``seq`` (``sent_at`` = the peer's send time, as carried
  in the message; only NFD-S uses it, which assumes synchronized clocks);
- ``message(t, heartbeat=False)``: any other message; for the timeout and phi
  detectors it is a sign of life if it is heartbeat traffic (a peer's ping when we
  also ping) or if the detector was built with ``liveness="any"``; ``missed``
  counts it (as an answer to waiting pings) only with liveness any, and NFD-S and
  NFD-E, which reason about sequence numbers, ignore it.

Sequence numbers start at 1; the connection's opening (time ``start``) plays the
part of heartbeat 0.
"""

from __future__ import annotations

import math
from collections import deque

INF = math.inf


class Detector:
    """Base class: the input methods do nothing; subclasses say what counts."""

    kind = "base"

    def __init__(self, start: float, liveness: str = "heartbeats"):
        self.start = start
        self.count_any = liveness == "any"

    def sent(self, t: float, seq: int) -> None:
        """We sent ping ``seq`` at ``t``."""

    def heartbeat(self, t: float, seq: int, sent_at: float) -> None:
        """Heartbeat ``seq`` (or the pong to our ping ``seq``) arrived at ``t``."""

    def message(self, t: float, heartbeat: bool = False) -> None:
        """Some other message arrived at ``t``."""

    def deadline(self) -> float:
        """When the peer will be suspected if no further input arrives (``inf``: never)."""
        raise NotImplementedError

    def suspects(self, t: float) -> bool:
        return t >= self.deadline()


class TimeoutDetector(Detector):
    """Read deadline: suspect when nothing counted as liveness was heard for ``timeout``.

    This is gorilla/websocket's ``SetReadDeadline`` pattern and Engine.IO's client
    rule (no ping within pingInterval + pingTimeout). Heartbeats always count;
    other heartbeat traffic counts; application messages count with liveness any.
    """

    kind = "timeout"

    def __init__(self, start: float, timeout: float, liveness: str = "heartbeats"):
        super().__init__(start, liveness)
        self.timeout = timeout
        self.last = start

    def heartbeat(self, t, seq, sent_at):
        if t > self.last:
            self.last = t

    def message(self, t, heartbeat=False):
        if (heartbeat or self.count_any) and t > self.last:
            self.last = t

    def deadline(self):
        return self.last + self.timeout


class MissedDetector(Detector):
    """k consecutive missed pings: suspect when ``k`` pings in a row got no answer within ``ack_timeout``.

    A pong answers its own ping and every earlier one still waiting (like
    python-websockets); with liveness any, any message answers every ping sent
    before it that is still waiting. A ping whose window closed unanswered is a
    miss; an answered ping resets the count, which is also how a suspicion ends
    in monitor mode. A late pong (after its ping's window) answers nothing.
    """

    kind = "missed"

    def __init__(self, start: float, k: int, ack_timeout: float, liveness: str = "heartbeats"):
        super().__init__(start, liveness)
        self.k, self.ack_timeout = k, ack_timeout
        self.pending: deque[tuple[int, float]] = deque()  # (seq, window end), oldest first
        self.streak = 0
        self.suspect_since = INF

    def _expire(self, t: float) -> None:
        """Count as missed every waiting ping whose window closed before ``t``."""
        pending = self.pending
        while pending and pending[0][1] < t:
            _, end = pending.popleft()
            self.streak += 1
            if self.streak == self.k:
                self.suspect_since = end

    def _answer_until(self, t: float, seq: float) -> None:
        self._expire(t)
        answered = False
        pending = self.pending
        while pending and pending[0][0] <= seq:
            pending.popleft()
            answered = True
        if answered:
            self.streak = 0
            self.suspect_since = INF

    def sent(self, t, seq):
        self._expire(t)
        self.pending.append((seq, t + self.ack_timeout))

    def heartbeat(self, t, seq, sent_at):
        self._answer_until(t, seq)

    def message(self, t, heartbeat=False):
        if self.count_any:
            self._answer_until(t, INF)

    def deadline(self):
        if self.streak >= self.k:
            return self.suspect_since
        need = self.k - self.streak  # more misses needed; the pending windows close in order
        if need > len(self.pending):
            return INF
        return self.pending[need - 1][1]


def _phi_quantile(threshold: float) -> float:
    """The y at which Akka's logistic approximation of phi reaches ``threshold``.

    phi(y) = -log10(e / (1 + e)), e = exp(-y (1.5976 + 0.070566 y^2))
    (akka-remote PhiAccrualFailureDetector.scala). Setting phi = threshold gives
    0.070566 y^3 + 1.5976 y - c = 0 with c = ln((1 - P) / P), P = 10^-threshold,
    a monotone cubic solved here by Cardano's formula.
    """
    p = 10.0 ** (-threshold)
    c = math.log1p(-p) - math.log(p)
    a, b = 1.5976 / 0.070566, c / 0.070566
    root = math.sqrt(b * b / 4 + a**3 / 27)
    return math.cbrt(b / 2 + root) + math.cbrt(b / 2 - root)


class PhiDetector(Detector):
    """Phi accrual (Hayashibara et al. 2004), as Akka implements it.

    Inter-arrival times of heartbeats over a sliding ``window``; the history starts
    with two samples ``first_estimate`` +- a quarter; the mean is raised by
    ``acceptable_pause`` and the standard deviation floored at ``min_std``.
    phi(t) = -log10(1 - F(t - last arrival)) with F Akka's logistic approximation
    of the normal cdf; suspect when phi >= ``threshold``. The deadline is exact:
    phi is monotone in the silence, so the crossing is last + mean + y * std.
    Like Akka, a heartbeat that ends a suspicion adds no sample (a long pause would
    skew the history). Other liveness (heartbeat traffic, or anything with liveness
    any) restarts the silence but is not a heartbeat: intervals are still measured
    between heartbeats.
    """

    kind = "phi"

    def __init__(
        self,
        start: float,
        threshold: float,
        first_estimate: float,
        window: int = 1000,
        min_std: float = 0.1,
        acceptable_pause: float = 0.0,
        liveness: str = "heartbeats",
    ):
        super().__init__(start, liveness)
        self.window, self.min_std, self.pause = window, min_std, acceptable_pause
        self.y = _phi_quantile(threshold)
        std = first_estimate / 4
        self.samples: deque[float] = deque([first_estimate - std, first_estimate + std])
        self.total = 2 * first_estimate
        self.total_sq = (first_estimate - std) ** 2 + (first_estimate + std) ** 2
        self.last_heartbeat = start  # intervals are measured between heartbeats
        self.last = start  # the silence is measured from any counted sign of life
        self._deadline = self._compute()

    def _stats(self) -> tuple[float, float]:
        """Mean (raised by the acceptable pause) and floored standard deviation of the history."""
        n = len(self.samples)
        mean = self.total / n
        var = max(self.total_sq / n - mean * mean, 0.0)
        return mean + self.pause, max(math.sqrt(var), self.min_std)

    def _compute(self) -> float:
        mean, std = self._stats()
        return self.last + mean + self.y * std

    def heartbeat(self, t, seq, sent_at):
        if t <= self.last_heartbeat:
            return
        if t < self._deadline:  # Akka: no sample from the heartbeat that ends a suspicion
            interval = t - self.last_heartbeat
            self.samples.append(interval)
            self.total += interval
            self.total_sq += interval * interval
            if len(self.samples) > self.window:
                old = self.samples.popleft()
                self.total -= old
                self.total_sq -= old * old
        self.last_heartbeat = t
        self.last = max(self.last, t)
        self._deadline = self._compute()

    def message(self, t, heartbeat=False):
        if (heartbeat or self.count_any) and t > self.last:
            self.last = t
            self._deadline = self._compute()

    def phi(self, t: float) -> float:
        """Current suspicion level (for plots and tests), finite or inf for any silence."""
        mean, std = self._stats()
        y = (t - self.last - mean) / std
        # Akka's -log10(e / (1 + e)), e = exp(-z), is log10(1 + exp(z)): a softplus,
        # computed without overflow for large |z|
        z = y * (1.5976 + 0.070566 * y * y)
        return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) / math.log(10)

    def deadline(self):
        return self._deadline


class NfdDetector(Detector):
    """Chen, Toueg and Aguilera's NFD-S (IEEE Trans. Computers, 2002).

    Heartbeat ``i`` is sent at sigma_i = sigma_{i-1} + eta; its freshness point is
    tau_i = sigma_i + delta. In [tau_i, tau_{i+1}) the peer is trusted iff some
    heartbeat j >= i has arrived. So with J the largest sequence number received,
    the deadline is tau_{J+1} = sigma_J + eta + delta. The send time sigma_J comes
    from the message (oneway, synchronized clocks) or from our own ping (pingpong,
    where no clock synchronization is needed). Only the heartbeat stream counts.
    """

    kind = "nfd"

    def __init__(self, start: float, eta: float, delta: float, liveness: str = "heartbeats"):
        super().__init__(start, liveness)
        self.eta, self.delta = eta, delta
        self.max_seq = 0
        self._deadline = start + eta + delta

    def heartbeat(self, t, seq, sent_at):
        if seq > self.max_seq:
            self.max_seq = seq
            self._deadline = sent_at + self.eta + self.delta

    def deadline(self):
        return self._deadline


class AdaptiveDetector(Detector):
    """Chen, Toueg and Aguilera's NFD-E: freshness points from estimated arrival times.

    EA_{l+1} = (1/n) sum_i (A_i - i eta) + (l + 1) eta over the last ``window``
    arrivals (A_i the arrival time of heartbeat i, l the largest sequence number
    received); suspect from EA_{l+1} + alpha on. Needs no clock synchronization.
    Before the first arrival the opening of the connection stands for heartbeat 0.
    Heartbeats older than the newest received are stale and ignored.
    """

    kind = "adaptive"

    def __init__(
        self,
        start: float,
        eta: float,
        alpha: float,
        window: int = 100,
        liveness: str = "heartbeats",
    ):
        super().__init__(start, liveness)
        self.eta, self.alpha, self.window = eta, alpha, window
        self.offsets: deque[float] = deque()
        self.total = 0.0
        self.max_seq = 0
        self._deadline = start + eta + alpha

    def heartbeat(self, t, seq, sent_at):
        if seq <= self.max_seq:
            return
        self.max_seq = seq
        offset = t - seq * self.eta
        self.offsets.append(offset)
        self.total += offset
        if len(self.offsets) > self.window:
            self.total -= self.offsets.popleft()
        expected = self.total / len(self.offsets) + (seq + 1) * self.eta
        self._deadline = expected + self.alpha

    def deadline(self):
        return self._deadline


def make_detector(scenario, start: float) -> Detector:
    """The detector a scenario asks for, for a connection opened at ``start``."""
    det, interval = scenario.detector, scenario.heartbeat.interval
    kind, live = det.kind, det.liveness
    if kind == "timeout":
        return TimeoutDetector(start, det.timeout, live)
    if kind == "missed":
        return MissedDetector(start, det.missed.k, scenario.ack_timeout, live)
    if kind == "phi":
        first = det.phi.first_estimate or interval
        p = det.phi
        return PhiDetector(start, p.threshold, first, p.window, p.min_std, p.acceptable_pause, live)
    if kind == "nfd":
        return NfdDetector(start, interval, scenario.nfd_delta, live)
    if kind == "adaptive":
        return AdaptiveDetector(start, interval, scenario.adaptive_alpha, det.adaptive.window, live)
    raise ValueError(f"unknown detector kind {kind!r}")
