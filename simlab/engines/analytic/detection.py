"""How long after a silent break a client notices it, from its heartbeat and detector settings.

A fleet's clients reconnect only once they notice their connection is gone. A
close frame or an RST tells them within half a round trip; a silent break (a
host that vanished, a middlebox that dropped the connection's state) is noticed
only by the client's failure detector. This module asks the package's own
detectors (:mod:`simlab.rules.detector`) when that happens: it feeds one a steady,
loss-free heartbeat stream until its state is periodic (full history windows),
then lets the stream stop and reads the deadline, keeping the client's pings
going where the detector counts unanswered pings.

In the steady state the declaration is a fixed offset from the send time of the
last heartbeat that arrived, so with ``phase`` the time from the last send of the
stream to the break (uniform in [0, interval) for a break at a random moment)::

    latency = after_delivered - phase   if phase >= reach (that heartbeat arrived)
    latency = after_lost - phase        otherwise (it was in flight and is lost)

where ``reach`` is how long a heartbeat takes to arrive: a round trip for the
pong to a client's ping, half of one for a server's ping or heartbeat. Jitter,
loss before the break and a ping drawing an RST from a restarted host are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.rules.detector import make_detector
from simlab.scenario.schema import Scenario


@dataclass(frozen=True)
class SilentDetection:
    """The declaration time after a silent break, as a function of the break's phase."""

    period: float  # the heartbeat interval
    reach: float  # send -> arrival of one element of the monitored stream
    after_delivered: float  # deadline - last send, when that heartbeat arrived
    after_lost: float  # deadline - last send, when it was lost in flight

    def latency(self, phase: np.ndarray) -> np.ndarray:
        """Declaration time after the break for breaks ``phase`` seconds after a send."""
        phase = np.asarray(phase, float)
        offset = np.where(phase >= self.reach, self.after_delivered, self.after_lost)
        return np.maximum(offset - phase, 0.0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Latencies of ``n`` breaks at independent uniformly random moments."""
        return self.latency(rng.uniform(0.0, self.period, n))

    @property
    def mean(self) -> float:
        """The exact mean over a uniform phase (before clipping at 0, which the checks exclude)."""
        T, r = self.period, min(self.reach, self.period)
        return ((T - r) * self.after_delivered + r * self.after_lost - T * T / 2) / T


def client_pings(scenario: Scenario) -> bool:
    """Whether the client's detector watches pongs to its own pings (else the server's stream)."""
    hb = scenario.heartbeat
    return hb.style == "pingpong" and hb.initiator in ("client", "both")


def _warmup_rounds(scenario: Scenario) -> int:
    det = scenario.detector
    window = {"phi": det.phi.window, "adaptive": det.adaptive.window}.get(det.kind, 0)
    return max(window, det.missed.k) + 10


def _offset(scenario: Scenario, reach: float, deliver_last: bool) -> float:
    """Drive a detector through the steady state; deadline minus the last send after the break."""
    T = scenario.heartbeat.interval
    pings = client_pings(scenario)
    det = make_detector(scenario, 0.0)
    rounds = _warmup_rounds(scenario)
    for j in range(1, rounds + 1):
        sent = j * T
        if pings:
            det.sent(sent, j)
        if j < rounds or deliver_last:
            det.heartbeat(sent + reach, j, sent)
    # after the break the client keeps pinging (a missed-ping detector counts those)
    j = rounds + 1
    while pings and det.deadline() > j * T and j < 2 * rounds + 10_000:
        det.sent(j * T, j)
        j += 1
    return det.deadline() - rounds * T


def silent_detection(scenario: Scenario, rtt: float) -> SilentDetection:
    """The client-side declaration time after a silent break for this heartbeat/detector setting."""
    reach = rtt if client_pings(scenario) else rtt / 2
    return SilentDetection(
        period=scenario.heartbeat.interval,
        reach=reach,
        after_delivered=_offset(scenario, reach, True),
        after_lost=_offset(scenario, reach, False),
    )
