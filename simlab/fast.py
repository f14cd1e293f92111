"""The fast engine: the model's round-by-round subset, vectorized with NumPy.

It covers connections whose heartbeat rounds carry everything that matters:
pingpong or oneway heartbeats from one side, datagram or TCP (the retransmission
ladder with the RFC 6298 estimator, in-order delivery, giving up), Bernoulli or
Gilbert-Elliott loss, any delay distributions, jitter, the ``timeout``, ``missed``
and ``nfd`` detectors in both conventions, peer crashes, and the NAT (idle expiry
with per-connection timeouts, outbound or both-way refresh, the TCP ACK rule, drop
or reset). Not outages, stalls, application traffic, phi or adaptive detectors:
it refuses those.

A connection is computed a window of rounds at a time, from its opening: all
sends, losses, ladders and arrivals of the window at once, then the detector as
a chain of deadlines. Everything before the window's last send time is final
(later rounds are sent after it), so if the connection has not ended by then the
window grows and the connection is recomputed with the same random draws.
Semantics follow :mod:`simlab.model` exactly; its random streams are its own, so
the two engines agree in distribution, not draw for draw.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .metrics import summarize
from .model import Stats
from .network import give_up_after
from .policy import policy_problems
from .scenario import Loss, Scenario

ENGINE = "fast"
INF = math.inf
_TAG = 0xFA57  # keeps the fast engine's streams apart from the model's


def unsupported(s: Scenario) -> list[str]:
    """Every feature of ``s`` outside this engine's subset (empty: covered)."""
    out = policy_problems(s)
    if s.link.outages is not None:
        out.append("link.outages")
    if s.peer.stall is not None:
        out.append("peer.stall")
    if s.app.rate > 0:
        out.append("app.rate > 0 (application traffic)")
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
    return out


class LossStream:
    """One direction's packet losses, in sending order, continuing across connections.

    ``peek(n)`` shows the next n packets' fates without using them; ``advance(k)``
    uses k. Gilbert-Elliott states come as runs of geometric length (the chain steps,
    then the packet is lost with its new state's probability).
    """

    def __init__(self, loss: Loss, rng: np.random.Generator):
        self.loss, self.rng = loss, rng
        self.buf = np.zeros(0, dtype=bool)
        if loss.model == "gilbert":
            total = loss.p_gb + loss.p_bg
            self.bad = bool(rng.random() < (loss.p_gb / total if total else 0.0))
            self.left = 0  # packets left in the current run

    def _more(self, n: int) -> np.ndarray:
        loss, rng = self.loss, self.rng
        if loss.model == "bernoulli":
            return rng.random(n) < loss.p
        states = np.empty(n, dtype=bool)
        i = 0
        while i < n:
            if self.left == 0:  # a new run: the state flips (the first run keeps the drawn state)
                if i > 0 or hasattr(self, "_started"):
                    self.bad = not self.bad
                self._started = True
                p = loss.p_bg if self.bad else loss.p_gb
                self.left = int(rng.geometric(p)) if p > 0 else 1 << 62  # p = 0: stays forever
            take = min(self.left, n - i)
            states[i : i + take] = self.bad
            self.left -= take
            i += take
        u = rng.random(n)
        return np.where(states, u < loss.loss_bad, u < loss.loss_good)

    def peek(self, n: int) -> np.ndarray:
        if len(self.buf) < n:
            self.buf = np.concatenate([self.buf, self._more(max(n - len(self.buf), 256))])
        return self.buf[:n]

    def advance(self, k: int) -> None:
        self.buf = self.buf[k:]


@dataclass
class Direction:
    """One direction's messages in a window, in sending order."""

    src: str
    sent: np.ndarray  # first transmission
    at: np.ndarray  # the transmission that gets through (inf: none)
    arrive: np.ndarray  # delivery to the receiver, in order (inf: never)
    raw: np.ndarray  # arrival at the receiver's host before in-order hold-back (inf: never)
    rto: np.ndarray  # the sender's RTO when each was first sent (TCP)
    doomed_at: float  # send time of the first segment TCP gives up on (inf: none)
    giveup_at: float  # when the sender's socket fails over it
    packets: np.ndarray  # packets used by the first i+1 messages

    def used(self, until: float, side: str = "left") -> int:
        """Packets used by the messages sent before ``until`` (``side="right"``: up to and
        including it)."""
        k = int(np.searchsorted(self.sent, until, side=side))
        return int(self.packets[k - 1]) if k else 0


@dataclass
class Window:
    """What the detector side saw of a connection over a window of rounds."""

    first: Direction  # the heartbeats (pings, or oneway beats)
    second: Direction | None  # the pongs (pingpong)
    suspicions: list  # [(start, end)] of the detector's suspicions
    transport: list  # [(time, cause)] of the detector side's socket failing
    broken: float  # ground truth: the break, or inf
    expiry: float = INF  # the NAT mapping's expiry, or inf
    p_closed: float = INF  # when the peer's socket failed: it sends nothing after that


class _Conn:
    """The random draws of one connection, extendable, identical whatever the window."""

    def __init__(self, seed: int, slot: int, number: int):
        root = np.random.SeedSequence(seed, spawn_key=(slot, _TAG, number))
        self.rngs = [np.random.Generator(np.random.PCG64(c)) for c in root.spawn(7)]
        self.cache: dict[int, np.ndarray] = {}

    def draws(self, which: int, n: int, make) -> np.ndarray:
        """The first n draws of stream ``which`` (``make(rng, n)``), always the same values."""
        have = self.cache.get(which)
        if have is None or len(have) < n:
            rng = np.random.Generator(np.random.PCG64(self.rngs[which].bit_generator.seed_seq))
            have = make(rng, max(n, 2 * (0 if have is None else len(have))))
            self.cache[which] = have
        return have[:n]


JITTER, DELAY_FWD, DELAY_BACK, RTT_FWD, RTT_BACK, CRASH, NAT = range(7)


class FastSlot:
    """One connection slot, connection after connection, with the model's accounting."""

    def __init__(self, s: Scenario, slot: int):
        self.s, self.slot = s, slot
        self.stats = Stats()
        self.records: list[tuple] = []
        self.D = s.detector_side
        self.P = "server" if self.D == "client" else "client"
        self.tcp = s.link.transport == "tcp"
        self.monitor = s.detector.on_declare == "monitor"
        root = np.random.SeedSequence(s.seed, spawn_key=(slot, _TAG))
        up_rng, down_rng = (np.random.Generator(np.random.PCG64(c)) for c in root.spawn(2))
        self.loss = {
            "client": LossStream(s.link.up.loss, up_rng),
            "server": LossStream(s.link.down.loss, down_rng),
        }
        self.delay = {"client": s.link.up.delay, "server": s.link.down.delay}
        self.last_rounds = 0  # rounds the previous connection needed: the next one's first guess

    # -- one direction ------------------------------------------------------------------------

    def _direction(self, conn: _Conn, src: str, sent: np.ndarray, fwd: int, back: int) -> Direction:
        """Losses, ladders and arrivals of messages sent by ``src`` at ``sent`` (ascending)."""
        n = len(sent)
        delay = conn.draws(fwd, n, lambda r, m: self.delay[src].sample(r, m))
        stream = self.loss[src]
        if not self.tcp:
            lost = stream.peek(n)
            arrive = np.where(lost, INF, sent + delay)
            at = np.where(lost, INF, sent)
            return Direction(
                src, sent, at, arrive, arrive, np.zeros(n), INF, INF, np.arange(1, n + 1)
            )
        tcp = self.s.link.tcp
        cap = tcp.max_retries + 1  # transmissions before giving up
        packets = stream.peek(max(64, int(n * 1.5) + 64))
        while (~packets).sum() < n:
            packets = stream.peek(2 * len(packets))
        ok = np.flatnonzero(~packets)[:n]
        ends = ok + 1  # message i ends with the i-th delivered packet...
        attempts = np.diff(np.concatenate([[0], ends]))
        doomed = int(np.argmax(attempts > cap)) if n and (attempts > cap).any() else n
        if doomed < n:  # ...unless one runs out of retries: from there, one by one
            pos = int(ends[doomed - 1]) if doomed else 0
            tail = []
            for _ in range(doomed, n):
                fates = stream.peek(pos + cap)[pos:]
                k = int(np.argmax(~fates)) + 1 if (~fates).any() else cap + 1
                tail.append(k)
                pos += min(k, cap)
            attempts = np.concatenate([attempts[:doomed], tail])
            ends = np.cumsum(np.minimum(attempts, cap))
        other = "server" if src == "client" else "client"
        rtt = delay + conn.draws(back, n, lambda r, m: self.delay[other].sample(r, m))
        rto = _rto_before(rtt, attempts == 1, tcp)
        retrans = np.minimum(attempts, cap) - 1
        ladder = np.zeros(n)
        for k in range(int(retrans.max()) if n else 0):
            ladder += np.where(retrans > k, np.minimum(rto * 2.0**k, tcp.max_rto), 0.0)
        at = sent + ladder
        arrive = np.where(attempts <= cap, at + delay, INF)
        doomed_at = giveup_at = INF
        if doomed < n:
            arrive[doomed:] = INF  # in order: nothing behind the doomed segment gets through
            at[doomed] = INF
            doomed_at = float(sent[doomed])
            giveup_at = doomed_at + give_up_after(float(rto[doomed]), tcp)
        raw = arrive.copy()
        arrive = np.maximum.accumulate(arrive) if n else arrive
        return Direction(src, sent, at, arrive, raw, rto, doomed_at, giveup_at, ends)

    def _drop(self, arrive: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        """Arrivals with these messages lost; over TCP everything behind the first is held
        back for good (in-order delivery)."""
        if not dropped.any():
            return arrive
        arrive = arrive.copy()
        if self.tcp:
            arrive[int(np.argmax(dropped)) :] = INF
        else:
            arrive[dropped] = INF
        return arrive

    def _cut_after_death(self, d: Direction, death: float) -> np.ndarray:
        """Arrivals of a sender that dies at ``death``: no transmission leaves after it."""
        return self._drop(d.arrive, (d.at >= death) & np.isfinite(d.at))

    # -- one connection -------------------------------------------------------------------------

    def run(self) -> FastSlot:
        t0, number = 0.0, 0
        horizon = self.s.horizon
        while t0 < horizon:
            number += 1
            t0 = self._connection(t0, number)
        return self

    def _connection(self, t0: float, number: int) -> float:
        """Simulate the connection opened at t0; return when the next one opens (or inf)."""
        s = self.s
        st = self.stats
        st.connections += 1
        self.records.append((self.slot, number, t0, "open", None, None))
        conn = _Conn(s.seed, self.slot, number)
        crash = INF
        if s.peer.crash is not None:
            crash = t0 + float(
                conn.draws(CRASH, 1, lambda r, m: r.exponential(s.peer.crash.mtbf, m))[0]
            )
        T, j = s.heartbeat.interval, s.heartbeat.jitter
        # first guess at the rounds needed: all that are left, or twice what the last connection used
        left = int((s.horizon - t0) / (T * (1 - j))) + 2
        window = max(64, min(left, 2 * self.last_rounds if self.last_rounds else 1 << 16))
        while True:
            u = conn.draws(JITTER, window, lambda r, m: r.random(m))
            sigma = t0 + np.cumsum(T * (1 + j * (2 * u - 1)) if j else np.full(window, T))
            complete = sigma[-1] >= s.horizon
            final = s.horizon if complete else float(sigma[-1])
            w = self._evaluate(conn, t0, crash, sigma[sigma < s.horizon])
            end = self._first_end(w, final)
            if end is not None or complete:
                break
            window *= 4
        self.last_rounds = int(np.searchsorted(sigma, end[0] if end else s.horizon)) + 1
        return self._account(t0, number, crash, w, end)

    def _evaluate(self, conn: _Conn, t0: float, crash: float, sigma: np.ndarray) -> Window:
        """Everything the rounds sent at ``sigma`` do, as the detector side sees it."""
        s, D, P = self.s, self.D, self.P
        pingpong = s.heartbeat.style == "pingpong"
        sender = s.heartbeat.initiator  # one side (validated: not both)
        seq = np.arange(1, len(sigma) + 1)
        if sender == P:
            sigma, seq = sigma[sigma < crash], seq[sigma < crash]
        first = self._direction(conn, sender, sigma, DELAY_FWD, RTT_FWD)
        first_arrive = self._cut_after_death(first, crash) if sender == P else first.arrive
        expiry = INF  # the NAT mapping's expiry
        second = None
        if pingpong:
            receiver = D if sender == P else P
            second, replied = self._replies(conn, first, first_arrive, receiver, crash, INF)
            if s.nat.idle_timeout is not None:
                expiry = self._nat_expiry(conn, t0, [first, second], crash)
                if expiry < INF:  # pings that meet the expired mapping get no pong
                    second, replied = self._replies(
                        conn, first, first_arrive, receiver, crash, expiry
                    )
            second_arrive = self._cut_after_death(second, crash) if receiver == P else second.arrive
        elif s.nat.idle_timeout is not None:
            expiry = self._nat_expiry(conn, t0, [first], crash)
        if sender == D:  # the detector's own pings: the evidence is the pongs
            ev_dir, ev_seq, ev_stamp, ev_time = second, seq[replied], sigma[replied], second_arrive
        else:  # the peer's pings or heartbeats
            ev_dir, ev_seq, ev_stamp, ev_time = first, seq, sigma, first_arrive
        if expiry < INF:
            ev_time = self._cut_at_nat(ev_dir, ev_time, expiry)
        dirs = [d for d in (first, second) if d is not None]
        mine = [d for d in dirs if d.src == D]
        broken = min([crash, expiry] + [d.doomed_at for d in dirs])
        p_closed = min([d.giveup_at for d in dirs if d.src == P], default=INF)
        transport = [(d.giveup_at, "tcp_timeout") for d in mine if d.giveup_at < INF]
        back = lambda: float(self.delay[P].sample(conn.rngs[RTT_BACK], 1)[0])  # noqa: E731
        if expiry < INF:
            for d in dirs:
                cross = self._crossings(d)
                met = (cross >= expiry) & np.isfinite(cross)
                if not met.any():
                    continue
                i = int(np.argmax(met))
                if s.nat.on_expiry == "reset":
                    # the NAT's RST: at once to the client, over the uplink to the server
                    up = float(self.delay["client"].sample(conn.rngs[RTT_FWD], 1)[0])
                    at = float(cross[i]) + (0.0 if d.src == "client" else up)
                    if d.src == D:
                        transport.append((at, "reset"))
                    else:
                        p_closed = min(p_closed, at)
                elif self.tcp and d.src == D:  # dropped: never acknowledged, the sender gives up
                    transport.append(
                        (
                            float(d.sent[i]) + give_up_after(float(d.rto[i]), s.link.tcp),
                            "tcp_timeout",
                        )
                    )
        if self.tcp:
            for d in mine:
                # segments that reach a dead peer are never acknowledged: the sender gives up
                dead = (d.arrive >= crash) & (d.arrive < INF)
                if dead.any():
                    i = int(np.argmax(dead))
                    transport.append(
                        (
                            float(d.sent[i]) + give_up_after(float(d.rto[i]), s.link.tcp),
                            "tcp_timeout",
                        )
                    )
                # segments that reach a peer whose socket failed are answered with an RST
                closed = (d.arrive >= p_closed) & (d.arrive < crash) & (d.arrive < INF)
                if closed.any():
                    i = int(np.argmax(closed))
                    transport.append((float(d.arrive[i]) + back(), "reset"))
        suspicions = self._detector(t0, sigma, ev_seq, ev_stamp, ev_time)
        return Window(first, second, suspicions, transport, broken, expiry, p_closed)

    def _replies(self, conn, first, first_arrive, receiver, crash, expiry):
        """The pongs: one for each ping that reaches a live receiver through a live mapping."""
        gets = first_arrive < self.s.horizon
        if receiver == self.P:
            gets &= first_arrive < crash
        if expiry < INF:
            gets &= self._crossings(first, first_arrive) < expiry
        order = np.argsort(first_arrive[gets], kind="stable")
        replied = np.flatnonzero(gets)[order]  # which pings get a pong, in pong order
        return self._direction(conn, receiver, first_arrive[replied], DELAY_BACK, RTT_BACK), replied

    def _crossings(self, d: Direction, arrive: np.ndarray | None = None) -> np.ndarray:
        """When each message crosses the NAT (at the client's end): an outbound one when its
        transmission that gets through leaves, an inbound one when it reaches the client."""
        if d.src == "client":
            return d.at
        return d.raw

    def _nat_expiry(self, conn: _Conn, t0: float, dirs: list, crash: float) -> float:
        """When the mapping expires: the first silence of idle_timeout between refreshes.

        Refreshes: the opening, every outbound packet that crosses, and inbound ones with
        refresh both, or over TCP while the client is alive (its ACK goes out). Computed as
        if every packet got through, which is exact up to the expiry.
        """
        s = self.s
        idle = float(conn.draws(NAT, 1, lambda r, m: s.nat.idle_timeout.sample(r, m))[0])
        times = [np.array([t0])]
        client_dead = crash if self.P == "client" else INF
        for d in dirs:
            cross = self._crossings(d)
            if d.src == "client":
                times.append(cross[np.isfinite(cross) & (cross < client_dead)])
            elif s.nat.refresh == "both":
                times.append(cross[np.isfinite(cross)])
            elif self.tcp:
                times.append(cross[np.isfinite(cross) & (cross < client_dead)])
        r = np.sort(np.concatenate(times))
        gaps = np.flatnonzero(np.diff(r) >= idle)
        return float(r[gaps[0]] + idle) if len(gaps) else float(r[-1] + idle)

    def _cut_at_nat(self, d: Direction, arrive: np.ndarray, expiry: float) -> np.ndarray:
        """Evidence that meets the expired mapping is dropped."""
        cross = self._crossings(d)
        return self._drop(arrive, (cross >= expiry) & np.isfinite(cross))

    def _detector(self, t0, sigma, ev_seq, ev_stamp, ev_time):
        """Suspicion intervals [(start, end)], sorted, from the detector's deadlines."""
        s, det = self.s, self.s.detector
        if det.kind == "missed":
            ack = s.ack_timeout
            ends = sigma + ack
            answered_time = np.full(len(sigma), INF)
            answered_time[ev_seq - 1] = ev_time
            answered = answered_time <= ends
            # streak of consecutive misses ending at each ping
            last_ok = np.maximum.accumulate(np.where(answered, np.arange(len(sigma)), -1))
            streak = np.arange(len(sigma)) - last_ok
            k = det.missed.k
            starts = np.flatnonzero(streak == k)
            out = []
            ok_idx = np.flatnonzero(answered)
            for i in starts:
                nxt = (
                    ok_idx[np.searchsorted(ok_idx, i)]
                    if np.searchsorted(ok_idx, i) < len(ok_idx)
                    else None
                )
                out.append((float(ends[i]), float(answered_time[nxt]) if nxt is not None else INF))
            return out
        finite = ev_time < INF
        order = np.argsort(ev_time[finite], kind="stable")
        times = ev_time[finite][order]
        if det.kind == "timeout":
            u = np.concatenate([[t0], times])
            D = u + det.timeout
        else:
            seqs = ev_seq[finite][order]
            stamps = ev_stamp[finite][order]
            best = np.maximum.accumulate(seqs) if len(seqs) else seqs
            new = np.concatenate([[True], best[1:] > best[:-1]]) if len(seqs) else np.zeros(0, bool)
            u = np.concatenate([[t0], times[new]])
            D = (
                np.concatenate([[t0 + s.heartbeat.interval], stamps[new] + s.heartbeat.interval])
                + s.nfd_delta
            )
        nxt = np.concatenate([u[1:], [INF]])
        start = np.maximum(D, u)
        # a deadline reached exactly when evidence arrives: the model's timer, armed
        # earlier, fires first (a mistake of length zero)
        susp = start <= nxt
        cont = np.concatenate([[False], susp[:-1] & (start[1:] <= u[1:])])
        out, cur = [], None
        for k in np.flatnonzero(susp):
            if cont[k] and cur is not None:
                cur[1] = float(nxt[k])
            else:
                if cur is not None:
                    out.append(tuple(cur))
                cur = [float(start[k]), float(nxt[k])]
        if cur is not None:
            out.append(tuple(cur))
        return out

    def _first_end(self, w: Window, final: float):
        """(time, by) of the connection's end if it comes before ``final``, else None."""
        cands = [(t, cause) for t, cause in w.transport]
        if self.monitor:
            for a, b in w.suspicions:
                if a >= w.broken:
                    cands.append((a, "detector"))
                    break
                if b > w.broken:  # suspected when it broke: rightly so from then on
                    cands.append((w.broken, "detector"))
                    break
        elif w.suspicions:
            cands.append((w.suspicions[0][0], "detector"))
        cands = [c for c in cands if c[0] < final]
        return min(cands) if cands else None

    # -- accounting -----------------------------------------------------------------------------

    def _account(self, t0: float, number: int, crash: float, w: Window, end) -> float:
        """Add the connection to the slot's counters; return when the next one opens."""
        s, st = self.s, self.stats
        horizon = s.horizon
        close = horizon if end is None else min(end[0], horizon)
        if w.broken < horizon and w.broken <= close:  # a break can end a suspected connection
            cause = (
                "crash" if w.broken == crash else "nat" if w.broken == w.expiry else "tcp_timeout"
            )
            st.breaks[cause] += 1
            self.records.append((self.slot, number, w.broken, "break", cause, None))
        # a message due at the very instant of the close was sent only if it caused it (it met
        # the expired mapping); the detector's declaration comes before a timer due then
        side = "right" if end is not None and end[1] == "reset" else "left"
        for d in (w.first, w.second):
            if d is not None:
                until = min(close, w.p_closed) if d.src == self.P else close
                sent = int(np.searchsorted(d.sent, until, side=side))
                st.heartbeats += sent
                self.loss[d.src].advance(d.used(until, side))
                if d is w.first:
                    st.rounds += sent
        alive_until = min(close, w.broken)
        st.connected_s += close - t0
        st.alive_s += alive_until - t0
        if self.monitor:
            for a, b in w.suspicions:
                if a >= alive_until:
                    break
                st.false_positives += 1
                self.records.append((self.slot, number, a, "false_positive", "detector", None))
                if b <= alive_until and b < close:
                    st.mistake_durations.append(b - a)
                    st.suspect_alive_s += b - a
                    self.records.append((self.slot, number, b, "trust", None, b - a))
                else:  # cut short by the break or the horizon
                    st.suspect_alive_s += alive_until - a
        if end is None:
            if w.broken < horizon:
                st.undetected += 1
            self.records.append((self.slot, number, horizon, "close", "horizon", None))
            return INF
        t, by = end
        if t >= w.broken:
            st.latencies.append(t - w.broken)
            st.detections_by[by] += 1
            self.records.append((self.slot, number, t, "detection", by, t - w.broken))
        else:  # reconnect mode: a false positive
            st.false_positives += 1
            self.records.append((self.slot, number, t, "false_positive", by, None))
        next_open = t + s.reconnect.delay
        if t < w.broken:
            down = min(next_open, horizon) - t
            st.alive_s += down
            st.suspect_alive_s += down
            if next_open <= horizon:
                st.mistake_durations.append(next_open - t)
        self.records.append((self.slot, number, t, "close", None, None))
        return next_open


def _rto_before(rtt: np.ndarray, once: np.ndarray, tcp) -> np.ndarray:
    """RTO in force when each message is sent: RFC 6298 over earlier samples, Linux's floor."""
    n = len(rtt)
    out = np.full(n, tcp.initial_rto)
    idx = np.flatnonzero(once)
    if len(idx) == 0:
        return out
    r = rtt[idx]
    srtt = lfilter([0.125], [1, -0.875], r[1:], zi=[0.875 * r[0]])[0] if len(r) > 1 else np.zeros(0)
    srtt = np.concatenate([[r[0]], srtt])
    prev = np.concatenate([[0.0], srtt[:-1]])
    dev = np.abs(prev[1:] - r[1:])
    var = lfilter([0.25], [1, -0.75], dev, zi=[0.75 * r[0] / 2])[0] if len(r) > 1 else np.zeros(0)
    var = np.concatenate([[r[0] / 2], var])
    rto = np.minimum(srtt + np.maximum(4 * var, tcp.min_rto), tcp.max_rto)
    # message i uses the RTO after the samples of messages before it
    count = np.searchsorted(idx, np.arange(n), side="left")
    has = count > 0
    out[has] = rto[count[has] - 1]
    return out


NOT_PRODUCED = ("overhead_bytes_per_conn_hour", "wakeups_per_conn_hour", "tcp_retransmissions")


def simulate(s: Scenario) -> tuple[dict, list]:
    """All slots: (figures, finished slots)."""
    from .engines import EngineRefusal

    problems = unsupported(s)
    if problems:
        raise EngineRefusal(ENGINE, problems)
    started = time.perf_counter()
    slots = [FastSlot(s, i).run() for i in range(s.connections)]
    out = summarize(s, slots)
    for key in NOT_PRODUCED:
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
