"""Heartbeat overhead per connection-hour, exactly: messages, bytes and radio wakeups.

The analytic engine's subset (datagrams, constant delays, no jitter) makes every
heartbeat round one of a few outcomes (the ping lost; the ping in and its pong lost;
both in), each with fixed offsets after the round's send time for:

- the heartbeat messages sent (pings, pongs, oneway beats), which the model counts
  whether or not they arrive, each ``frame_bytes`` plus the IPv4 and UDP headers;
- the client's radio events: its sends, and the packets that reach it. A radio
  event is a wakeup when the radio has been silent for more than ``RADIO_TAIL``
  (the model's rule). The opening's handshake is a radio event too.

Rounds form a Markov chain on (the hidden loss states of both directions, the time
since the client's radio was last used), to which reconnect mode adds the detector's
count of consecutive failed rounds, as in :mod:`simlab.engines.analytic.chain`. Monitor mode is the
chain's stationary mean per round. Reconnect mode is a renewal: a connection from its
opening to its declaration, then the reconnect delay, whose figures are sums over the
chain's transient states (the fundamental matrix), plus the rounds sent after the
deciding ones but before the declaration, plus the next opening's wakeup, which
depends on how long the radio has been silent when the connection closes.

Ties (a round sent at the very instant of the declaration, a radio silence of exactly
``RADIO_TAIL``) depend on the order of simultaneous events in the model: the figures
that depend on them are left out rather than guessed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from simlab.engines.analytic.rounds import _packet, round_rule, watches_peer
from simlab.engines.model import RADIO_TAIL
from simlab.scenario.schema import Scenario

TIE = 1e-9  # relative
LONG = "long"  # the radio has been silent for more than RADIO_TAIL: its next use wakes it


@dataclass(frozen=True)
class Outcome:
    """One way a heartbeat round can go (offsets in seconds after the round's send time)."""

    M: np.ndarray  # hidden-state transitions with this outcome, over (uplink, downlink) states
    fails: bool  # a failed round for the detector
    messages: tuple[float, ...]  # heartbeat messages sent
    radio: tuple[float, ...]  # the client's radio events, ascending


def outcomes(s: Scenario) -> list[Outcome]:
    """The round's outcomes for ``s`` (pingpong or oneway, initiated by the client or the server)."""
    (ul, ud), (dl, dd_) = _packet(s.link.up.loss), _packet(s.link.down.loss)
    iu, idn = np.eye(len(ul)), np.eye(len(dl))
    du, dd = s.link.up.delay.value, s.link.down.delay.value
    hb = s.heartbeat
    own = not watches_peer(s)  # the detector waits for pongs to its own pings
    if hb.initiator == "client":
        if hb.style == "oneway":
            return [
                Outcome(np.kron(ul, idn), True, (0.0,), (0.0,)),
                Outcome(np.kron(ud, idn), False, (0.0,), (0.0,)),
            ]
        return [
            Outcome(np.kron(ul, idn), True, (0.0,), (0.0,)),
            Outcome(np.kron(ud, dl), own, (0.0, du), (0.0,)),
            Outcome(np.kron(ud, dd_), False, (0.0, du), (0.0, du + dd)),
        ]
    if hb.style == "oneway":
        return [
            Outcome(np.kron(iu, dl), True, (0.0,), ()),
            Outcome(np.kron(iu, dd_), False, (0.0,), (dd,)),
        ]
    # the server's ping reaches the client, which pongs at once: one radio event
    return [
        Outcome(np.kron(iu, dl), True, (0.0,), ()),
        Outcome(np.kron(ul, dd_), own, (0.0, dd), (dd,)),
        Outcome(np.kron(ud, dd_), False, (0.0, dd), (dd,)),
    ]


class _Radio:
    """Ages of the client's radio at a round's start: (rounds back, offset) or LONG.

    Ages are computed afresh from (j, o) as j T - o, so repeated additions cannot
    drift; a comparison that lands within TIE of the tail marks the figures as tied.
    """

    def __init__(self, interval: float):
        self.T = interval
        self.tied = False

    def _over(self, silence: float) -> bool:
        if abs(silence - RADIO_TAIL) <= TIE * RADIO_TAIL:
            self.tied = True
        return silence > RADIO_TAIL

    def silence(self, age, offset: float) -> float:
        return math.inf if age == LONG else age[0] * self.T - age[1] + offset

    def round(self, age, radio: tuple[float, ...]) -> tuple[int, object]:
        """(wakeups in a round whose radio events are ``radio``, the age at the next round)."""
        wakes, last = 0, None
        for o in radio:
            gap = self.silence(age, o) if last is None else o - last
            wakes += self._over(gap)
            last = o
        nxt = (1, last) if last is not None else (LONG if age == LONG else (age[0] + 1, age[1]))
        # silent so long that any later use wakes it, even one at a close up to T earlier
        if nxt != LONG and self.silence(nxt, 0.0) > RADIO_TAIL + self.T:
            nxt = LONG
        return wakes, nxt


@dataclass(frozen=True)
class Overhead:
    msgs_per_hour: float
    wakeups_per_hour: float | None  # None: a tie decides it


def _stationary(P: np.ndarray) -> np.ndarray:
    n = len(P)
    A = np.vstack([P.T - np.eye(n), np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1
    return np.linalg.lstsq(A, b, rcond=None)[0]


def _explore(start: list, step) -> tuple[dict, list]:
    """The states reachable from ``start``: {state: index}, and each state's transitions
    [(next, probability, messages, wakeups)] from ``step(state)``; states that are
    tuples starting with "end" are absorbing and not explored."""
    index: dict = {}
    rows, todo = [], list(start)
    while todo:
        x = todo.pop()
        if x in index:
            continue
        index[x] = len(index)
        row = list(step(x))
        rows.append((x, row))
        todo += [y for y, *_ in row if y[0] != "end"]
    return index, rows


def _rounds(outs, radio: _Radio, h: int, age):
    """Each outcome of a round from hidden state ``h`` and radio ``age``:
    (outcome, next hidden state, probability, wakeups, next age)."""
    for out in outs:
        wakes, nxt = radio.round(age, out.radio)
        for h2 in np.flatnonzero(out.M[h] > 0):
            yield out, int(h2), out.M[h, h2], wakes, nxt


def monitor(s: Scenario) -> Overhead:
    """Long-run overhead of a connection that is never closed (monitor mode)."""
    outs, radio, T = outcomes(s), _Radio(s.heartbeat.interval), s.heartbeat.interval

    def step(x):
        h, age = x
        for out, h2, p, wakes, nxt in _rounds(outs, radio, h, age):
            yield (h2, nxt), p, len(out.messages), wakes

    index, rows = _explore([(h, (1, 0.0)) for h in range(len(outs[0].M))], step)
    n = len(index)
    P, msgs, wakes = np.zeros((n, n)), np.zeros(n), np.zeros(n)
    for x, row in rows:
        i = index[x]
        for y, p, m, w in row:
            P[i, index[y]] += p
            msgs[i] += p * m
            wakes[i] += p * w
    pi = _stationary(P)
    per_hour = 3600 / T
    return Overhead(
        per_hour * float(pi @ msgs), None if radio.tied else per_hour * float(pi @ wakes)
    )


def reconnect(s: Scenario) -> Overhead | None:
    """Overhead per connected hour when every declaration closes the connection (None: a tie)."""
    outs, T = outcomes(s), s.heartbeat.interval
    rule = round_rule(s)
    radio = _Radio(T)
    H = len(outs[0].M)
    thr = {1: rule.m0, 0: rule.m}
    close = {1: rule.B, 0: rule.A}  # after the opening / after the last successful round's send
    for v in (0, 1):
        if abs(close[v] / T - round(close[v] / T)) <= TIE:  # a round sent as it closes
            return None

    # transient states (v, streak, h, age); ends ("end", v, h, age) after the deciding failure
    def step(x):
        v, streak, h, age = x
        for out, h2, p, wakes, nxt in _rounds(outs, radio, h, age):
            if not out.fails:
                y = (0, 0, h2, nxt)
            elif streak + 1 < thr[v]:
                y = (v, streak + 1, h2, nxt)
            else:
                y = ("end", v, h2, nxt)
            yield y, p, len(out.messages), wakes

    start = [(1, 0, h, (1, 0.0)) for h in range(H)]
    index, rows = _explore(start, step)
    ends = {y[1:]: None for _, row in rows for y, *_ in row if y[0] == "end"}
    ends = {e: j for j, e in enumerate(ends)}
    n, k = len(index), len(ends)
    Q, R = np.zeros((n, n)), np.zeros((n, k))
    msgs, wakes = np.zeros(n), np.zeros(n)
    for x, row in rows:
        i = index[x]
        for y, p, m, w in row:
            if y[0] == "end":
                R[i, ends[y[1:]]] += p
            else:
                Q[i, index[y]] += p
            msgs[i] += p * m
            wakes[i] += p * w
    N = np.linalg.inv(np.eye(n) - Q)
    absorb = N @ R
    end_list = sorted(ends, key=ends.get)
    r = s.reconnect.delay
    tail = [
        _after_deciding(outs, radio, T, age, close[v] - (thr[v] + 1) * T, r)
        for v, h, age in end_list
    ]
    # the hidden state a new connection starts in: the fixed point of the hand-over
    mu = np.full(H, 1 / H)
    s_idx = [index[x] for x in start]
    for _ in range(10_000):
        first = np.zeros(n)
        first[s_idx] = mu
        at_end = first @ absorb
        nxt = np.zeros(H)
        for j, end in enumerate(end_list):
            nxt[end[1]] += at_end[j]
        if np.abs(nxt - mu).max() < 1e-15:
            break
        mu = nxt
    first = np.zeros(n)
    first[s_idx] = mu
    visits, at_end = first @ N, first @ absorb
    rounds = float(visits.sum())
    connected = T * rounds + sum(
        at_end[j] * (close[v] - (thr[v] + 1) * T + T) for j, (v, h, age) in enumerate(end_list)
    )
    total_msgs = float(visits @ msgs) + sum(at_end[j] * t[0] for j, t in enumerate(tail))
    # each opening's own wakeup is counted with the close before it (same distribution)
    total_wakes = float(visits @ wakes) + sum(at_end[j] * t[1] for j, t in enumerate(tail))
    return Overhead(
        3600 * total_msgs / connected, None if radio.tied else 3600 * total_wakes / connected
    )


def _after_deciding(outs, radio: _Radio, T: float, age, delta: float, gap: float):
    """(messages, wakeups) from the round after the deciding one to the next opening.

    ``delta``: the close, after that round's start (negative: before it; never below
    -T); ``gap``: the reconnect delay. Rounds sent before the close go out whatever the
    detector has decided, with free outcomes (Bernoulli loss: Gilbert-Elliott with such
    rounds is refused upstream). The next opening wakes the radio if it has been silent
    for more than the tail by then.
    """
    probs = [float(o.M.sum(axis=1)[0]) for o in outs]
    extra = math.ceil(delta / T) if delta > 0 else 0  # rounds that start before the close
    msgs = wakes = 0.0
    start_last = -math.inf if age == LONG else -radio.silence(age, 0.0)
    for seq in itertools.product(range(len(outs)), repeat=extra):
        p = math.prod(probs[i] for i in seq)
        if p == 0:
            continue
        last, m, w = start_last, 0, 0
        for r, i in enumerate(seq):
            for o in outs[i].messages + outs[i].radio:
                if abs(r * T + o - delta) <= TIE * T:
                    radio.tied = True
            m += sum(r * T + o < delta for o in outs[i].messages)
            for t in (r * T + o for o in outs[i].radio if r * T + o < delta):
                w += radio._over(t - last)
                last = t
        w += radio._over(delta - last + gap)  # the next opening's handshake
        msgs += p * m
        wakes += p * w
    return msgs, wakes
