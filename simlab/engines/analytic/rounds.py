"""Heartbeat rounds as a Markov chain on hidden loss states: the pieces the analytic engine
(:mod:`.chain`) and the overhead computation (:mod:`.overhead`) share.

A round's outcome (which of its packets arrived) depends only on the loss states of both
directions; :func:`round_chain` is that chain, :func:`round_rule` the detector's rule on
consecutive failed rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab.scenario.schema import Loss, Scenario


@dataclass(frozen=True)
class RoundRule:
    """A detector as a rule on consecutive failed rounds (see the module docstring)."""

    m: int
    m0: int
    A: float  # declaration time after the last successful round's send time
    B: float  # declaration time after the opening, if the first m0 rounds fail
    d_ev: float  # from a round's send time to its evidence (pong or heartbeat) arriving
    emit: float  # from a round's send time to the peer's last emission in it


@dataclass(frozen=True)
class RoundChain:
    """Heartbeat rounds as a Markov chain on the hidden loss states."""

    F: np.ndarray  # F[h, h']: the round fails and the state moves to h'
    S: np.ndarray  # S[h, h']: the round succeeds
    pi: np.ndarray  # stationary distribution of h before a round


def _packet(loss: Loss) -> tuple[np.ndarray, np.ndarray]:
    """Per-packet (lost, delivered) matrices: the chain steps, then loses by the new state."""
    if loss.model == "bernoulli":
        return np.array([[loss.p]]), np.array([[1 - loss.p]])
    move = np.array([[1 - loss.p_gb, loss.p_gb], [loss.p_bg, 1 - loss.p_bg]])
    lost = np.array([loss.loss_good, loss.loss_bad])
    return move * lost, move * (1 - lost)


def _stationary(P: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(P.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return pi / pi.sum()


def watches_peer(s: Scenario) -> bool:
    """Does the detector watch the peer's heartbeats or pings (one packet per round)
    rather than the pongs to its own pings?"""
    return s.heartbeat.style == "oneway" or s.heartbeat.initiator != s.detector_side


def round_chain(s: Scenario) -> RoundChain:
    """Rounds of the scenario's heartbeat stream (the peer's beats or pings, or ping then pong)."""
    down, up = _packet(s.link.down.loss), _packet(s.link.up.loss)
    to_detector = up if s.detector_side == "server" else down
    if watches_peer(s):
        lost, ok = to_detector
        return RoundChain(lost, ok, _stationary(lost + ok))
    # the ping goes out from the detector side, the pong comes back; a lost ping sends no pong
    (pl, pd), (ql, qd) = (down, up) if s.detector_side == "server" else (up, down)
    eye = np.eye(len(ql))
    F = np.kron(pl, eye) + np.kron(pd, ql)
    S = np.kron(pd, qd)
    return RoundChain(F, S, _stationary(F + S))


def _delays(s: Scenario) -> tuple[float, float]:
    """(evidence delay, peer emission offset) for constant delays."""
    d = {"up": s.link.up.delay.value, "down": s.link.down.delay.value}
    to_detector = "up" if s.detector_side == "server" else "down"
    from_detector = "down" if to_detector == "up" else "up"
    if watches_peer(s):
        return d[to_detector], 0.0
    return d[from_detector] + d[to_detector], d[from_detector]


def round_rule(s: Scenario) -> RoundRule:
    T = s.heartbeat.interval
    d_ev, emit = _delays(s)
    kind = s.detector.kind
    if kind == "timeout":
        theta = s.detector.timeout
        m = math.ceil(theta / T) - 1
        m0 = max(0, math.ceil((theta - d_ev) / T) - 1)
        return RoundRule(m, m0, d_ev + theta, theta, d_ev, emit)
    if kind == "missed":
        k, ack = s.detector.missed.k, s.ack_timeout
        return RoundRule(k, k, k * T + ack, k * T + ack, d_ev, emit)
    delta = s.nfd_delta
    m = max(0, math.ceil((delta - d_ev) / T))
    return RoundRule(m, m, T + delta, T + delta, d_ev, emit)
