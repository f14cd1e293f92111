"""The fast engine: the model's round-by-round subset, vectorized with NumPy.

It covers connections whose heartbeat rounds carry everything that matters:
pingpong or oneway heartbeats from one side, datagram or TCP (the retransmission
ladder with the RFC 6298 estimator, in-order delivery, giving up), Bernoulli or
Gilbert-Elliott loss, any delay distributions, jitter, the ``timeout``, ``missed``
and ``nfd`` detectors in both conventions, peer crashes, the NAT (idle expiry
with per-connection timeouts, outbound or both-way refresh, the TCP ACK rule, drop
or reset), link outages, the peer's stalls and application traffic. Not phi or
adaptive detectors, nor heartbeats from both sides: it refuses those.

Application traffic: each side's app messages are Poisson arrivals from the opening
(gaps from a stream of their own per side, keyed by connection), none once the peer
crashed, one the stalled peer writes going out when its stall ends. They join that
side's heartbeat messages in one stream in sending order (``_dir``: the heartbeats'
view and ``full``, every message), so they share its loss draws and, over TCP, its
segment order, ladders, RTO samples and giving up; everything that concerns the
stream (NAT refreshes and expiry, reaching a dead or closed peer, doomed segments,
retransmissions, the loss stream's position) reads ``full``, the detector's
heartbeat evidence the view. With ``liveness: any`` the peer's app messages that
reach the detector side are evidence for the ``timeout`` detector (``_liveness``).

Outages and stalls are each slot's down periods over the horizon (as the model's
``DownPeriods``: exponential up times, durations from their distribution), from
streams of their own. A packet sent while the access link is down is lost without
a loss draw, and so is a TCP transmission (a segment needs as many draws as
without outages; its ladder walks past the transmissions that meet an outage, and
one first sent during an outage gives no RTT sample); a reconnection due during an
outage completes when it ends. A beat the stalled peer's timer makes due goes out
when the stall ends and its schedule moves with it; a ping reaching the stalled
peer is answered then.

It counts what the model counts but, over TCP, the client's radio wakeups. TCP
retransmissions and bytes are counted in each slot's stats (``_tcp_cost``) but the
registry still lists them as absent (``NOT_PRODUCED``, ``NOT_PRODUCED_TCP``: those
keys are left out of the figures). Over datagrams the wakeups are the
model's: the client's radio events (the opening, its sends, the server's packets
reaching it, a stalled client's late pongs) in time order, a wakeup after a silence
of more than ``RADIO_TAIL``, the radio's state carried from one of a slot's
connections to the next.

Every slot's current connection is computed at once, a row each of 2-D arrays
(rows of similar length batched together), a window of rounds at a time, in time
from its opening: all sends, losses, ladders and arrivals of the window at once,
then the detector as a chain of deadlines. Everything before the window's last
send time is final (later rounds are sent after it), so a row that has not ended
by then is recomputed with a longer window and the same draws. A connection
depends on the one before only by its opening when losses are Bernoulli (each
connection has a loss stream of its own; every other draw is the connection's own,
from its opening), so then the connections a slot likely has next before the
horizon (its peer's crashes, or the mean connection so far: false positives, NAT
breaks...) are computed in the same batch (speculatively, each from its own
opening; the horizon only cuts what is accounted), and kept once the one before
has ended before the horizon (not with outages or stalls: what a connection meets
depends on when it opens). Any other next connection joins the next batch.
Bernoulli losses are drawn as geometric gaps, so retransmissions, ladders and RTO
reads touch only the lost packets.

Random draws: each (seed, slot, purpose) stream gets its key from
``numpy.random.SeedSequence`` (as every stream in simlab does); within it, draw
``i`` is a counter-based hash of the key and ``i`` (SplitMix64's finalizer), with
the connection number mixed in (Bernoulli losses: by loss number, in a stream of
the connection's own; Gilbert-Elliott losses: by packet number, continuing across
a slot's connections as the chain's state does), so any draw can be computed for
any row without generator state: the same seed gives the same results, whatever
the window, the batching, the speculation or the number of slots. Semantics follow
:mod:`simlab.engines.model` exactly; the draws are the engine's own, so the two engines
agree in distribution, not draw for draw.
"""

from __future__ import annotations

import bisect
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtri

from simlab.engines.analytic.chain import TIE
from simlab.engines.figures import summarize
from simlab.engines.metrics import absent_from
from simlab.engines.model import RADIO_TAIL, Stats
from simlab.engines.network import TCP_HEADER, UDP_HEADER, RtoEstimator
from simlab.rules.policy import policy_problems
from simlab.scenario.distributions import Constant, Exponential, Lognormal, Pareto, Uniform
from simlab.scenario.schema import Loss, Scenario

ENGINE = "fast"
INF = math.inf
_TAG = 0xFA57  # keeps the fast engine's streams apart from the model's


def unsupported(s: Scenario) -> list[str]:
    """Every feature of ``s`` outside this engine's subset (empty: covered)."""
    out = policy_problems(s)
    if s.heartbeat.initiator == "both":
        out.append("heartbeat.initiator: both")
    if s.detector.kind not in ("timeout", "missed", "nfd"):
        out.append(f"detector.kind: {s.detector.kind} (fast: timeout, missed, nfd)")
    if s.detector.kind == "missed":
        hb = s.heartbeat
        if s.ack_timeout > hb.interval * (1 - hb.jitter):
            out.append(
                "detector.missed.ack_timeout longer than the shortest interval (a pong could answer an earlier ping)"
            )
    if s.detector.liveness == "any" and s.detector.kind == "missed":
        out.append("detector.liveness: any with missed")
    tie = _ordering_tie(s)
    if tie:
        out.append(tie)
    return out


def _ordering_tie(s: Scenario) -> str:
    """Why the model's order of a deadline and an arrival at the same instant is not the
    fast engine's rule ('' when it is, or when no such tie can happen).

    With constant delays and no jitter a timeout or NFD deadline can fall exactly on a
    heartbeat's arrival. The model's lazy timer for that deadline was armed when an
    earlier timer fired, after the previous evidence; the arrival's event was scheduled
    when its last hop was sent. The fast engine lets the timer fire first, which is the
    model's order whenever that hop is shorter than the interval (the timer was armed at
    least an interval before the deadline, so before the hop was sent). With a hop of an
    interval or more the order depends on the timer's history: refused, not guessed. The
    ``missed`` detector ties when the round trip equals ``ack_timeout``: refused too.
    """
    hb, det, link = s.heartbeat, s.detector, s.link
    if det.kind not in ("timeout", "nfd", "missed") or hb.jitter > 0:
        return ""
    if not (isinstance(link.up.delay, Constant) and isinstance(link.down.delay, Constant)):
        return ""
    if det.kind == "missed":
        # a pong exactly at its window's end answers the ping, but when that window was
        # the k-th miss the model's timer declares first (a mistake of length zero)
        rtt = link.up.delay.value + link.down.delay.value
        if abs(s.ack_timeout - rtt) <= TIE * s.ack_timeout:
            return (
                "a round trip equal to detector.missed.ack_timeout, with constant delays: "
                "every pong arrives at its window's end (an ordering tie; move ack_timeout "
                "or the delay by a little)"
            )
        return ""
    into = link.up if s.detector_side == "server" else link.down
    hop = into.delay.value
    T = hb.interval
    if hop < T:
        return ""
    evidence = link.up.delay.value + link.down.delay.value if hb.style == "pingpong" else hop
    # deadlines after evidence at lead, after the opening at lead - evidence (timeout);
    # NFD's freshness points are send times plus T + delta, so only the second
    if det.kind == "timeout":
        leads = (det.timeout, det.timeout - evidence)
    else:
        leads = (T + s.nfd_delta - evidence,)
    for x in leads:
        if abs(x / T - round(x / T)) <= TIE * max(1.0, abs(x / T)):
            return (
                f"a {det.kind} deadline a whole number of intervals from a heartbeat's arrival, "
                f"with constant delays and a last hop ({hop:g} s) not shorter than the interval: "
                "which of the model's simultaneous events comes first depends on its timer's "
                "history (an ordering tie; move the timeout or the delay by a little)"
            )
    return ""


# -- random numbers: a counter-based hash, so any draw can be computed for many connections at once


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = (np.uint64(k) for k in (30, 27, 31, 11))


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer (a bijection of 64-bit words with full avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@functools.lru_cache(maxsize=1 << 20)
def _stream_key(seed: int, slot: int, stream: int) -> int:
    """The key of one slot's stream, from SeedSequence like every stream in simlab (simlab.rng).

    The spawn key's second part is offset by ``_TAG`` so the fast engine's streams
    never coincide with the model's.
    """
    seq = np.random.SeedSequence(seed, spawn_key=(slot, _TAG + stream))
    return int(seq.generate_state(1, np.uint64)[0])


def _subkeys(keys: np.ndarray, *parts) -> np.ndarray:
    """Keys derived from ``keys`` and further parts (a connection number, a purpose)."""
    h = np.asarray(keys, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:  # p -> p * odd + gamma is one to one, and so is the mix
            h = _mix(h ^ (np.asarray(p).astype(np.uint64) * _M2 + _GAMMA))
    return np.atleast_1d(h)


def _keys(seed: int, slots, stream: int, *parts) -> np.ndarray:
    """One 64-bit key per row: the slot's SeedSequence stream key, then the row's parts.

    SeedSequence gives each (seed, slot, stream) its key; within a stream, draw ``i``
    is a counter-based hash of the key and ``i`` (:func:`_uniforms`), so any draw of
    any row can be computed at once, without generator state.
    """
    slots = np.atleast_1d(np.asarray(slots, dtype=np.int64))
    top = int(slots.max()) + 1 if len(slots) else 0
    return _subkeys(_stream_keys(seed, top, stream)[slots], *parts)


_STREAM_KEYS: dict = {}  # (seed, stream) -> the stream keys of slots 0, 1, ... (grown on demand)


def _stream_keys(seed: int, n: int, stream: int) -> np.ndarray:
    """The stream keys of slots 0..n-1 at least (:func:`_stream_key`), as an array."""
    keys = _STREAM_KEYS.get((seed, stream))
    if keys is None or len(keys) < n:
        if len(_STREAM_KEYS) >= 1024:  # (a long sweep over seeds: start afresh)
            _STREAM_KEYS.clear()
        have = [] if keys is None else keys.tolist()
        more = [_stream_key(seed, s, stream) for s in range(len(have), n)]
        keys = np.array(have + more, dtype=np.uint64)
        keys.flags.writeable = False
        _STREAM_KEYS[(seed, stream)] = keys
    return keys


def _uniforms(keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1): draw ``index`` of each row's stream (SplitMix64 at that counter)."""
    z = _mix(keys[:, None] + (index.astype(np.uint64) + np.uint64(1)) * _GAMMA)  # (arrays wrap)
    return ((z >> _S11).astype(np.float64) + 0.5) * 2.0**-53


def _sample(dist, u: np.ndarray) -> np.ndarray:
    """Draws of ``dist`` by inversion of uniforms."""
    if isinstance(dist, Constant):
        return np.full(u.shape, dist.value)
    if isinstance(dist, Uniform):
        return dist.low + (dist.high - dist.low) * u
    if isinstance(dist, Exponential):
        return -dist.mean_ * np.log(u)
    if isinstance(dist, Lognormal):
        return dist.median * np.exp(dist.sigma * ndtri(u))
    if isinstance(dist, Pareto):
        return dist.scale * u ** (-1.0 / dist.shape)
    raise TypeError(f"no inversion for {dist!r}")


def gilbert_states(loss: Loss, keys: np.ndarray, n: int) -> np.ndarray:
    """The Gilbert-Elliott chain's states (True: bad) for packets 0..n-1 of each row's stream.

    The first run starts in the stationary distribution; runs have geometric lengths
    (leave bad with p_bg, good with p_gb each packet) and alternate. Draws are keyed by
    run number, so a longer prefix extends a shorter one.
    """
    total = loss.p_gb + loss.p_bg
    init = _uniforms(_subkeys(keys, 1), np.zeros(1, np.int64))[:, 0] < (
        loss.p_gb / total if total else 0.0
    )
    runs = 16
    while True:
        u = _uniforms(_subkeys(keys, 2), np.arange(runs))
        bad = init[:, None] ^ (np.arange(runs) % 2 == 1)
        p = np.where(bad, loss.p_bg, loss.p_gb)
        with np.errstate(divide="ignore"):
            length = np.where(p > 0, np.maximum(1.0, np.ceil(np.log(u) / np.log1p(-p))), 2.0**62)
        ends = np.cumsum(length, axis=1)
        if (ends[:, -1] >= n).all():
            break
        runs *= 2
    flip = np.zeros((len(keys), n + 1), dtype=bool)
    r, c = np.nonzero(ends < n)
    flip[r, ends[r, c].astype(np.int64)] = True
    return init[:, None] ^ np.logical_xor.accumulate(flip[:, :n], axis=1)


# -- helpers over rows (one connection per row, messages along the row, INF-padded) --------------


def _first(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the first True's column (0 if none) and whether there is one."""
    if mask.shape[1] == 0:
        z = np.zeros(mask.shape[0], dtype=np.int64)
        return z, z.astype(bool)
    return mask.argmax(axis=1), mask.any(axis=1)


def _at(a: np.ndarray, col: np.ndarray) -> np.ndarray:
    """a[row, col[row]] for every row (col clipped into the row)."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], INF)
    return a[np.arange(a.shape[0]), np.minimum(col, a.shape[1] - 1)]


def _compact(mask: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each row's masked elements moved to its front, in order, the rest INF (trimmed)."""
    count = mask.sum(axis=1)
    k = int(count.max()) if len(count) else 0
    front = np.arange(k)[None, :] < count[:, None]
    out = []
    for a in arrays:
        o = np.full((mask.shape[0], k), INF)
        o[front] = a[mask]  # boolean indexing keeps row-major order
        out.append(o)
    return out


def _ewma(x: np.ndarray, first: np.ndarray, gain: float) -> np.ndarray:
    """Per row: y_0 = first, y_k = (1 - gain) y_(k-1) + gain x_k (x's first column unused).

    One filter over all rows end to end, then each row's start corrected: a row began
    from the previous row's last value instead of its own, an error that decays by
    (1 - gain) a step. Offset by 1 so values that decay to zero never turn subnormal
    (which slows the arithmetic a hundredfold)."""
    R, n = x.shape
    if n < 2:
        return first.copy()
    a = 1.0 - gain
    start = first[:, 0] + 1.0
    y = lfilter([gain], [1, -a], (x[:, 1:] + 1.0).ravel(), zi=[a * start[0]])[0]
    y = y.reshape(R, n - 1)
    if R > 1:
        began = np.concatenate([start[:1], y[:-1, -1]])
        k = min(n - 1, int(np.log(1e-18) / np.log(a)) + 1)  # beyond: below rounding
        y[:, :k] += (a ** np.arange(1, k + 1))[None, :] * (start - began)[:, None]
    out = np.empty((R, n))
    out[:, :1] = first
    np.subtract(y, 1.0, out=out[:, 1:])
    return out


def _ascending(a: np.ndarray) -> bool:
    """Whether every row is in ascending order (inf last)."""
    return a.shape[1] < 2 or not (a[:, 1:] < a[:, :-1]).any()


def _in_order(arrive: np.ndarray) -> np.ndarray:
    """Deliveries in order: each row's running maximum (computed only for the rows that
    are not ascending already, the slow accumulate being rarely needed)."""
    if arrive.shape[1] < 2:
        return arrive
    rows = np.flatnonzero((arrive[:, 1:] < arrive[:, :-1]).any(axis=1))
    if len(rows) == 0:
        return arrive
    out = arrive.copy()
    out[rows] = np.maximum.accumulate(arrive[rows], axis=1)
    return out


def _count_below(a: np.ndarray, x: np.ndarray, equal: bool = False) -> np.ndarray:
    """How many entries of each ascending row of ``a`` are below ``x`` (or equal to it, with
    ``equal``): one value a row, or a row of values a row (bisection over all at once)."""
    R, W = a.shape
    rows = np.arange(R) if x.ndim == 1 else np.arange(R)[:, None]
    lo, hi = np.zeros(x.shape, dtype=np.int64), np.full(x.shape, W, dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        v = a[rows, np.minimum(mid, W - 1)]
        below = v <= x if equal else v < x
        lo = np.where(open_ & below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)


def _give_up(rto: np.ndarray, tcp) -> np.ndarray:
    """From a segment's first send to giving up (network.give_up_after, for arrays)."""
    doubling = 2.0 ** np.arange(tcp.max_retries + 1)
    return np.minimum(np.multiply.outer(rto, doubling), tcp.max_rto).sum(axis=-1)


JITTER, DELAY_FWD, DELAY_BACK, RTT_FWD, RTT_BACK, CRASH, NAT, RST_UP, RST_BACK = range(9)
OUTAGES, STALLS = 9, 10  # a slot's link outages, its peer's stalls (per slot, over the horizon)
APP = {"client": 12, "server": 13}  # application messages' arrivals (Poisson), per sender
LOSS = {"client": 100, "server": 101}
DETECTOR_BY, RESET_BY, TCP_BY = 0, 1, 2  # in the order of their names: ties go to the first
CAUSES = ("detector", "reset", "tcp_timeout")
BREAKS = ("crash", "nat", "tcp_timeout")
COUNTERS = (
    ("connected_s", "alive_s", "suspect_alive_s", "heartbeats", "rounds")
    + ("connections", "false_positives", "undetected", "wakeups", "bytes", "retransmissions")
    + ("app_msgs", "blackholed")
    + tuple(f"break_{k}" for k in BREAKS)
    + tuple(f"by_{k}" for k in CAUSES)
)
_CONNECTIONS = COUNTERS.index("connections")


@dataclass
class Direction:
    """One direction's messages for a batch of connections (a row each), in sending order."""

    src: str
    sent: np.ndarray  # first transmission (inf: no message)
    at: np.ndarray  # the transmission that gets through (inf: none)
    arrive: np.ndarray  # delivery to the receiver, in order (inf: never)
    raw: np.ndarray  # arrival at the receiver's host before in-order hold-back (inf: never)
    rto: _Rto | None  # the sender's RTO when each was first sent (TCP)
    doomed_at: np.ndarray  # per row: send time of the first segment TCP gives up on (inf: none)
    giveup_at: np.ndarray  # per row: when the sender's socket fails over it
    packets: np.ndarray | None  # packets used by the first i+1 messages (dense losses)
    losses: np.ndarray | None = None  # sparse losses: offsets of the lost packets from pos
    hits: np.ndarray | None = None  # ...and the message each delays (TCP) or is (datagram)
    # TCP: the messages sent more than once, (rows, columns, transmissions), row-major; more
    # than max_retries + 1 transmissions: it ran out of retries (sent once, then given up on)
    retx: tuple | None = None
    # with application traffic: the stream of every message (heartbeats and app messages,
    # merged in sending order) this one is the heartbeats' view of, and where they are in it
    full: Direction | None = None
    hb_cols: np.ndarray | None = None  # per heartbeat message: its column in ``full``
    app: np.ndarray | None = None  # ``full`` only: which of its messages are app messages

    def view(self, a: np.ndarray) -> np.ndarray:
        """``a`` (an array over ``full``'s messages) at the heartbeats' columns."""
        if self.hb_cols is None:
            return a
        return np.take_along_axis(a, self.hb_cols, axis=1)

    def used(self, rows: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Packets used by the first ``count`` messages of rows ``rows``."""
        if self.packets is not None:
            packets = np.asarray(self.packets)[rows]
            if packets.shape[1] == 0:
                return np.zeros(len(count), dtype=np.int64)
            return np.where(count > 0, _at(packets, count - 1), 0)
        if self.rto is None:  # datagram: a packet a message
            return count
        return count + (self.hits[rows] < count[:, None]).sum(axis=1)


@dataclass
class Batch:
    """Connections computed together, a row each, in time from each one's opening.

    A slot has one row per connection it may have next (its current one and, when losses
    are Bernoulli, the ones after it that are likely before the horizon)."""

    slots: np.ndarray
    numbers: np.ndarray
    horizon: np.ndarray  # per row: computed up to there at least (from the opening)
    window: np.ndarray  # rounds each row asks for
    seed: int
    pos: dict  # per side: the row's position in its loss stream (0: a stream of its own)
    loss_key: dict  # per side: the key of the row's loss stream
    crash: np.ndarray  # when the peer crashes (inf: never)
    opening: np.ndarray | None = None  # per row: its opening in the slot's time (nan: unknown)
    _keys: dict = None
    # outages and stalls from each row's opening (FastRun._periods), computed once a batch
    _periods: dict | None = None
    _app: dict | None = None  # side -> its app messages' send times (FastRun._app_times)

    @property
    def t0(self) -> np.ndarray:
        """Every row's opening: time 0 (each row's times are from its own opening)."""
        return np.zeros(len(self.slots))

    def key(self, stream: int) -> np.ndarray:
        if self._keys is None:
            self._keys = {}
        if stream not in self._keys:
            self._keys[stream] = _keys(self.seed, self.slots, stream, self.numbers)
        return self._keys[stream]

    def draw(self, dist, stream: int, n: int) -> np.ndarray:
        """Draws 0..n-1 of this connection's stream ``stream``: the same whatever the window."""
        if isinstance(dist, Constant):
            return np.full((len(self.slots), n), dist.value)
        return _sample(dist, _uniforms(self.key(stream), np.arange(n)))


class FastSlot:
    """One connection slot's counters (``stats``), as the model's slots have them."""

    def __init__(self, slot: int, stats: Stats):
        self.slot, self.stats = slot, stats


class FastRun:
    """All slots of a scenario, connection after connection, every slot's current one at once.

    A batch holds each slot's open connection as a row; its rounds are computed a window
    at a time from the opening (all sends, losses, ladders and arrivals at once, then the
    detector as a chain of deadlines). Everything before the window's last send time is
    final, so a row that has not ended by then is recomputed with a window four times as
    long (the same draws). Rows that end are accounted, and the slot's next connection
    joins the next batch, unless it was computed ahead in this one (:meth:`_speculate`).
    """

    def __init__(self, s: Scenario):
        self.s = s
        self.D = s.detector_side
        self.P = "server" if self.D == "client" else "client"
        self.tcp = s.link.transport == "tcp"
        self.monitor = s.detector.on_declare == "monitor"
        self.delay = {"client": s.link.up.delay, "server": s.link.down.delay}
        self.loss = {"client": s.link.up.loss, "server": s.link.down.loss}
        n = s.connections
        # Gilbert-Elliott losses: a stream a slot (the chain's state carries over from one
        # connection to the next), read from the slot's position; Bernoulli: a stream a
        # connection, drawn as gaps (memoryless: the same law, and no connection depends on
        # the one before but by its opening time)
        self.loss_keys = {side: _keys(s.seed, np.arange(n), LOSS[side]) for side in LOSS}
        self.gilbert: dict = {}  # side -> states of every slot's stream (grown on demand)
        self.pos = {side: np.zeros(n, dtype=np.int64) for side in LOSS}
        self.crash_dist = None if s.peer.crash is None else Exponential(s.peer.crash.mtbf)
        self._crashes: dict = {}  # the last rows' crashes
        p = {side: self.loss[side].p if self._sparse(side) else 0.0 for side in LOSS}
        self.log_keep = {side: float(np.log1p(-p[side])) for side in LOSS}
        # a slot's next connections are computed with its current one when they depend on it
        # only by their opening: each is computed from its own opening (the horizon only cuts)
        # (every other draw of a connection, its delays, jitter, crash and NAT timeout, is
        # keyed by its number and read from its opening; the radio's state, carried from one
        # connection to the next, is accounted in order, parents before children)
        self.speculate = all(self._sparse(x) for x in LOSS)
        # link outages: a slot's down periods over the horizon, in the slot's time; what a
        # connection meets depends on when it opens, so nothing is computed ahead of its opening
        o, st = s.link.outages, s.peer.stall
        self.outages = None if o is None else self._down_periods(o.mtbf, o.duration, OUTAGES)
        # the peer's stalls (its event loop blocked): likewise a slot's, over the horizon
        self.stalls = None if st is None else self._down_periods(st.mtbf, st.duration, STALLS)
        if self.outages is not None or self.stalls is not None:
            self.speculate = False
        # the connections finished so far: their rounds and how many ended before the horizon
        # (the mean connection's rounds, censored ones included, for speculation and windows)
        self.seen_rounds = self.seen_ends = 0
        self.c = np.zeros((len(COUNTERS), n))  # a row per counter (COUNTERS), a column per slot
        # the client's radio: when each slot last used it (the model's radio_last, carried
        # across a slot's connections). Datagram only: see NOT_PRODUCED_TCP
        self.radio_last = None if self.tcp else np.full(n, -INF)
        # whether each row's radio events are in time order as built (no check needed):
        # the client's own beats; or constant delays and every pong back before the next ping
        hb = s.heartbeat
        fixed = all(isinstance(d, Constant) for d in self.delay.values())
        rtt = sum(d.value for d in self.delay.values()) if fixed else INF
        self.radio_in_order = hb.initiator == "client" and (
            hb.style == "oneway" or rtt < hb.interval * (1 - hb.jitter)
        )
        self.radio_in_order |= hb.initiator == "server" and fixed
        # (a stalled peer sends late: a stalled client's pongs go out after their pings came)
        self.radio_in_order &= s.peer.stall is None
        # application traffic: Poisson arrivals from the opening, per sending side
        sides = {"both": ("client", "server"), "up": ("client",), "down": ("server",)}
        self.app_sides = sides[s.app.direction] if s.app.rate > 0 else ()
        self.radio_in_order &= not self.app_sides
        self.durations: list[tuple[np.ndarray, np.ndarray]] = []  # (slots, values)
        self.latencies: list[tuple[np.ndarray, np.ndarray]] = []

    # -- down periods (link outages) ------------------------------------------------------------

    def _down_periods(self, mtbf: float, duration, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """Each slot's down periods over the horizon, as the model's ``DownPeriods``: up times
        exponential with mean ``mtbf`` and down times from ``duration``, alternating from an up
        period at 0, the last starting before the horizon. (starts, ends): a row per slot,
        ascending, inf-padded. Draw 2k and 2k+1 of the slot's stream are period k's."""
        s = self.s
        n, H = s.connections, s.horizon
        keys = _keys(s.seed, np.arange(n), stream)
        k = 8
        while True:
            u = _uniforms(keys, np.arange(2 * k))
            up, length = _sample(Exponential(mtbf), u[:, 0::2]), _sample(duration, u[:, 1::2])
            # start_k = up_0 + length_0 + ... + up_k: end to end, in the model's order
            starts = np.empty((n, k))
            t = np.zeros(n)
            for i in range(k):
                t = t + up[:, i]
                starts[:, i] = t
                t = t + length[:, i]
            if (starts[:, -1] >= H).all():
                break
            k *= 2
        keep = starts < H
        width = int(keep.sum(axis=1).max()) if n else 0
        ends = np.where(keep, starts + length, INF)[:, :width]
        return np.where(keep, starts, INF)[:, :width], ends

    def _outages(self, b: Batch) -> tuple[np.ndarray, np.ndarray]:
        """The outages of each row's slot from its opening on (times from the opening), those
        that end after it and start before its horizon: (starts, ends), a row each."""
        return self._periods(b, "outages")

    def _periods(self, b: Batch, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``which`` (outages, stalls) of each row's slot from its opening on, as ``_outages``."""
        if b._periods is None:
            b._periods = {}
        if which not in b._periods:
            starts, ends = getattr(self, which)
            lo = starts[b.slots] - b.opening[:, None]
            hi = ends[b.slots] - b.opening[:, None]
            b._periods[which] = tuple(_compact((hi > 0) & (lo < b.horizon[:, None]), lo, hi))
        return b._periods[which]

    def _stall_end(self, b: Batch, t: np.ndarray) -> np.ndarray:
        """``t`` (a row of times per batch row, from its opening), or the end of the peer's
        stall covering it: what reaches the stalled peer's application then, and a timer of
        its that falls due then fires then (the model's ``_deliver`` and ``_beat``)."""
        starts, ends = self._periods(b, "stalls")
        out = t.copy()
        for k in range(starts.shape[1]):
            lo, hi = starts[:, k : k + 1], ends[:, k : k + 1]
            np.copyto(out, np.broadcast_to(hi, t.shape), where=(t >= lo) & (t < hi))
        return out

    def _stalled_beats(self, b: Batch, raw: np.ndarray) -> np.ndarray:
        """The peer's heartbeat timer across its stalls: a beat due during a stall is sent when
        the stall ends and the next is scheduled from then (the model's ``_beat`` re-arms the
        timer for the stall's end), so the rest of the schedule moves by as much.

        Row by row, stall by stall in time order (a shift moves only later beats): the first
        beat at or after the stall's start, by bisection on the unshifted schedule plus the
        shifts so far (every beat from the last shifted one on has moved by all of them)."""
        starts, ends = self._periods(b, "stalls")
        R, W = raw.shape
        if starts.shape[1] == 0 or W == 0:
            return raw
        delta = None
        for r in np.flatnonzero(starts[:, 0] <= raw[:, -1]).tolist():  # (rows a stall meets)
            row, lo, hi = raw[r], starts[r].tolist(), ends[r].tolist()
            last = float(row[-1])
            total, since = 0.0, 0  # the shifts so far; the last beat shifted
            for k in range(len(lo)):  # in time order: a shift only moves later beats
                if not lo[k] <= last + total:
                    break  # (these and the later ones start after the window's last beat)
                j = max(int(np.searchsorted(row, lo[k] - total)), since)
                if j >= W:
                    break
                t = float(row[j]) + total
                if t < hi[k]:
                    if delta is None:
                        delta = np.zeros((R, W))
                    delta[r, j] += hi[k] - t
                    total += hi[k] - t
                    since = j
        return raw if delta is None else raw + np.cumsum(delta, axis=1)

    def _down(self, b: Batch, t: np.ndarray, rows=None) -> np.ndarray:
        """Whether the access link is down at times ``t`` (from each row's opening): a row of
        ``t`` per batch row, or one time per entry of ``rows``. A period covers [start, end),
        as ``DownPeriods.end_if_down``."""
        starts, ends = self._outages(b)
        if rows is not None:
            starts, ends = starts[rows], ends[rows]
        if starts.shape[1] == 0:
            return np.zeros(t.shape, dtype=bool)
        if t.ndim == 1:  # (a few scattered times)
            i = _count_below(starts, t, equal=True) - 1  # the last period starting by t
            return (i >= 0) & (t < ends[np.arange(len(t)), np.maximum(i, 0)])
        out = np.zeros(t.shape, dtype=bool)
        for r in np.flatnonzero(np.isfinite(starts[:, 0])):  # (a bisection per row)
            i = np.searchsorted(starts[r], t[r], side="right") - 1
            out[r] = (i >= 0) & (t[r] < ends[r, np.maximum(i, 0)])
        return out

    def _up_at(self, slots: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``t`` (the slot's time), or the end of the outage covering it: a reconnect attempt
        during an outage completes when the link comes back (the model's ``_reconnect``)."""
        if self.outages is None or len(t) == 0:
            return t
        starts, ends = (x[slots] for x in self.outages)
        if starts.shape[1] == 0:  # (no outage before the horizon in any slot)
            return t
        inside = (starts <= t[:, None]) & (t[:, None] < ends)
        return np.where(inside.any(axis=1), _at(ends, inside.argmax(axis=1)), t)

    # -- application traffic ---------------------------------------------------------------------

    def _app_times(self, b: Batch, until: np.ndarray) -> dict:
        """Each side's app messages (the model's ``_app``): Poisson arrivals from the opening
        (gaps exponential, draw i of the connection's stream APP[side] the i-th), those before
        ``until`` (a row each: the window's last heartbeat, or the horizon). The peer writes
        none once crashed, and one written during its stall goes out when the stall ends.
        Returns side -> send times, ascending, INF-padded."""
        out = {}
        mean = 1.0 / self.s.app.rate
        span = float(until.max()) if len(until) else 0.0
        for side in self.app_sides:
            k = int(span / mean + 4 * math.sqrt(span / mean)) + 8
            while True:
                gaps = -mean * np.log(_uniforms(b.key(APP[side]), np.arange(k)))
                t = np.cumsum(gaps, axis=1)
                if (t[:, -1] >= until).all():
                    break
                k *= 2
            t = np.where(t < until[:, None], t, INF)
            if side == self.P:
                if self.stalls is not None:  # (the model's _app_send: at the stall's end)
                    t = self._stall_end(b, t)
                    t = np.where(t < b.horizon[:, None], t, INF)
                # written and sent while alive (a stall's end after the crash: never sent)
                t = np.where(t < b.crash[:, None], t, INF)
            width = int(np.isfinite(t).sum(axis=1).max()) if t.size else 0
            out[side] = t[:, : max(width, 1)]
        return out

    def _dir(self, b: Batch, src: str, sent: np.ndarray, fwd: int, back: int) -> Direction:
        """``_direction`` of ``src``'s heartbeat messages ``sent``, with its app messages in
        the same stream (TCP: the same segments' order, losses and RTO samples; datagram: the
        same loss stream): the heartbeats' view, ``full`` being every message."""
        app = b._app.get(src) if b._app else None
        if app is None:
            d = self._direction(b, src, sent, fwd, back)
            d.full = d
            return d
        R, n = sent.shape
        both = np.concatenate([sent, app], axis=1)
        order = np.argsort(both, axis=1, kind="stable")  # heartbeats first at a tie
        merged = np.take_along_axis(both, order, axis=1)
        cols = np.empty_like(order)
        np.put_along_axis(cols, order, np.arange(both.shape[1])[None, :], axis=1)
        full = self._direction(b, src, merged, fwd, back)
        full.app = order >= n
        full.full = full
        hb = cols[:, :n]
        take = lambda a: np.take_along_axis(a, hb, axis=1)  # noqa: E731
        d = Direction(
            src,
            sent,
            take(full.at),
            take(full.arrive),
            take(full.raw),
            None,
            full.doomed_at,
            full.giveup_at,
            None,
        )
        d.full, d.hb_cols = full, hb
        return d

    # -- losses -------------------------------------------------------------------------------

    def _fates(
        self, src: str, slots: np.ndarray, pos: np.ndarray, m: int, index=None
    ) -> np.ndarray:
        """Lost or not: packets pos..pos+m-1 of each row's slot's stream from ``src`` (or the
        packets ``index``, a row each)."""
        loss = self.loss[src]
        if index is None:
            index = pos[:, None] + np.arange(m)
        m = index.shape[1]
        if loss.model == "bernoulli":
            if loss.p <= 0:
                return np.zeros((len(slots), m), dtype=bool)
            return _uniforms(self.loss_keys[src][slots], index) < loss.p
        need = int(index.max()) + 1 if index.size else 0
        states = self.gilbert.get(src)
        if states is None or states.shape[1] < need:
            size = max(need, 2 * (0 if states is None else states.shape[1]), 1024)
            states = gilbert_states(loss, self.loss_keys[src], size)
            self.gilbert[src] = states
        bad = states[slots[:, None], index]
        u = _uniforms(self.loss_keys[src][slots] ^ np.uint64(1), index)
        return u < np.where(bad, loss.loss_bad, loss.loss_good)

    def _sparse(self, src: str) -> bool:
        return self.loss[src].model == "bernoulli"

    def _gaps(self, src: str, keys: np.ndarray, number: np.ndarray) -> np.ndarray:
        """Packets from one Bernoulli loss to the next (geometric, >= 1): loss ``number``'s
        (loss 0's: from the stream's start to it, plus one)."""
        p = self.loss[src].p
        if p <= 0:
            return np.full((len(keys), len(number)), 1 << 60, dtype=np.int64)
        u = _uniforms(keys, number)
        with np.errstate(divide="ignore"):
            g = np.ceil(np.log(u) / self.log_keep[src])
        np.maximum(g, 1, out=g)
        return np.minimum(g, 1 << 60, out=g).astype(np.int64)

    def _losses(self, src: str, keys: np.ndarray, cover: int) -> np.ndarray:
        """Each row's lost packets (a stream of the connection's own, by ``keys``), as
        ascending offsets from its start: enough that the last (number k - 1 from 0) has
        offset - (k - 1) >= cover, so every loss before the cover-th delivered packet is
        there, and the first loss after it."""
        mean = self.loss[src].p * cover  # (enough for every row of a batch, mostly)
        k = int(mean + 4 * math.sqrt(mean)) + 8
        while True:
            rel = self._gaps(src, keys, np.arange(k))
            np.cumsum(rel, axis=1, out=rel)
            rel -= 1
            if (rel[:, -1] - (k - 1) >= cover).all():
                return rel
            k *= 2

    def _advance(self, d: Direction, rows, slots, used: np.ndarray) -> None:
        """The slots' loss streams from ``d.src`` move past the ``used`` packets (Gilbert-
        Elliott losses: a stream a slot; Bernoulli losses have a stream a connection)."""
        if not self._sparse(d.src):
            self.pos[d.src][slots] += used

    def _dense(self, b: Batch, src: str, row: int, m: int) -> np.ndarray:
        """Lost or not: the first m packets of row ``row``'s stream from ``src``."""
        if not self._sparse(src):
            return self._fates(src, b.slots[row : row + 1], b.pos[src][row : row + 1], m)
        rel = self._losses(src, b.loss_key[src][row : row + 1], m)
        lost = np.zeros((len(rel), m + 1), dtype=bool)
        r, c = np.nonzero(rel < m)
        lost[r, rel[r, c]] = True
        return lost[:, :m]

    def _delay(self, b: Batch, src: str, stream: int, n: int):
        """The messages' delays: a number if constant."""
        d = self.delay[src]
        return d.value if isinstance(d, Constant) else b.draw(d, stream, n)

    def _sparse_direction(self, b: Batch, src: str, sent: np.ndarray, fwd: int, back: int):
        """``_direction`` with Bernoulli losses drawn as gaps: work on the few lost packets."""
        R, n = sent.shape
        valid = np.isfinite(sent)
        delay = self._delay(b, src, fwd, n)
        none = np.full(R, INF)
        rel = self._losses(src, b.loss_key[src], n)
        if not self.tcp:
            at = sent.copy()
            down = self._down(b, sent) if self.outages is not None else None
            if down is not None and down.any():
                # a datagram sent while the link is down is lost without a loss draw: the
                # stream's packets are the messages sent while it is up
                up = ~down
                (col,) = _compact(up, np.broadcast_to(np.arange(float(n)), (R, n)))
                r, j = np.nonzero(rel < up.sum(axis=1)[:, None])
                at[r, col[r, rel[r, j]].astype(np.int64)] = INF
                at[down] = INF
            else:
                r, j = np.nonzero(rel < n)
                at[r, rel[r, j]] = INF
            arrive = at + delay
            return Direction(src, sent, at, arrive, arrive, None, none, none, None, rel, rel)
        tcp = self.s.link.tcp
        cap = tcp.max_retries + 1  # transmissions before giving up
        count = valid.sum(axis=1)
        hits = rel - np.arange(rel.shape[1])  # the message each loss delays (its retransmission)
        r, j = np.nonzero(hits < count[:, None])
        flat = r * n + hits[r, j]  # ascending
        new = np.ones(len(flat), dtype=bool)
        new[1:] = flat[1:] != flat[:-1]
        starts = np.flatnonzero(new)
        ids = flat[starts]
        attempts = np.empty(len(starts), dtype=np.int64)  # of the retransmitted messages
        attempts[:-1] = starts[1:]
        attempts[-1:] = len(flat)
        attempts += 1 - starts
        mr, mc = ids // n, ids % n
        over = attempts > cap
        has = np.zeros(R, dtype=bool)
        doomed = np.zeros(R, dtype=np.int64)
        if over.any():  # a message runs out of retries: from there, one by one (dense)
            first = np.flatnonzero(over)
            first = first[np.concatenate([[True], mr[first][1:] != mr[first][:-1]])]
            has[mr[first]], doomed[mr[first]] = True, mc[first]
            dense = np.ones((R, n), dtype=np.int64)
            dense[mr, mc] = attempts
            packets = np.cumsum(np.minimum(dense, cap), axis=1)
            for row in np.flatnonzero(has):
                d, k_end = int(doomed[row]), int(count[row])
                start = int(packets[row, d - 1]) if d else 0
                need = start + (k_end - d) * cap + 1
                fates = self._dense(b, src, row, need)[0]
                idx = np.where(~fates, np.arange(need), need + cap + 1)
                nxt = np.minimum.accumulate(idx[::-1])[::-1].tolist()
                q, tail = start, []
                for _ in range(d, k_end):
                    k = min(nxt[q] - q + 1, cap + 1)
                    tail.append(k)
                    q += min(k, cap)
                dense[row, d:k_end] = tail
            dense[~valid] = 1
            mr, mc = np.nonzero(dense != 1)
            attempts = dense[mr, mc]
            # packets used by each message's prefix, from the dense attempts
            hits = None
            packets = np.cumsum(np.minimum(dense, cap), axis=1)
        fixed = [self.delay[x] for x in (src, "server" if src == "client" else "client")]
        if all(isinstance(d, Constant) for d in fixed):
            rto = _Rto(None, None, tcp, fixed[0].value + fixed[1].value, sparse=mr * n + mc)
            rto.width = n
        else:
            once = valid.copy()
            once[mr, mc] = False
            rtt = delay + b.draw(fixed[1], back, n)
            rto = _Rto(rtt, once, tcp)
        at = sent.copy()
        if len(mr):  # the retransmitted few: their backoffs
            base, times = rto.at(mr, mc), np.minimum(attempts, cap) - 1
            at[mr, mc] += sum(
                np.where(times > k, np.minimum(base * 2.0**k, tcp.max_rto), 0.0)
                for k in range(int(times.max()))
            )
        arrive = at + delay
        doomed_at = giveup_at = none
        if has.any():
            behind = has[:, None] & (np.arange(n)[None, :] >= doomed[:, None])
            arrive[behind] = INF  # in order: nothing behind the doomed segment gets through
            rows = np.flatnonzero(has)
            at[rows, doomed[rows]] = INF
            doomed_at = np.where(has, _at(sent, doomed), INF)
            giveup_at = np.where(has, doomed_at + _give_up(rto.first(doomed), tcp), INF)
            out = Direction(src, sent, at, arrive, arrive, rto, doomed_at, giveup_at, packets, rel)
        else:
            out = Direction(src, sent, at, arrive, arrive, rto, none, none, None, rel, hits)
        out.arrive = _in_order(arrive)
        keep = valid[mr, mc]
        out.retx = (mr[keep], mc[keep], attempts[keep])
        return out

    # -- one direction ------------------------------------------------------------------------

    def _direction(self, b: Batch, src: str, sent: np.ndarray, fwd: int, back: int) -> Direction:
        """Losses, ladders and arrivals of messages sent by ``src`` at ``sent`` (ascending)."""
        if self.tcp and self.outages is not None and self._outages(b)[0].shape[1]:
            return self._tcp_with_outages(b, src, sent, fwd, back)
        if self._sparse(src):
            return self._sparse_direction(b, src, sent, fwd, back)
        R, n = sent.shape
        valid = np.isfinite(sent)
        delay = b.draw(self.delay[src], fwd, n)
        pos = b.pos[src]
        none = np.full(R, INF)
        if not self.tcp:
            down = self._down(b, sent) if self.outages is not None else None
            if down is not None and down.any():
                # a datagram sent while the link is down is lost without stepping the loss
                # chain: the stream's packets are the messages sent while it is up
                packets = np.cumsum(~down, axis=1)
                index = pos[:, None] + np.maximum(packets - 1, 0)
                lost = self._fates(src, b.slots, pos, n, index) | down
            else:
                lost = self._fates(src, b.slots, pos, n)
                packets = np.broadcast_to(np.arange(1, n + 1), (R, n))
            ok = valid & ~lost
            arrive = np.where(ok, sent + delay, INF)
            at = np.where(ok, sent, INF)
            return Direction(src, sent, at, arrive, arrive, None, none, none, packets)
        tcp = self.s.link.tcp
        cap = tcp.max_retries + 1  # transmissions before giving up
        count = valid.sum(axis=1)
        loss = self.loss[src]
        q = loss.p if loss.model == "bernoulli" else max(loss.loss_good, loss.loss_bad)
        m = int(n / max(1.0 - q, 0.05) * 1.05) + 64  # packets enough for n messages, mostly
        while True:
            ok = ~self._fates(src, b.slots, pos, m)
            if (ok.sum(axis=1) >= count).all() or m > (n + 1) * cap + 64:
                break  # (past that bound, a message short of packets has run out of retries)
            m *= 2
        # message i ends with the i-th delivered packet...
        needed = ok & (np.cumsum(ok, axis=1) <= n)
        (ends,) = _compact(needed, np.broadcast_to(np.arange(1.0, m + 1), ok.shape))
        ends = np.where(np.isfinite(ends), ends, m).astype(np.int64)
        if ends.shape[1] < n:
            ends = np.concatenate([ends, np.full((R, n - ends.shape[1]), m)], axis=1)
        attempts = np.diff(ends, axis=1, prepend=0)
        doomed, has = _first((attempts > cap) & valid)
        for row in np.flatnonzero(has):  # ...unless one runs out of retries: from there, one by one
            d, k_end = int(doomed[row]), int(count[row])
            start = int(ends[row, d - 1]) if d else 0
            need = start + (k_end - d) * cap + 1
            fates = self._dense(b, src, row, need)[0]
            idx = np.where(~fates, np.arange(need), need + cap + 1)
            nxt = np.minimum.accumulate(idx[::-1])[::-1].tolist()
            q, tail = start, []
            for _ in range(d, k_end):
                k = min(nxt[q] - q + 1, cap + 1)
                tail.append(k)
                q += min(k, cap)
            attempts[row, d:k_end] = tail
            ends[row, :k_end] = np.cumsum(np.minimum(attempts[row, :k_end], cap))
        other = "server" if src == "client" else "client"
        fixed = [self.delay[x] for x in (src, other)]
        if all(isinstance(d, Constant) for d in fixed):
            rto = _Rto(None, (attempts == 1) & valid, tcp, fixed[0].value + fixed[1].value)
        else:
            rtt = delay + b.draw(self.delay[other], back, n)
            rto = _Rto(rtt, (attempts == 1) & valid, tcp)
        retrans = np.where(valid, np.minimum(attempts, cap) - 1, 0)
        ladder = np.zeros((R, n))
        rr, cc = np.nonzero(retrans)
        if len(rr):  # the retransmitted few: their backoffs
            base, times = rto.at(rr, cc), retrans[rr, cc]
            ladder[rr, cc] = sum(
                np.where(times > k, np.minimum(base * 2.0**k, tcp.max_rto), 0.0)
                for k in range(int(times.max()))
            )
        at = sent + ladder
        arrive = np.where((attempts <= cap) & valid, at + delay, INF)
        doomed_at = giveup_at = none
        if has.any():
            behind = has[:, None] & (np.arange(n)[None, :] >= doomed[:, None])
            arrive[behind] = INF  # in order: nothing behind the doomed segment gets through
            rows = np.flatnonzero(has)
            at[rows, doomed[rows]] = INF
            doomed_at = np.where(has, _at(sent, doomed), INF)
            giveup_at = np.where(has, doomed_at + _give_up(rto.first(doomed), tcp), INF)
        raw = arrive
        arrive = _in_order(arrive)
        out = Direction(src, sent, at, arrive, raw, rto, doomed_at, giveup_at, ends)
        mr, mc = np.nonzero((attempts != 1) & valid)
        out.retx = (mr, mc, attempts[mr, mc])
        return out

    # -- TCP across link outages ---------------------------------------------------------------

    def _packets(self, b: Batch, src: str, sent: np.ndarray) -> np.ndarray:
        """Loss draws (transmissions while the link is up) each message uses to get through,
        from its row's stream, as if none ran out of retries: right up to the first that
        needs more than ``max_retries + 1`` (what follows it is recomputed one by one)."""
        R, n = sent.shape
        count = np.isfinite(sent).sum(axis=1)
        cap = self.s.link.tcp.max_retries + 1
        if self._sparse(src):  # each loss delays the message it hits by one packet
            rel = self._losses(src, b.loss_key[src], n)
            hits = rel - np.arange(rel.shape[1])
            r, j = np.nonzero(hits < count[:, None])
            p = np.bincount(r * n + hits[r, j], minlength=R * n).reshape(R, n)
            return p + 1
        loss = self.loss[src]
        q = max(loss.loss_good, loss.loss_bad)
        m = int(n / max(1.0 - q, 0.05) * 1.05) + 64
        while True:
            ok = ~self._fates(src, b.slots, b.pos[src], m)
            if (ok.sum(axis=1) >= count).all() or m > (n + 1) * cap + 64:
                break
            m *= 2
        needed = ok & (np.cumsum(ok, axis=1) <= n)
        (ends,) = _compact(needed, np.broadcast_to(np.arange(1.0, m + 1), ok.shape))
        ends = np.where(np.isfinite(ends), ends, m + cap + 1).astype(np.int64)
        if ends.shape[1] < n:
            ends = np.concatenate([ends, np.full((R, n - ends.shape[1]), m + cap + 1)], axis=1)
        return np.maximum(np.diff(ends, axis=1, prepend=0), 1)

    def _walk(self, b: Batch, rows, sent, need, rto, cap: int):
        """Each message's transmissions along its ladder (doubling from ``rto``): one sent
        while the link is down is lost without a loss draw, one sent while it is up uses a
        draw; the ``need``-th such gets through. Returns (transmissions, the time of the one
        that gets through, draws used); cap + 1 transmissions: it ran out of retries."""
        tcp = self.s.link.tcp
        n = len(sent)
        # every transmission's time (the same sums, in the same order, as one by one), then
        # whether the link is up for each in one look-up: the need-th up one gets through
        times = np.empty((n, cap))
        t = sent
        for k in range(cap):
            times[:, k] = t
            if k + 1 < cap:
                t = t + np.minimum(rto * 2.0**k, tcp.max_rto)
        up = ~self._down(b, times.ravel(), np.repeat(rows, cap)).reshape(n, cap)
        ups = np.cumsum(up, axis=1)
        k, through = _first(up & (ups == need[:, None]))
        tx = np.where(through, k + 1, cap + 1)
        at = np.where(through, times[np.arange(n), k], INF)
        return tx, at, np.minimum(ups[:, -1], need)

    def _tcp_with_outages(self, b: Batch, src: str, sent: np.ndarray, fwd: int, back: int):
        """``_direction`` over TCP when the link has outages. As in the model's ``_send``:
        every transmission sent while the access link is down is lost (the loss process is not
        consulted), so a message needs as many loss draws as without outages, and the
        transmissions it makes are its ladder's up to the one that uses its last draw. A
        segment first sent during an outage is retransmitted, so it gives no RTT sample
        (Karn), which only shifts later RTOs: the walk along each retransmitted segment's
        ladder (the few) uses the RTO from the samples before it. From the first segment that
        runs out of retries on, a row is computed one by one (in order, with the model's RTO
        estimator)."""
        tcp = self.s.link.tcp
        cap = tcp.max_retries + 1
        R, n = sent.shape
        valid = np.isfinite(sent)
        count = valid.sum(axis=1)
        delay = b.draw(self.delay[src], fwd, n)
        other = "server" if src == "client" else "client"
        fixed = [self.delay[x] for x in (src, other)]
        constant = (
            fixed[0].value + fixed[1].value if all(isinstance(d, Constant) for d in fixed) else None
        )
        rtt = None if constant is not None else delay + b.draw(self.delay[other], back, n)
        p = self._packets(b, src, sent)
        down0 = self._down(b, sent) & valid
        rto = _Rto(rtt, (p == 1) & ~down0 & valid, tcp, constant)
        d1, _ = _first((p > cap) & valid)
        d1 = np.where(((p > cap) & valid).any(axis=1), d1, count)
        cols = np.arange(n)[None, :]
        before = valid & (cols < d1[:, None])  # up to the first that runs out of retries
        tx = np.where(before, p, 1)  # transmissions, as if the link were always up
        at = sent.copy()
        used = p.copy()
        walk = before & (p > 1)
        if walk.any():  # the retransmitted: their ladders, and whether one meets an outage
            wr, wc = np.nonzero(walk)
            times = p[wr, wc] - 1
            base = rto.at(wr, wc)
            last = sent[wr, wc] + sum(
                np.where(times > k, np.minimum(base * 2.0**k, tcp.max_rto), 0.0)
                for k in range(int(times.max()))
            )
            at[wr, wc] = last
            starts, ends = self._outages(b)
            meets = np.zeros(len(wr), dtype=bool)
            for k in range(starts.shape[1]):
                meets |= (starts[wr, k] <= last) & (ends[wr, k] > sent[wr, wc])
            walk[wr[~meets], wc[~meets]] = False
        walk |= down0 & before
        wr, wc = np.nonzero(walk)
        if len(wr):
            wt, wa, wu = self._walk(b, wr, sent[wr, wc], p[wr, wc], rto.at(wr, wc), cap)
            tx[wr, wc], at[wr, wc], used[wr, wc] = wt, wa, wu
        # the first segment of each row that runs out of retries: from there, one by one
        over = (tx > cap) & valid & (cols < d1[:, None])
        first, has_over = _first(over)
        start = np.where(has_over, np.minimum(first, d1), d1)
        tail = np.flatnonzero(start < count)
        if len(tail):
            met = walk.copy()  # the segments that met an outage: their times are the walk's
            for row in tail:
                span = int(start[row]), int(count[row])
                self._tail_row(b, src, row, span, sent, rtt, constant, (tx, at, used, met))
            rto = _Rto(rtt, (tx == 1) & valid, tcp, constant)
            # the others' ladders from the RTOs as the other paths compute them (so a row that
            # meets no outage comes out the same whichever path a batch takes)
            mr, mc = np.nonzero(valid & (tx > 1) & ~met)
            if len(mr):
                base, times = rto.at(mr, mc), np.minimum(tx[mr, mc], cap) - 1
                at[mr, mc] = sent[mr, mc] + sum(
                    np.where(times > k, np.minimum(base * 2.0**k, tcp.max_rto), 0.0)
                    for k in range(int(times.max()))
                )
        packets = np.cumsum(np.where(valid, used, 0), axis=1)
        ok = (tx <= cap) & valid
        arrive = np.where(ok, at + delay, INF)
        doomed, has = _first((tx > cap) & valid)
        none = np.full(R, INF)
        doomed_at = giveup_at = none
        if has.any():
            behind = has[:, None] & (cols >= doomed[:, None])
            arrive[behind] = INF  # in order: nothing behind the doomed segment gets through
            rows = np.flatnonzero(has)
            at[rows, doomed[rows]] = INF  # (later ones' are never read: as the other paths)
            doomed_at = np.where(has, _at(sent, doomed), INF)
            giveup_at = np.where(has, doomed_at + _give_up(rto.first(doomed), tcp), INF)
        raw = arrive
        out = Direction(src, sent, at, _in_order(arrive), raw, rto, doomed_at, giveup_at, packets)
        mr, mc = np.nonzero((tx != 1) & valid)
        out.retx = (mr, mc, tx[mr, mc])
        return out

    def _tail_row(self, b, src, row, span, sent, rtt, constant, out) -> None:
        """Messages ``start``..``end - 1`` (``span``) of row ``row``, one by one as the model
        sends them, filling ``out``: (transmissions, the time of the one that gets through,
        loss draws used, whether one met an outage). The RTO estimator is fed in order (Karn's
        rule); each transmission is lost while the link is down, else by the next loss draw."""
        start, end = span
        tx, at, used, met = out
        tcp = self.s.link.tcp
        cap = tcp.max_retries + 1
        est = RtoEstimator(tcp)
        sample = (lambda i: constant) if constant is not None else (lambda i: float(rtt[row, i]))
        for i in np.flatnonzero(tx[row, :start] == 1).tolist():
            est.sample(sample(i))
        lo, hi = (x[row][np.isfinite(x[row])].tolist() for x in self._outages(b))
        q = int(used[row, :start].sum())
        times = sent[row].tolist()
        fates: list = []
        for i in range(start, end):
            t0 = times[i]
            if len(fates) < q + cap:  # the row's loss draws, as far as needed
                fates = self._dense(b, src, row, max(2 * len(fates), q + 64 * cap))[0].tolist()
            t, k, draws, through = t0, 0, 0, False
            while k < cap:
                j = bisect.bisect_right(lo, t) - 1
                if j < 0 or t >= hi[j]:  # the link is up: a loss draw
                    draws += 1
                    q += 1
                    if not fates[q - 1]:
                        through = True
                        break
                else:
                    met[row, i] = True
                t += est.backoff(k)
                k += 1
            tx[row, i] = k + 1 if through else cap + 1
            at[row, i] = t if through else INF
            used[row, i] = draws
            if through and k == 0:
                est.sample(sample(i))

    def _drop(self, arrive: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        """Arrivals with these messages lost; over TCP everything behind the first is held
        back for good (in-order delivery)."""
        if self.tcp:
            dropped = np.logical_or.accumulate(dropped, axis=1) if dropped.size else dropped
        return np.where(dropped, INF, arrive)

    def _cut_after_death(self, d: Direction, death: np.ndarray) -> np.ndarray:
        """Arrivals of a sender that dies at ``death``: no transmission leaves after it."""
        if d.at.shape[1] == 0:
            return d.arrive
        latest = np.max(d.at, axis=1, initial=-INF, where=np.isfinite(d.at))
        rows = np.flatnonzero(death <= latest)  # only these send anything after it
        if len(rows) == 0:
            return d.arrive
        at = d.at[rows]
        out = d.arrive.copy()
        out[rows] = self._drop(out[rows], (at >= death[rows, None]) & np.isfinite(at))
        return out

    @staticmethod
    def _crossings(d: Direction) -> np.ndarray:
        """When each message crosses the NAT (at the client's end): an outbound one when its
        transmission that gets through leaves, an inbound one when it reaches the client."""
        return d.at if d.src == "client" else d.raw

    # -- the batch ------------------------------------------------------------------------------

    def run(self) -> list[FastSlot]:
        with np.errstate(invalid="ignore"):  # inf - inf in padding, never read
            return self._run()

    SPECULATE = 32  # a slot's connections after its current one computed with it, at most
    SPECULATE_CELLS = 1 << 16  # rounds of speculative rows worth a batch's fixed cost, about
    CHURN_WINDOW = 3  # a first window of this many mean connections (once some have ended)

    def _run(self) -> list[FastSlot]:
        s = self.s
        n, H = s.connections, s.horizon
        last_rounds = np.zeros(n, dtype=np.int64)
        slots, numbers, t0 = np.arange(n), np.ones(n, dtype=np.int64), np.zeros(n)
        window = self._first_window(slots, numbers, t0, last_rounds[slots])
        self.c[_CONNECTIONS] += 1
        T, j = s.heartbeat.interval, s.heartbeat.jitter
        shortest = T * (1 - j)
        while len(slots):
            # rows of similar length together (a batch is as wide as its widest row), short
            # ones all at once (a batch has a fixed cost of about a few thousand rounds')
            left = ((H - t0) / shortest).astype(np.int64) + 2
            wide = np.maximum(np.minimum(window, left), 64)
            group = self._groups(np.ceil(np.log2(wide)).astype(np.int64))
            # each row: (slot, number, window, computed up to, known opening or nan, parent)
            rows = [slots, numbers, window, H - t0, t0, np.full(len(slots), -1), group]
            crash = self._crash(slots, numbers)
            if self.speculate:
                rows, crash = self._speculate(rows, crash, np.minimum(window, left))
            slots_, numbers_, window_, horizon, opening, parent, group_ = rows
            redo, new = [], []
            groups = np.unique(group_)
            for g in groups:
                idx = np.flatnonzero(group_ == g) if len(groups) > 1 else np.arange(len(slots_))
                # parents come before their children, in the group too
                back = np.full(len(slots_), -1)
                back[idx] = np.arange(len(idx))
                par = np.where(parent[idx] >= 0, back[np.maximum(parent[idx], 0)], -1)
                sl = slots_[idx]
                b = Batch(
                    sl,
                    numbers_[idx],
                    horizon[idx],
                    window_[idx],
                    s.seed,
                    {k: v[sl] for k, v in self.pos.items()},
                    {k: self._loss_keys(k, sl, numbers_[idx]) for k in LOSS},
                    crash[idx],
                    opening[idx],
                )
                out = self._batch(b, opening[idx], par, last_rounds)
                redo.append(out[0])
                new.append(out[1])
            redo_ = [np.concatenate(x) for x in zip(*redo, strict=True)]
            new_ = [np.concatenate(x) for x in zip(*new, strict=True)]
            self.c[_CONNECTIONS, new_[0]] += 1
            slots = np.concatenate([redo_[0], new_[0]])
            numbers = np.concatenate([redo_[1], new_[1]])
            t0 = np.concatenate([redo_[2], new_[2]])
            # again: four times as long, or a few mean connections more (once some ended)
            again = redo_[3] * 4
            mean = self._mean_rounds()
            if mean < 1 << 40:
                again = np.minimum(again, redo_[3] + max(64, int(self.CHURN_WINDOW * mean)))
            if len(new_[0]):
                window = np.concatenate([again, self._first_window(*new_, last_rounds[new_[0]])])
            else:
                window = again
        return self._slots()

    GROUP_CELLS = 4096  # a batch's fixed cost, in cells (rows times rounds), about

    def _groups(self, width: np.ndarray) -> np.ndarray:
        """Each row's group, from its width's log2: rows of similar widths together, a
        narrower class joined to the next wider one while padding its rows costs less than
        a batch of their own. A group is named by its widest class."""
        classes, count = np.unique(width, return_counts=True)
        top = classes.copy()
        rows = 0
        for i in range(len(classes)):
            if i and rows * ((1 << int(classes[i])) - (1 << int(top[i - 1]))) < self.GROUP_CELLS:
                top[top == top[i - 1]] = classes[i]
                rows += int(count[i])
            else:
                rows = int(count[i])
        return top[np.searchsorted(classes, width)]

    def _mean_rounds(self) -> float:
        """The mean connection's rounds so far (the rounds of the finished connections over
        how many ended before the horizon; inf: none has)."""
        return self.seen_rounds / self.seen_ends if self.seen_ends else INF

    def _speculate(self, rows: list, crash: np.ndarray, wide: np.ndarray):
        """Add to each row the slot's next connections that likely open before the horizon
        (SPECULATE at most), those short enough not to widen its batch: computed with it,
        kept if they happen. A connection is expected to end at its peer's crash or after
        the mean connection so far, whichever comes first. A speculative row costs as many
        rounds as the widest of its batch: rows are added, earliest expected first, while
        they cost less than a few batches' fixed cost (SPECULATE_CELLS) or a quarter of
        the batch."""
        H = self.s.horizon
        reopen = self.s.reconnect.delay
        # (a little shorter than the mean: a slot's last connections before the horizon are
        # as likely to open as not, and one left out costs the slot a batch of its own)
        life = 0.8 * self._mean_rounds() * self.s.heartbeat.interval
        out, crashes = [[r] for r in rows], [crash]
        slots, numbers, _, horizon, opening, _, group = rows
        width = np.zeros(int(group.max()) + 1, dtype=np.int64)  # each group's width
        np.maximum.at(width, group, wide)
        budget = max(self.SPECULATE_CELLS, int(width[group].sum()) // 4)
        at = opening + np.minimum(crash, life) + reopen  # (an estimate of the next opening)
        index = np.arange(len(slots))
        offset = len(slots)
        for _ in range(self.SPECULATE):
            more = np.flatnonzero(at < H)
            if len(more) == 0:
                break
            slots, numbers, guess = slots[more], numbers[more] + 1, at[more]
            window = self._first_window(slots, numbers, guess, np.zeros(len(more), np.int64))
            fits = window <= 1 << group[more]  # (the batch's width: see _run)
            more, slots, numbers, guess, window = (
                x[fits] for x in (more, slots, numbers, guess, window)
            )
            cost = width[group[more]]
            last = int(cost.sum()) > budget
            if last:  # the earliest ones that fit in what is left
                order = np.argsort(guess, kind="stable")
                keep = np.sort(order[np.cumsum(cost[order]) <= budget])
                more, slots, numbers, guess, window, cost = (
                    x[keep] for x in (more, slots, numbers, guess, window, cost)
                )
            budget -= int(cost.sum())
            if len(more) == 0:
                break
            crash = self._crash(slots, numbers)
            horizon, group = horizon[more], group[more]
            for o, r in zip(
                out,
                (slots, numbers, window, horizon, np.full(len(more), np.nan), index[more], group),
                strict=True,
            ):
                o.append(r)
            crashes.append(crash)
            if last:
                break
            index = offset + np.arange(len(more))
            offset += len(more)
            at = guess + np.minimum(crash, life) + reopen
        return [np.concatenate(o) for o in out], np.concatenate(crashes)

    def _loss_keys(self, side: str, slots: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """Each row's loss stream's key: the connection's own (Bernoulli) or the slot's."""
        if self._sparse(side):
            return _subkeys(self.loss_keys[side][slots], numbers)
        return self.loss_keys[side][slots]

    def _crash(self, slots, numbers) -> np.ndarray:
        """When each connection's peer crashes, from its opening (inf: never)."""
        if self.crash_dist is None:
            return np.full(len(slots), INF)
        key = (slots.tobytes(), numbers.tobytes())  # (the same rows are often asked twice)
        if key not in self._crashes:
            u = _uniforms(_keys(self.s.seed, slots, CRASH, numbers), np.zeros(1, np.int64))[:, 0]
            self._crashes = {key: _sample(self.crash_dist, u)}
        return self._crashes[key]

    def _first_window(self, slots, numbers, t0, last) -> np.ndarray:
        """Rounds to compute first: all that are left, or up to the peer's crash and its
        detection, or twice what the slot's last connection used."""
        s = self.s
        T, j = s.heartbeat.interval, s.heartbeat.jitter
        shortest = T * (1 - j)
        left = ((s.horizon - t0) / shortest).astype(np.int64) + 2
        if s.peer.crash is not None:
            det = s.detector
            span = max(det.timeout or 0.0, (det.missed.k + 1) * T + s.ack_timeout)
            to_crash = (self._crash(slots, numbers) + span) / shortest
            w = np.minimum(left, np.minimum(to_crash, 1 << 40).astype(np.int64) + 64)
        else:
            w = np.minimum(left, np.where(last > 0, 2 * last, 1 << 16))
        mean = self._mean_rounds()
        if mean < 1 << 40:  # a few mean connections: most end within
            w = np.minimum(w, int(self.CHURN_WINDOW * mean))
        return np.maximum(64, w)

    def _batch(self, b: Batch, opening: np.ndarray, parent: np.ndarray, last_rounds):
        """Evaluate a batch; account the rows that happen and ended or are complete (a row
        whose parent row ended before the horizon opens then), all at once, in order.

        Returns the rows to compute again with a longer window (slots, numbers, openings,
        windows) and the connections to compute next (slots, numbers, openings)."""
        s = self.s
        H = s.horizon
        T, j = s.heartbeat.interval, s.heartbeat.jitter
        left = (b.horizon / (T * (1 - j))).astype(np.int64) + 2  # rounds up to the horizon
        W = int(np.minimum(b.window, left).max())
        if j:
            raw = np.cumsum(T * (1 + j * (2 * _uniforms(b.key(JITTER), np.arange(W)) - 1)), axis=1)
        else:  # (the same sums for every row)
            raw = np.broadcast_to(np.cumsum(np.full(W, T)), (len(b.slots), W))
        if self.stalls is not None and s.heartbeat.initiator == self.P:
            raw = self._stalled_beats(b, raw)
        sigma = np.where(raw < b.horizon[:, None], raw, INF)
        if self.app_sides:  # everything sent before the window's last beat is final
            b._app = self._app_times(b, np.minimum(raw[:, -1], b.horizon))
        w = self._evaluate(b, sigma)
        t, by = self._first_end(w)
        R = len(b.slots)
        opening = opening.copy()
        happens = parent < 0  # rows whose connection takes place (openings known)
        pending = np.flatnonzero(happens)
        done = np.zeros(R, dtype=bool)
        has_end = np.zeros(R, dtype=bool)
        end_t = np.full(R, INF)
        rest = np.full(R, H)  # the horizon from each opening
        next_open = np.full(R, INF)
        last_raw = raw[:, -1]
        while len(pending):
            # the rows that take place in this generation (at most one a slot)
            p = pending
            rest_p = H - opening[p]
            complete = last_raw[p] >= rest_p
            final = np.where(complete, rest_p, last_raw[p])
            end_p = np.where(t[p] < final, t[p], INF)
            has_p = end_p < INF
            now = has_p | complete
            q, has_q, end_q, rest_q = p[now], has_p[now], end_p[now], rest_p[now]
            done[q], has_end[q], end_t[q], rest[q] = True, has_q, end_q, rest_q
            until = (raw[q] < np.where(has_q, end_q, rest_q)[:, None]).sum(axis=1) + 1
            last_rounds[b.slots[q]] = until
            self.seen_rounds += int(until.sum())
            self.seen_ends += int(np.count_nonzero(has_q))
            next_open[q] = self._up_at(
                b.slots[q], opening[q] + np.where(has_q, end_q + s.reconnect.delay, INF)
            )
            if (parent < 0).all():
                break
            # the children of the rows that ended before the horizon take place
            is_done = np.zeros(R, dtype=bool)
            is_done[q] = True
            up = np.maximum(parent, 0)
            ok = (parent >= 0) & ~happens & is_done[up] & (next_open[up] < H)
            opening[ok] = next_open[parent[ok]]
            self.c[_CONNECTIONS, b.slots[ok]] += 1
            happens |= ok
            pending = np.flatnonzero(ok)
        # every generation's rows at once (parents before their children)
        self._account(b, w, done, has_end, end_t, by, rest, opening, parent)
        # rows that take place but did not reach their end: again, with a longer window
        redo = happens & ~done
        # connections that open and were not computed here
        has_child = np.zeros(R, dtype=bool)
        has_child[parent[happens & (parent >= 0)]] = True
        new = done & (next_open < H) & ~has_child
        return (
            (b.slots[redo], b.numbers[redo], opening[redo], b.window[redo]),
            (b.slots[new], b.numbers[new] + 1, next_open[new]),
        )

    def _evaluate(self, b: Batch, sigma: np.ndarray) -> dict:
        """Everything the rounds sent at ``sigma`` do, as the detector side sees it."""
        s, D, P = self.s, self.D, self.P
        R, W = sigma.shape
        crash = b.crash
        pingpong = s.heartbeat.style == "pingpong"
        sender = s.heartbeat.initiator  # one side (validated: not both)
        nat = s.nat.idle_timeout is not None
        seq = np.broadcast_to(np.arange(1, W + 1), (R, W))
        if sender == P:
            sigma = np.where(sigma < crash[:, None], sigma, INF)
        first = self._dir(b, sender, sigma, DELAY_FWD, RTT_FWD)
        first_full = self._cut_after_death(first.full, crash) if sender == P else first.full.arrive
        first_arrive = first.view(first_full)
        expiry = np.full(R, INF)  # the NAT mapping's expiry
        second = replied = None
        if pingpong:
            receiver = D if sender == P else P
            second, replied, gets = self._replies(b, first, first_arrive, receiver, expiry)
            if nat:
                expiry = self._nat_expiry(b, [first, second])
                # pings that meet the expired mapping get no pong
                before = (gets, (second, replied, gets))
                second, replied, _ = self._replies(b, first, first_arrive, receiver, expiry, before)
            full = second.full
            second_full = self._cut_after_death(full, crash) if receiver == P else full.arrive
            second_arrive = second.view(second_full)
        # app messages of a side that sends no heartbeat messages (oneway): a stream alone
        extra = None
        other = P if sender == D else D
        if not pingpong and other in self.app_sides:
            none = np.full((R, 0), INF)
            extra = self._dir(b, other, none, DELAY_BACK, RTT_BACK)
            extra_full = (
                self._cut_after_death(extra.full, crash) if other == P else extra.full.arrive
            )
        if nat and not pingpong:
            expiry = self._nat_expiry(b, [first] + ([extra] if extra is not None else []))
        if sender == D:  # the detector's own pings: the evidence is the pongs
            ev_dir = second
            if replied is None:  # in ping order
                k = second.sent.shape[1]
                ev_seq, ev_stamp = seq[:, :k], sigma[:, :k]
            else:
                ev_seq = np.take_along_axis(seq, replied, axis=1)
                ev_stamp = np.take_along_axis(sigma, replied, axis=1)
            ev_time = second_arrive
        else:  # the peer's pings or heartbeats
            ev_dir, ev_seq, ev_stamp, ev_time = first, seq, sigma, first_arrive
        if nat:  # evidence that meets the expired mapping is dropped (over TCP: in stream order)
            full = ev_dir.full
            cross = self._crossings(full)
            full_time = first_full if ev_dir is first else second_full
            full_time = self._drop(full_time, (cross >= expiry[:, None]) & np.isfinite(cross))
            ev_time = ev_dir.view(full_time)
        app_t = None
        if s.detector.liveness == "any" and s.detector.kind == "timeout" and P in self.app_sides:
            # the peer's app messages count as liveness: evidence of their own
            if sender == P:  # the peer's stream: its heartbeats' (or its app messages alone)
                pd, pt = first.full, first_full
            elif pingpong:
                pd, pt = second.full, second_full
            else:
                pd, pt = extra.full, extra_full
            app_t = self._liveness(pd, pt, expiry if nat else None)
        if app_t is not None:
            shape = ev_time.shape
            zero = np.zeros(app_t.shape)  # (the timeout detector reads only the times)
            ev_time = np.concatenate([ev_time, app_t], axis=1)
            ev_seq = np.concatenate([np.broadcast_to(ev_seq, shape), zero.astype(np.int64)], 1)
            ev_stamp = np.concatenate([np.broadcast_to(ev_stamp, shape), zero], 1)
        dirs = [d.full for d in (first, second, extra) if d is not None]
        mine = [d for d in dirs if d.src == D]
        broken = np.minimum(crash, expiry)
        for d in dirs:
            broken = np.minimum(broken, d.doomed_at)
        p_closed = np.full(R, INF)
        # the client as the peer, reset by the NAT as its own message crosses: that message
        # was sent (the model counts it, and the RST comes after it)
        p_own = np.full(R, INF)
        for d in dirs:
            if d.src == P:
                p_closed = np.minimum(p_closed, d.giveup_at)
        cands = [(d.giveup_at, TCP_BY) for d in mine]
        if nat:
            for number, d in enumerate(dirs):
                cross = self._crossings(d)
                i, met = _first((cross >= expiry[:, None]) & np.isfinite(cross))
                if not met.any():
                    continue
                if s.nat.on_expiry == "reset":
                    # the NAT's RST: at once to the client, over the uplink to the server
                    at = _at(cross, i)
                    if d.src != "client":
                        at = at + b.draw(self.delay["client"], RST_UP, 3)[:, number]
                    at = np.where(met, at, INF)
                    if d.src == D:
                        cands.append((at, RESET_BY))
                    else:
                        p_closed = np.minimum(p_closed, at)
                        if d.src == "client":
                            p_own = np.minimum(p_own, at)
                elif self.tcp and d.src == D:  # dropped: never acknowledged, the sender gives up
                    gave = _at(d.sent, i) + _give_up(d.rto.first(i), s.link.tcp)
                    cands.append((np.where(met, gave, INF), TCP_BY))
        if self.tcp:
            for d in mine:
                # segments that reach a dead peer are never acknowledged: the sender gives up
                # (arrivals are in order: the first at or after a time is a count away)
                i = (d.arrive < crash[:, None]).sum(axis=1)
                ai = _at(d.arrive, i)
                dead = (i < d.arrive.shape[1]) & (ai < INF)
                gave = _at(d.sent, i) + _give_up(d.rto.first(i), s.link.tcp)
                cands.append((np.where(dead, gave, INF), TCP_BY))
                # segments that reach a peer whose socket failed are answered with an RST
                if not (p_closed < INF).any():
                    continue
                i = (d.arrive < p_closed[:, None]).sum(axis=1)
                ai = _at(d.arrive, i)
                closed = (i < d.arrive.shape[1]) & (ai < crash) & (ai < INF)
                if closed.any():
                    back = b.draw(self.delay[P], RST_BACK, 1)[:, 0]
                    cands.append((np.where(closed, _at(d.arrive, i) + back, INF), RESET_BY))
        a, z = self._detector(b, sigma, ev_seq, ev_stamp, ev_time)
        return dict(
            first=first,
            second=second,
            extra=extra,
            a=a,
            z=z,
            cands=cands,
            broken=broken,
            expiry=expiry,
            p_closed=p_closed,
            p_own=p_own,
            replied=replied,
        )

    def _liveness(self, d: Direction, arrive: np.ndarray, expiry) -> np.ndarray | None:
        """The peer's app messages as liveness (``liveness: any``, the timeout detector's
        ``message``): when each reaches the detector side (``arrive``: ``d``'s messages after
        the peer's death), one that meets the expired mapping dropped (in stream order over
        TCP); INF: none."""
        if expiry is not None:
            cross = self._crossings(d)
            arrive = self._drop(arrive, (cross >= expiry[:, None]) & np.isfinite(cross))
        return np.where(d.app, arrive, INF)

    def _replies(self, b, first, first_arrive, receiver, expiry, before=None):
        """The pongs: one for each ping that reaches a live receiver through a live mapping
        (a stalled peer answers when its stall ends, if still alive then): (the pongs'
        direction, the ping each answers in pong order or None if in ping order, which pings
        are answered).

        ``before``: an earlier call's (answered pings, result) with no expiry, reused when the
        expiry takes no pong away (the same pongs, the same draws: the same result)."""
        if before is not None:
            gets, out = before
            cross = self._crossings(first)
            if not (gets & (cross >= expiry[:, None])).any():
                return out
            gets = gets & (cross < expiry[:, None])
            answer = self._answers(b, first_arrive, receiver)
        else:
            answer = self._answers(b, first_arrive, receiver)
            gets = answer < b.horizon[:, None]
            if receiver == self.P:
                gets &= answer < b.crash[:, None]
            if (expiry < INF).any():
                gets &= self._crossings(first) < expiry[:, None]
        key = np.where(gets, answer, INF)
        k = int(gets.sum(axis=1).max()) if gets.size else 0
        if _ascending(key):  # (over TCP, or with constant delays, pongs go in ping order)
            replied = None
            sent = key[:, :k]
        else:
            replied = np.argsort(key, axis=1, kind="stable")[:, :k]  # pong order
            sent = np.take_along_axis(key, replied, axis=1)
        return self._dir(b, receiver, sent, DELAY_BACK, RTT_BACK), replied, gets

    def _answers(self, b, first_arrive, receiver):
        """When each ping is answered: its arrival, or the end of the peer's stall then."""
        if receiver == self.P and self.stalls is not None:
            return self._stall_end(b, first_arrive)
        return first_arrive

    def _nat_expiry(self, b: Batch, dirs: list) -> np.ndarray:
        """When the mapping expires: the first silence of idle_timeout between refreshes.

        Refreshes: the opening, every outbound packet that crosses, and inbound ones with
        refresh both, or over TCP while the client is alive (its ACK goes out). Computed as
        if every packet got through, which is exact up to the expiry.
        """
        s = self.s
        idle = b.draw(s.nat.idle_timeout, NAT, 1)[:, 0]
        R = len(b.slots)
        times = [b.t0[:, None]]
        client_dead = b.crash if self.P == "client" else np.full(R, INF)
        for d in dirs:
            cross = self._crossings(d.full)
            if d.src == "client" or (s.nat.refresh != "both" and self.tcp):
                keep = np.isfinite(cross) & (cross < client_dead[:, None])
            elif s.nat.refresh == "both":
                keep = np.isfinite(cross)
            else:
                continue
            times.append(np.where(keep, cross, INF))
        times.append(np.full((R, 1), INF))
        r = np.sort(np.concatenate(times, axis=1), axis=1)
        with np.errstate(invalid="ignore"):
            i, _ = _first(np.diff(r, axis=1) >= idle[:, None])
        return _at(r, i) + idle

    @staticmethod
    def _first_suspicion(mask: np.ndarray, start: np.ndarray):
        """Each row's first suspicion's start (its end unused), as 1-column arrays."""
        i, any_ = _first(mask)
        a = np.where(any_, _at(start, i), INF)[:, None]
        return a, np.full_like(a, INF)

    def _detector(self, b, sigma, ev_seq, ev_stamp, ev_time):
        """Suspicion intervals per row: starts and ends, ascending, INF-padded."""
        s, det = self.s, self.s.detector
        R, W = sigma.shape
        if det.kind == "missed":
            valid = np.isfinite(sigma)
            ends = sigma + s.ack_timeout
            answered_time = np.full((R, W), INF)
            r, c = np.nonzero(np.isfinite(ev_time))
            answered_time[r, ev_seq[r, c] - 1] = ev_time[r, c]
            answered = (answered_time <= ends) & valid
            idx = np.arange(W)
            # streak of consecutive misses ending at each ping
            last_ok = np.maximum.accumulate(np.where(answered, idx, -1), axis=1)
            starts = (idx - last_ok == det.missed.k) & valid
            nxt = np.minimum.accumulate(np.where(answered, idx, W)[:, ::-1], axis=1)[:, ::-1]
            back = np.where(
                nxt < W, np.take_along_axis(answered_time, np.minimum(nxt, W - 1), 1), INF
            )
            if not self.monitor:  # only the first suspicion matters: it closes
                return self._first_suspicion(starts, ends)
            return _compact(starts, ends, back)
        if _ascending(ev_time):
            times = ev_time
        else:
            order = np.argsort(ev_time, axis=1, kind="stable")
            times = np.take_along_axis(ev_time, order, axis=1)
            ev_seq = np.take_along_axis(ev_seq, order, axis=1)
            ev_stamp = np.take_along_axis(ev_stamp, order, axis=1)
        t0 = b.t0[:, None]
        if det.kind == "timeout":
            u = np.concatenate([t0, times], axis=1)
            deadline = u + det.timeout
        else:
            finite = np.isfinite(times)
            seqs = np.where(finite, ev_seq, -1)
            stamps = ev_stamp
            best = np.maximum.accumulate(seqs, axis=1) if seqs.size else seqs
            new = best > np.concatenate([np.full((R, 1), -1), best[:, :-1]], axis=1)
            fresh, stamps = _compact(new, times, stamps)
            u = np.concatenate([t0, fresh], axis=1)
            T = s.heartbeat.interval
            deadline = np.concatenate([t0 + T, stamps + T], axis=1) + s.nfd_delta
        nxt = np.concatenate([u[:, 1:], np.full((R, 1), INF)], axis=1)
        start = np.maximum(deadline, u)
        # a deadline reached exactly when evidence arrives: the model's timer, armed
        # earlier, fires first (a mistake of length zero)
        susp = (start <= nxt) & np.isfinite(u)
        if not self.monitor:
            return self._first_suspicion(susp, start)
        cont = np.concatenate(
            [np.zeros((R, 1), bool), susp[:, :-1] & (start[:, 1:] <= u[:, 1:])], axis=1
        )
        cont &= susp
        last = susp & ~np.concatenate([cont[:, 1:], np.zeros((R, 1), bool)], axis=1)
        (a,) = _compact(susp & ~cont, start)
        (z,) = _compact(last, nxt)
        return a, z

    def _first_end(self, w: dict):
        """Per row: (time, by) of the connection's end as computed (final before the last
        round's send time or the horizon only)."""
        a, z, broken = w["a"], w["z"], w["broken"]
        R = len(broken)
        cands = list(w["cands"])
        if a.shape[1]:
            if self.monitor:
                # the first suspicion from the break on; one running when it broke: from then
                i, any_ = _first(np.isfinite(a) & ((a >= broken[:, None]) | (z > broken[:, None])))
                ai = _at(a, i)
                cands.append((np.where(any_, np.where(ai >= broken, ai, broken), INF), DETECTOR_BY))
            else:
                cands.append((a[:, 0], DETECTOR_BY))
        if not cands:
            return np.full(R, INF), np.zeros(R, dtype=np.int64)
        cands.sort(key=lambda c: c[1])
        times = np.stack([t for t, _ in cands], axis=1)
        by = np.array([k for _, k in cands])
        i = times.argmin(axis=1)
        return _at(times, i), by[i]

    # -- accounting -----------------------------------------------------------------------------

    def _account(self, b: Batch, w: dict, done, has_end, end_t, end_by, H, opening, parent):
        """Add the finished rows to their slots' counters (times from each row's opening,
        the horizon ``H`` too; ``opening``: when each row opened in the slot's time). A slot
        may have several rows, a parent row (``parent``: its index, -1: none) before its
        children, each after the one it follows: accounted in that order."""
        s = self.s
        if done.all():  # (the usual case: views, not copies)
            rows = slice(None)
            sl = b.slots
            parent_at = parent
        else:
            rows = np.flatnonzero(done)
            sl = b.slots[rows]
            has_end, end_t, end_by, H = has_end[rows], end_t[rows], end_by[rows], H[rows]
            opening = opening[rows]
            # each row's parent row among the accounted ones (-1: none)
            where = np.full(len(done), -1)
            where[rows] = np.arange(len(rows))
            parent_at = parent[rows]
            parent_at = np.where(parent_at >= 0, where[np.maximum(parent_at, 0)], -1)
        chained = bool((parent_at >= 0).any())
        durations = []  # (row, slot, value): in row order, each row's in the order found
        inc = {}  # counter -> what each row adds
        zero = np.zeros(len(sl))
        t0, crash = b.t0[rows], b.crash[rows]
        broken, expiry, p_closed = w["broken"][rows], w["expiry"][rows], w["p_closed"][rows]
        close = np.where(has_end, np.minimum(end_t, H), H)
        brk = (broken < H) & (broken <= close)  # a break can end a suspected connection
        is_crash = broken == crash
        is_nat = ~is_crash & (broken == expiry)
        inc["break_crash"] = brk & is_crash
        inc["break_nat"] = brk & is_nat
        inc["break_tcp_timeout"] = brk & ~is_crash & ~is_nat
        # a message due at the very instant of the close was sent only if it caused it (it met
        # the expired mapping); the detector's declaration comes before a timer due then
        right = has_end & (end_by == RESET_BY)
        any_right = right.any()
        p_own = w["p_own"][rows]
        own = (p_own == p_closed) & (p_own < close)  # the peer's send that met the mapping
        any_own = own.any()
        heartbeats = 0
        client_sends = server_sends = None  # how many messages of each (in sending order) went out
        app_msgs = blackholed = zero
        radio_app = []  # the client's radio events of app traffic (datagram), -inf: none
        for d in (w["first"], w["second"], w["extra"]):
            if d is None:
                continue
            until = np.minimum(close, p_closed) if d.src == self.P else close

            def counted(sent, until=until, d=d):
                """Which messages went out before the close (the peer's: its socket's end)."""
                out = sent < until[:, None]
                if any_right:
                    out = np.where(right[:, None], sent <= until[:, None], out)
                if any_own and d.src == self.P == "client":
                    out |= own[:, None] & (sent == p_own[:, None])
                return out

            full = d.full
            mask = counted(full.sent[rows])
            count_full = mask.sum(axis=1)
            count = count_full if full is d else counted(d.sent[rows]).sum(axis=1)
            if full.app is not None:
                app = mask & full.app[rows]
                app_msgs = app_msgs + app.sum(axis=1)
                # written into a broken connection (the one TCP gives up on itself is not)
                blackholed = blackholed + (app & (full.sent[rows] > broken[:, None])).sum(axis=1)
                if self.radio_last is not None:
                    if d.src == "client":  # the client's own app messages, when sent
                        radio_app.append((np.where(app, full.sent[rows], -INF), False))
                    else:  # the server's, as they reach the client (limit: see below)
                        radio_app.append((np.where(full.app[rows], full.arrive[rows], INF), True))
            if d.src == "client":
                client_sends = count
            else:
                server_sends = count
            heartbeats = heartbeats + count
            if d is w["first"]:
                inc["rounds"] = count
            if self.tcp:
                kind = "ping" if d is w["first"] and s.heartbeat.style == "pingpong" else "beat"
                kind = "pong" if d is w["second"] else kind
                nbytes, retrans = self._tcp_cost(
                    b, full, kind, rows, count_full, close, crash, expiry, count
                )
                inc["bytes"] = inc.get("bytes", 0) + nbytes
                inc["retransmissions"] = inc.get("retransmissions", 0) + retrans
            self._advance(full, rows, sl, full.used(rows, count_full))
        inc["heartbeats"] = heartbeats
        inc["app_msgs"], inc["blackholed"] = app_msgs, blackholed
        if self.radio_last is not None:
            limit = np.minimum(close, expiry)
            if self.P == "client":
                limit = np.minimum(limit, crash)
            sends = client_sends if self.s.heartbeat.initiator == "client" else server_sends
            pongs = client_sends if self.stalls is not None and self.P == "client" else None
            more = [np.where(e < limit[:, None], e, -INF) if cut else e for e, cut in radio_app]
            inc["wakeups"] = self._wakeups(
                w, rows, sl, sends, limit, opening, parent_at, pongs, more
            )
        alive_until = np.minimum(close, broken)
        inc["connected_s"] = close - t0
        alive = alive_until - t0
        suspect = false_positives = zero
        if self.monitor and w["a"].shape[1]:
            a, z = w["a"][rows], w["z"][rows]
            au = alive_until[:, None]
            m = np.isfinite(a) & (a < au)
            false_positives = m.sum(axis=1)
            ended = m & (z <= au) & (z < close[:, None])
            r, k = np.nonzero(ended)
            durations.append((r, sl[r], z[r, k] - a[r, k]))
            # cut short by the break or the horizon
            suspect = np.where(ended, z - a, np.where(m, au - a, 0.0)).sum(axis=1)
        inc["undetected"] = ~has_end & (broken < H)
        detected = has_end & (end_t >= broken)
        if detected.any():
            self.latencies.append((sl[detected], end_t[detected] - broken[detected]))
        for k, name in enumerate(CAUSES):
            inc[f"by_{name}"] = detected & (end_by == k)
        mistaken = has_end & ~detected  # reconnect mode: a false positive
        inc["false_positives"] = false_positives + mistaken
        opens = np.where(has_end, end_t + s.reconnect.delay, INF)
        if self.outages is not None:  # the next connection opens when the link is back
            opens = np.where(has_end, self._up_at(sl, opening + opens) - opening, INF)
        if mistaken.any():
            down = np.where(mistaken, np.minimum(opens, H) - end_t, 0.0)
            alive = alive + down
            suspect = suspect + down
            back = mistaken & (opens <= H)
            (r,) = np.nonzero(back)
            durations.append((r, sl[r], opens[r] - end_t[r]))
        if durations:
            if chained and len(durations) > 1:  # a slot's in time order: by row, stable
                r = np.concatenate([d[0] for d in durations])
                order = np.argsort(r, kind="stable")
                durations = [
                    (None, *(np.concatenate([d[i] for d in durations])[order] for i in (1, 2)))
                ]
            self.durations.extend((d[1], d[2]) for d in durations)
        inc["alive_s"] = alive
        inc["suspect_alive_s"] = suspect
        add = np.stack([inc.get(k, zero) for k in COUNTERS])
        if chained:  # (a slot's rows in order: the same sums as one at a time)
            np.add.at(self.c.T, sl, add.T)
        else:
            self.c[:, sl] += add

    def _tcp_cost(
        self, b: Batch, d: Direction, kind: str, rows, count, close, crash, expiry, beats=None
    ):
        """The TCP bytes and retransmissions of the first ``count`` messages of ``d`` in each
        accounted row, as the model's ``_send`` and ``_close`` count them: every transmission
        of a segment that gets through (frame plus TCP_HEADER), and a pure ACK back for a pong
        or oneway heartbeat; a segment TCP gives up on, its first transmission, then its
        retransmissions along its ladder; a segment no ACK will come for (it reached a dead
        peer, or the expired mapping dropped it) its retransmissions from there on, along its
        ladder. Those along a ladder count as far as they happen before the close (the peer's:
        before its crash too). App messages (``d.app``; ``beats`` of the ``count`` are
        heartbeat messages) cost no bytes, but their retransmissions count."""
        tcp = self.s.link.tcp
        cap, seg = tcp.max_retries + 1, self.s.heartbeat.frame_bytes + TCP_HEADER
        brow = np.arange(len(b.slots))[rows]  # the accounted rows' batch rows
        R = len(brow)
        local = np.full(len(b.slots), -1)
        local[brow] = np.arange(R)
        mr, mc, k = d.retx
        li = local[mr]
        ok = li >= 0
        ok[ok] = mc[ok] < count[li[ok]]  # counted: sent before the close
        mr, mc, k, li = mr[ok], mc[ok], k[ok], li[ok]
        doomed = k > cap
        retrans = np.zeros(R)
        np.add.at(retrans, li, np.where(doomed, 0, k - 1))
        app_retrans = np.zeros(R)
        gave_up = np.zeros(R)
        if d.app is not None:  # app segments: retransmissions, but no bytes and no ACK
            is_app = d.app[mr, mc]
            np.add.at(app_retrans, li, np.where(doomed | ~is_app, 0, k - 1))
            np.add.at(gave_up, li, doomed & ~is_app)
        else:
            np.add.at(gave_up, li, doomed)
        # segments along their ladders with no ACK to stop them: (row, column, first one left)
        cand = [(mr[doomed], mc[doomed], np.ones(int(doomed.sum()), dtype=np.int64))]
        # (only the rows where the peer crashed, or the mapping expired, before the close)
        crashed = (crash < close) if d.src == self.D else np.zeros(R, dtype=bool)
        dropped = np.zeros(R, dtype=bool)
        if self.s.nat.idle_timeout is not None and self.s.nat.on_expiry == "drop":
            dropped = expiry < close
        (some,) = np.nonzero(crashed | dropped)
        if len(some):
            n = d.sent.shape[1]
            dead = np.zeros((len(some), n), dtype=bool)
            cl = close[some, None]
            if crashed.any():
                arrive = d.arrive[brow[some]]
                dead |= (arrive >= crash[some, None]) & (arrive < cl)
            if dropped.any():
                cross = self._crossings(d)[brow[some]]
                dead |= (cross >= expiry[some, None]) & (cross < cl)
            dead &= np.arange(n)[None, :] < count[some, None]
            if dead.any():
                where = np.full(R, -1)
                where[some] = np.arange(len(some))
                tx = np.ones((len(some), n), dtype=np.int64)
                hit = where[li] >= 0
                tx[where[li[hit]], mc[hit]] = k[hit]
                dead &= tx <= cap
                r, c = np.nonzero(dead)
                cand.append((brow[some[r]], c, tx[r, c]))
        mr = np.concatenate([x[0] for x in cand])
        if len(mr):
            mc = np.concatenate([x[1] for x in cand])
            first = np.concatenate([x[2] for x in cand])
            li = local[mr]
            stop = close if d.src == self.D else np.minimum(close, crash)
            base, t = d.rto.at(mr, mc), d.sent[mr, mc].copy()
            left = np.zeros(len(mr))
            for m in range(1, cap):  # retransmission m: after m backoffs
                t = t + np.minimum(base * 2.0 ** (m - 1), tcp.max_rto)
                left += (m >= first) & (t < stop[li])
            np.add.at(retrans, li, left)
            if d.app is not None:
                np.add.at(app_retrans, li, np.where(d.app[mr, mc], left, 0.0))
        beats = count if beats is None else beats
        sends = beats + retrans - app_retrans  # heartbeat messages' transmissions
        acks = beats - gave_up if kind in ("pong", "beat") else 0  # a pure ACK each
        return seg * sends + TCP_HEADER * acks, retrans

    def _wakeups(self, w: dict, rows, sl, sends, limit, opening, parent_at, pongs=None, more=()):
        """The client's radio wakeups in each finished row (datagram), as the model counts them.

        The client's radio events (the model's ``_radio``): the opening; every message the
        client sends (its pings or heartbeats, the first ``sends``; or its pongs, which go out
        as the server's pings reach it, at the times of those arrivals); and every message of
        the server that reaches the client's host (``_client_ack``): one not lost that
        arrives before ``limit``, the close (a declaration at the instant of an arrival comes
        first), the mapping's expiry (it meets the expired mapping) and, when the client is
        the peer, its crash. An event is a wakeup when the radio has been silent for more
        than RADIO_TAIL (strictly): the gaps between each row's events in time order, the
        first one from the slot's last event before the opening (the radio's state carries
        over from one connection to the next; it starts idle).

        ``sends``: how many of the initiator's messages went out (a valid arrival answers or
        is one of them: a later ping meets the expired mapping, as the one that closed the
        client did, or is sent after the close or the crash).
        """
        first, second = w["first"], w["second"]
        R = len(sl)
        k = int(sends.max()) if R else 0
        if self.s.heartbeat.initiator == "client":
            ev = np.where(np.arange(k) < sends[:, None], first.sent[rows][:, :k], -INF)
            if second is not None:  # each pong of the server right after the ping it answers
                arrive = second.arrive[rows]
                ok = arrive < limit[:, None]
                back = np.full((R, k), -INF)
                replied = w["replied"]
                if replied is None:  # pong i answers ping i
                    m = min(k, arrive.shape[1])
                    back[:, :m] = np.where(ok[:, :m], arrive[:, :m], -INF)
                else:
                    replied = replied[rows]
                    r, i = np.nonzero(ok)
                    back[r, replied[r, i]] = arrive[r, i]
                both = np.empty((R, 2 * k))
                both[:, 0::2], both[:, 1::2] = ev, back
                ev = both
        else:  # the server's pings or heartbeats that reach the client
            arrive = first.arrive[rows][:, :k]
            ev = np.where(arrive < limit[:, None], arrive, -INF)
            if pongs is not None and second is not None:
                # a stalled client's pongs go out when its stall ends, later than the ping
                # reached it: events of their own (the first ``pongs`` were sent)
                j = int(pongs.max()) if R else 0
                sent = second.sent[rows][:, :j]
                ev = np.concatenate([ev, np.where(np.arange(j) < pongs[:, None], sent, -INF)], 1)
        if more:  # app traffic's events (their order checked below)
            ev = np.concatenate([ev, *more], axis=1)
        events = np.empty((R, ev.shape[1] + 1))  # -inf: no event
        events[:, 0] = 0.0  # the opening
        events[:, 1:] = ev
        last = np.maximum.accumulate(events, axis=1)  # the latest event so far
        if not self.radio_in_order:
            bad = ((last[:, :-1] > events[:, 1:]) & (events[:, 1:] > -INF)).any(axis=1)
            if bad.any():  # (random delays: a message overtaken) in time order
                e = events[bad]
                e = np.sort(np.where(e > -INF, e, INF), axis=1)
                last[bad] = np.maximum.accumulate(np.where(e < INF, e, -INF), axis=1)
        wakes = (np.diff(last, axis=1) > RADIO_TAIL).sum(axis=1)
        radio = opening + last[:, -1]  # each row's last event, in the slot's time
        before = self.radio_last[sl]
        chained = parent_at >= 0  # a row after another of its slot: from that one's last event
        before[chained] = radio[parent_at[chained]]
        wakes += opening - before > RADIO_TAIL
        if chained.any():  # a slot's last row (in time) is its last
            _, first = np.unique(sl[::-1], return_index=True)
            at = len(sl) - 1 - first
            self.radio_last[sl[at]] = radio[at]
        else:
            self.radio_last[sl] = radio
        return wakes

    def _slots(self) -> list[FastSlot]:
        n = self.s.connections
        floats = ("connected_s", "alive_s", "suspect_alive_s")
        ints = ("heartbeats", "rounds", "connections", "false_positives", "undetected", "wakeups")
        ints += ("app_msgs", "blackholed")
        ints += ("bytes", "retransmissions") if self.tcp else ()
        index = {k: i for i, k in enumerate(COUNTERS)}
        as_float = self.c[[index[k] for k in floats]].T.tolist()
        as_int = self.c[[index[k] for k in ints]].astype(np.int64).T.tolist()
        breaks = self.c[[index[f"break_{k}"] for k in BREAKS]].astype(np.int64).T.tolist()
        by = self.c[[index[f"by_{k}"] for k in CAUSES]].astype(np.int64).T.tolist()

        def per_slot(pairs):
            out = [[] for _ in range(n)]
            for slots, values in pairs:  # in the order they happened
                for slot, value in zip(slots.tolist(), values.tolist(), strict=True):
                    out[slot].append(value)
            return out

        durations, latencies = per_slot(self.durations), per_slot(self.latencies)
        # a datagram heartbeat is one packet, sent or lost: its bytes follow from the count
        # (over TCP retransmissions and ACKs add to them: not counted here, see NOT_PRODUCED)
        packet = self.s.heartbeat.frame_bytes + UDP_HEADER
        out = []
        for i in range(n):
            st = Stats()
            st.__dict__.update(zip(floats, as_float[i], strict=True))
            st.__dict__.update(zip(ints, as_int[i], strict=True))
            if not self.tcp:
                st.bytes = st.heartbeats * packet
            st.breaks = dict(zip(BREAKS, breaks[i], strict=True))
            st.detections_by = dict(zip(CAUSES, by[i], strict=True))
            st.mistake_durations, st.latencies = durations[i], latencies[i]
            out.append(FastSlot(i, st))
        return out


class _Rto:
    """RTO in force when each message is sent: RFC 6298 over earlier samples (the messages
    sent once, Karn's rule), Linux's floor; a row per connection. Computed per sample; read
    only where needed (``at``)."""

    def __init__(self, rtt, once, tcp, constant: float | None = None, sparse=None):
        self.initial, self.tcp = tcp.initial_rto, tcp
        self.constant = constant  # every sample the same: SRTT stays, RTTVAR decays by 3/4
        self.rto = None
        # the messages that are not samples: given as ascending row * width + column, with
        # every message valid (only with a constant RTT), or as the complement of ``once``
        self.sparse = sparse
        if sparse is not None:
            return
        self.count = np.cumsum(once, axis=1)  # samples up to and including each message
        self.once = once
        if not once.any() or constant is not None:
            return
        (r,) = _compact(once, rtt)  # each row's samples, in order
        r = np.where(np.isfinite(r), r, 0.0)  # padding: never read
        r0 = r[:, :1]
        srtt = _ewma(r, r0, 0.125)
        dev = np.abs(srtt[:, :-1] - r[:, 1:])
        var = _ewma(np.concatenate([r0, dev], axis=1), r0 / 2, 0.25)
        self.rto = np.minimum(srtt + np.maximum(4 * var, tcp.min_rto), tcp.max_rto)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The RTO of message ``cols`` of row ``rows`` (the samples of messages before it)."""
        if self.sparse is not None:
            width = self.width
            cols = np.asarray(cols)
            start = np.searchsorted(self.sparse, rows * width)
            before = cols - (np.searchsorted(self.sparse, rows * width + cols) - start)
        elif self.count.shape[1] == 0:
            return np.full(np.shape(rows), self.initial)
        else:
            cols = np.minimum(cols, self.count.shape[1] - 1)
            before = self.count[rows, cols] - self.once[rows, cols]
        if self.constant is not None:
            c, tcp = self.constant, self.tcp
            var = c / 2 * 0.75 ** np.maximum(before - 1, 0).astype(float)
            picked = np.minimum(c + np.maximum(4 * var, tcp.min_rto), tcp.max_rto)
        elif self.rto is None:
            return np.full(np.shape(rows), self.initial)
        else:
            picked = self.rto[rows, np.maximum(before - 1, 0)]
        return np.where(before > 0, picked, self.initial)

    def first(self, cols: np.ndarray) -> np.ndarray:
        """Per row: the RTO of message ``cols[row]``."""
        return self.at(np.arange(len(cols)), cols)


# The registry's not_produced_by (simlab.engines.metrics): TCP retransmissions; over TCP,
# the bytes and the client's radio wakeups. The retransmissions and the bytes are counted
# (``_tcp_cost``: each slot's ``stats.retransmissions`` and ``stats.bytes``, tested against
# the model's), so once the registry stops listing them they are reported by themselves.
NOT_PRODUCED = absent_from(ENGINE)
# Over TCP, the client's radio wakeups stay absent: the model's client acknowledges every
# server segment that reaches it (its raw arrival, before in-order hold-back) while the
# sender is alive, including segments sent behind one TCP gives up on until the server's
# socket fails, and segments of a crashed or closed server up to when its socket failed,
# which the in-order bookkeeping here does not keep (it marks everything behind a doomed
# segment never arrived, and the server's socket failing on a dead client, or on a dropped
# segment, is not computed unless it ends the connection): counting them would need new
# bookkeeping, not a reading of the existing one.
NOT_PRODUCED_TCP = absent_from(f"{ENGINE}:tcp")


def simulate(s: Scenario) -> tuple[dict, list]:
    """All slots: (figures, finished slots)."""
    from simlab.errors import EngineRefusal

    problems = unsupported(s)
    if problems:
        raise EngineRefusal(ENGINE, problems)
    started = time.perf_counter()
    slots = FastRun(s).run()
    out = summarize(s, slots)
    for key in NOT_PRODUCED + (NOT_PRODUCED_TCP if s.link.transport == "tcp" else ()):
        out.pop(key, None)
    out |= standard_errors(slots)
    out["engine"] = ENGINE
    out["seed"] = s.seed
    out["wall_s"] = time.perf_counter() - started
    return out, slots


def standard_errors(slots) -> dict:
    """Standard errors of the main figures: across slots for rates, across events for means."""

    def se(values) -> float | None:
        v = np.asarray(values, dtype=float)
        return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None

    alive = [sl.stats.alive_s for sl in slots]
    out = {
        "mistake_rate_per_s_se": se(
            [sl.stats.false_positives / a for sl, a in zip(slots, alive, strict=True) if a > 0]
        ),
        "query_accuracy_se": se(
            [1 - sl.stats.suspect_alive_s / a for sl, a in zip(slots, alive, strict=True) if a > 0]
        ),
        "mistake_duration_mean_s_se": se([d for sl in slots for d in sl.stats.mistake_durations]),
        "detection_latency_mean_s_se": se([x for sl in slots for x in sl.stats.latencies]),
    }
    return {k: v for k, v in out.items() if v is not None}


def run(s: Scenario) -> dict:
    return simulate(s)[0]
