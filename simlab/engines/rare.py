"""Rare false positives by importance sampling: rates of 1e-6 or 1e-9 per round in seconds.

A false positive needs a success followed by m failed rounds, which at 0.5 % loss
happens once in a million rounds. Brute force would simulate them all; here the
rate is estimated from short independent windows of rounds instead:

- a window is W = B + 1 rounds of the stationary process (datagram links, i.i.d.
  delays, Bernoulli or Gilbert-Elliott loss; or TCP, below); the first B rounds are
  history, and the window counts the S-transitions (trust -> suspect) that fall in
  its last round's interval [sigma_B, sigma_{B+1}). By stationarity the expected count is
  rate x interval;
- the loss of the rounds that decide such a transition (the last m + 2, "the
  band") is raised so that about half of those rounds fail, and each window
  carries the likelihood ratio of its loss draws as its weight (Glynn and
  Iglehart's importance sampling: the weighted count is unbiased for the untilted
  expectation);
- windows are drawn in batches until the 95 % half-width is within ``rel_error`` of
  the estimate, or the wall-time budget runs out (then said so).

Gilbert-Elliott loss is a hidden two-state chain per direction, stepped once per
packet sent that way, as in :class:`simlab.engines.network.LossProcess`: the chain steps,
then the packet is lost with the new state's probability. The true law of a window
draws each direction's state before its first packet from the chain's stationary
law (the model starts there and stays there; which packets are sent depends on the
other direction's losses, never on this chain, so the two directions' states are
independent and each stationary). Pings step their direction's chain every round;
pongs step theirs only for the pings that arrive, in the order the pings arrive
(the peer answers each on arrival), as in the model. The importance law is the
window's true law times theta^N, renormalized, N the band's lost packets: the
exponential family in N, which is again a hidden two-state chain, with parameters
by round (see the comment above :func:`_twist`): in the band the per-state losses
and the moves towards the lossier state are raised, before it only the moves are
steered (the start state and the moves, towards the state the band is best entered
from; the losses stay true). theta is set so that about half of the band's packets
are lost (per direction, as for Bernoulli loss); with equal per-state loss it is
exactly the Bernoulli tilt, and the weight of a chain stepped every round is
E[theta^N] theta^(-N). Steering the entry matters: twisting the band alone, from a
stationary (mostly good) entry, needed 16 to 33 times more windows for the same
half-width on rare bursty cases (2 to 4.6 million instead of 140,000).

Over TCP (Bernoulli loss, constant delays) nothing is lost for good: a segment whose
first L transmissions are lost arrives after its retransmission ladder (doubling from the
RTO, which with constant delays settles at rtt + min_rto, capped at max_rto) and, in
order, holds back everything sent after it; a segment that loses all max_retries + 1
transmissions is doomed and breaks the connection when it is sent (suspicions from then
on are detections, not counted). A window draws each segment's number of lost
transmissions; a silence long enough for a suspicion needs one segment's ladder to run
for it (in-order delivery cannot add several segments' delays), so the band is the round
(two or three with jitter) whose ping, pong or heartbeat would open a silence that ends
in the counting interval, and the tilt raises the loss of those segments' first j*
transmissions (j*: the fewest whose ladder is long enough) to q = j*/(j* + b), b the
band's segments (see the comment above :class:`_Segments`). A segment sent before the
window could still be retransmitting: the history is made long enough that the
probability it could have changed the count, bounded by a union over earlier rounds
and reported as ``rare_event_truncation_bound`` (with the chance that a window's segment
is doomed, whose lost live time the estimate does not divide out), is below 1e-3 of the
dominant path's p^j* per round. Random delays (the RTO moves with every sample),
Gilbert-Elliott loss and a NAT are refused over TCP.

The estimate is the stationary S-transition rate: the monitor-mode false-positive
rate. In reconnect mode it is also the false-positive rate when a new connection's
first declaration needs as many failed rounds as any later one (constant delays, no
jitter, Bernoulli loss; checked, else refused): then they differ by a relative
amount of the order of the (rare) rate per round itself. With Gilbert-Elliott loss
a new connection inherits the chain's state of the declaration (most likely bad),
so its false positives cluster: reconnect mode is refused there. Over TCP a new
connection's first segments retransmit on the initial RTO (1 s) until the estimator
settles: reconnect mode is accepted only where that adds at most 0.1 % false positives
per declaration (a bound, :func:`_reconnect_excess`; at 1 s heartbeats and a 1.5 s
timeout brute force shows +10 %).
"""

from __future__ import annotations

import math
import time

import numpy as np

from simlab.scenario.schema import Loss, Scenario

METHOD = "importance sampling: stationary windows, tilted loss, likelihood-ratio weights"
# The figures an estimate reports (a sweep's columns in rare-event mode);
# rare_event_truncation_bound is there over TCP only.
METRIC_KEYS = (
    "fp_per_conn_hour",
    "fp_per_conn_hour_ci_low",
    "fp_per_conn_hour_ci_high",
    "mistake_rate_per_s",
    "mistake_rate_per_s_se",
    "fp_per_round",
    "rare_event_windows",
    "rare_event_effective_sample_size",
    "rare_event_rel_half_width",
    "rare_event_budget_exhausted",
    "rare_event_truncation_bound",
)


def unsupported(s: Scenario) -> list[str]:
    from simlab.engines.analytic.chain import round_rule
    from simlab.engines.fast import unsupported as fast_unsupported
    from simlab.scenario.distributions import Constant

    out = fast_unsupported(s)
    if s.app.rate > 0:  # (the fast engine covers it; the windows of rounds have none)
        out.append("app.rate > 0 (application traffic: the rare-event windows have none)")
    constant = isinstance(s.link.up.delay, Constant) and isinstance(s.link.down.delay, Constant)
    gilbert = "gilbert" in (s.link.up.loss.model, s.link.down.loss.model)
    if s.link.transport == "tcp":
        if gilbert:
            out.append(
                "link.transport: tcp with gilbert loss (a segment's retransmissions would step the "
                "loss chain too: the rare-event windows over TCP need Bernoulli loss)"
            )
        if not constant:
            out.append(
                "link.transport: tcp with random delays (every RTT sample moves the RTO, so each "
                "retransmission ladder depends on the connection's whole history; the windows are "
                "exact only with constant delays, where the RTO settles at rtt + min_rto)"
            )
        if s.nat.idle_timeout is not None:
            out.append("nat with link.transport: tcp (the TCP windows have no NAT)")
    elif gilbert and s.detector.on_declare == "reconnect":
        out.append(
            "on_declare: reconnect with gilbert loss (a new connection inherits the loss chain's state, "
            "so false positives cluster; the estimate is the monitor-mode rate: use on_declare: monitor)"
        )
    if s.peer.crash is not None:
        out.append("peer.crash (the rare-event estimate is of false positives on live connections)")
    if s.nat.idle_timeout is not None and s.link.transport != "tcp" and not _nat_survives(s):
        out.append(
            "nat whose mapping can expire (an expiry breaks the connection; the windows have no "
            "NAT: exact only where the heartbeats surely keep it alive)"
        )
    if out:
        return out
    if constant and s.heartbeat.jitter == 0:
        rule = round_rule(s)
        if rule.m == 0 or rule.m0 == 0:
            out.append(
                "a detector that declares before a heartbeat can arrive (margin not above the delay)"
            )
        elif s.detector.kind == "missed" and rule.d_ev >= s.ack_timeout:
            out.append("pongs that always arrive after ack_timeout")
        elif s.detector.on_declare == "reconnect" and rule.m0 != rule.m:
            out.append(
                "on_declare: reconnect where a new connection's first declaration needs fewer failed rounds than later ones (the estimate is the long-lived rate)"
            )
    elif s.detector.on_declare == "reconnect":
        out.append(
            "on_declare: reconnect with jitter or random delays (the estimate is the monitor-mode rate; use on_declare: monitor)"
        )
    if not out and s.link.transport == "tcp" and s.detector.on_declare == "reconnect":
        excess = _reconnect_excess(s)
        if excess > RECONNECT_EXCESS:
            out.append(
                "on_declare: reconnect over tcp where a new connection's first segments, on the "
                f"initial RTO, could add up to {excess:.2g} false positives per declaration "
                f"(more than {RECONNECT_EXCESS:g}: the estimate is the long-lived rate; use "
                "on_declare: monitor)"
            )
    return out


def _nat_survives(s: Scenario) -> bool:
    """Do the heartbeats keep the NAT mapping alive for sure (then it changes nothing)?"""
    from simlab.engines.analytic import natlife

    if natlife.problems(s):
        return False
    return natlife.mapping_life(natlife.schedule(s), s.nat.idle_timeout).survives


RECONNECT_EXCESS = 1e-3  # relative error allowed from a new connection's unsettled RTO


def _reconnect_excess(s: Scenario) -> float:
    """Over TCP in reconnect mode: a bound on the extra false positives a new connection brings.

    A new connection's segments run their ladders on the initial RTO until their
    direction's first segment sent once gives an RTT sample, then on srtt + max(4 rttvar,
    min_rto) with rttvar = rtt/2 decaying by 3/4 a sample: n_s samples to settle. Each
    declaration opens one connection, so the reconnect-mode rate exceeds the long-lived
    one by at most this many false positives per declaration, relatively: the expected
    number of unsettled segments (at most n_s / (1 - p) + 1 a direction) times the chance
    that one of them, on the largest of those RTOs, opens a silence the detector declares.
    """
    setup = _TcpSetup(s, history=False)
    tcp, rtt = s.link.tcp, setup.rtt
    settle = 1 + max(0, math.ceil(math.log(tcp.min_rto / (2 * rtt)) / math.log(0.75)))
    top = min(max(tcp.initial_rto, rtt + max(2 * rtt, tcp.min_rto)), tcp.max_rto)
    rungs = np.minimum(top * 2.0 ** np.arange(tcp.max_retries), tcp.max_rto)
    ladder = np.concatenate([[0.0], np.cumsum(rungs)])
    need = int(np.searchsorted(ladder, setup.x, side="left")) if setup.x > 0 else 0
    total = 0.0
    for p in (setup.p1, setup.p2 if setup.pingpong else 0.0):
        if p > 0 and need <= tcp.max_retries:
            total += (settle / (1 - p) + 1) * p**need
    return total


# -- Gilbert-Elliott loss: the window's chain, twisted towards loss in the band ------------------
#
# One packet's draw is a move h -> h' with P(h, h') (0 good, 1 bad) and then a loss with
# l(h') (the chain steps, then loses by the new state). The window's true law is the
# stationary start pi(h_0) times the product of its packets' draws. The importance law
# is that law times theta^N, renormalized, where N counts the band's lost packets: the
# exponential family in N (the Bernoulli tilt is its special case, p' = theta p / (1 - p
# + theta p)). It is again a hidden two-state chain, with parameters by position t:
#
#     w_t(h') = 1 - l(h') + theta_t l(h')      (theta_t = theta in the band, 1 outside)
#     V_W = 1,  V_t(h) = sum_h' P(h, h') w_t(h') V_t+1(h')   (E[theta^N(rest) | h])
#     start:  pi'(h) = pi(h) V_0(h) / (pi V_0)
#     move:   P'_t(h, h') = P(h, h') w_t(h') V_t+1(h') / V_t(h)
#     loss:   l'_t(h') = theta_t l(h') / w_t(h')
#
# Outside the band the loss probabilities are the true ones and only the moves are
# steered (towards the state the band will want to start from); in the band both are
# raised. Every probability that is 0 or 1 stays so and every other stays strictly
# between (w, V > 0), so each draw's likelihood ratio true / twisted is positive and
# finite wherever the true draw is possible: the product of the draws' ratios, the
# window's weight, makes the weighted count unbiased. For a chain stepped once per
# round that product telescopes to (pi V_0) theta^(-N). A pong direction steps only for
# the pings that arrive, in their arrival order: its draw for round r's pong uses
# position r's parameters. That choice is made before the draw (predictable), so the
# product of the draws' ratios is still the likelihood ratio and the estimate still
# unbiased, only the variance is no longer minimal in the family.


def _stationary_bad(loss: Loss) -> float:
    """The chain's stationary probability of the bad state, as the model starts it."""
    total = loss.p_gb + loss.p_bg
    return loss.p_gb / total if total > 0 else 0.0


def _twist(loss: Loss, thetas: np.ndarray):
    """The chain twisted by ``thetas[t]`` per packet lost at position t (see above).

    Returns the start law (good, bad) and, by position, the move matrices P'_t, the
    losses l'_t and their complements (computed directly, so none rounds to 0 or 1).
    """
    P = np.array([[1 - loss.p_gb, loss.p_gb], [loss.p_bg, 1 - loss.p_bg]])
    l = np.array([loss.loss_good, loss.loss_bad])
    V = np.ones(2)
    W = len(thetas)
    moves, lost, kept = np.empty((W, 2, 2)), np.empty((W, 2)), np.empty((W, 2))
    for t in range(W - 1, -1, -1):
        w = 1 - l + thetas[t] * l
        lost[t], kept[t] = thetas[t] * l / w, (1 - l) / w
        MV = P * (w * V)
        V = MV.sum(axis=1)
        moves[t] = MV / V[:, None]
        V = V / V.max()  # the scale cancels in P'_t and pi'
    bad = _stationary_bad(loss)
    start = np.array([1 - bad, bad]) * V
    return start / start.sum(), moves, lost, kept


def _band_loss(loss: Loss, band: np.ndarray, theta: float) -> float:
    """Expected share of the band's packets the twisted chain loses (a packet every round)."""
    state, moves, lost, _ = _twist(loss, np.where(band, theta, 1.0))
    total = 0.0
    for t in range(len(band)):
        state = state @ moves[t]
        total += band[t] * (state @ lost[t])
    return total / band.sum()


def _theta(loss: Loss, target: float, band: np.ndarray) -> float:
    """The twist whose band loses ``target`` of its packets on average (1: already as many).

    E_theta[N] = d log E[theta^N] / d log theta increases with theta (a cumulant
    generating function is convex): bisection on log theta.
    """
    if loss.mean >= target or max(loss.loss_good, loss.loss_bad) == 0:
        return 1.0

    def share(x: float) -> float:
        return _band_loss(loss, band, math.exp(x))

    lo, hi = 0.0, 1.0
    while share(hi) < target and hi < 512:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if share(mid) < target else (lo, mid)
    return math.exp(hi)


def _log_ratio(true: np.ndarray, tilted: np.ndarray) -> np.ndarray:
    """log(true / tilted), 0 where both are 0 (a draw that never happens)."""
    with np.errstate(divide="ignore"):
        return np.where(true > 0, np.log(np.where(true > 0, true, 1.0)) - np.log(tilted), 0.0)


class _Gilbert:
    """One direction's Gilbert-Elliott chain over a window, twisted towards loss in the band.

    Tables by [position, state]: the twisted probability of leaving the state, of a
    loss in the new state, and the log likelihood ratio (true over twisted) of each
    outcome of those draws.
    """

    def __init__(self, loss: Loss, target: float, band: np.ndarray):
        self.theta = _theta(loss, target, band)
        true_start, (P,), (l,), (k,) = _twist(loss, np.ones(1))
        start, moves, lost, kept = _twist(loss, np.where(band, self.theta, 1.0))
        h = np.arange(2)
        self.start, self.move, self.lost = start, moves[:, h, 1 - h], lost
        self.lr_start = _log_ratio(true_start, start)
        self.lr_move = _log_ratio(P[h, 1 - h], self.move)
        self.lr_stay = _log_ratio(P[h, h], moves[:, h, h])
        self.lr_lost = _log_ratio(l, lost)
        self.lr_kept = _log_ratio(k, kept)

    def draw(
        self, rng, n: int, order: np.ndarray | None = None, sent: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lost flags (n x W, by round) and each window's log likelihood ratio.

        A packet of round r is drawn with position r's parameters. Packets step the
        chain in ``order`` (n x W round numbers; default: round order), and only those
        ``sent`` (n x W, by round; default: all) step it at all.
        """
        W = len(self.lost)
        rows = np.arange(n)
        state = (rng.random(n) < self.start[1]).astype(np.intp)
        logw = self.lr_start[state]
        lost = np.zeros((n, W), bool)
        for c in range(W):
            r = order[:, c] if order is not None else c
            move = rng.random(n) < self.move[r, state]
            new = state ^ move
            gone = rng.random(n) < self.lost[r, new]
            lr = np.where(move, self.lr_move[r, state], self.lr_stay[r, state]) + np.where(
                gone, self.lr_lost[r, new], self.lr_kept[r, new]
            )
            if sent is None:
                state, lost[:, c] = new, gone
                logw += lr
            else:  # no pong for a lost ping: no step, no draw, no weight
                on = sent[rows, r]
                state = np.where(on, new, state)
                logw += np.where(on, lr, 0.0)
                lost[rows, r] = gone & on
        return lost, logw


def _directions(s: Scenario):
    """(pingpong, first, second, back): the packets of a round, by direction.

    The detector's own pings then the peer's pongs (pingpong, first, second), or one
    packet per round towards the detector (first: the peer's heartbeats or pings; back:
    the direction of the detector's pongs to the peer's pings, None for oneway).
    """
    side = s.detector_side
    down, up = s.link.down, s.link.up
    towards, away = (up, down) if side == "server" else (down, up)
    if s.heartbeat.style == "pingpong" and s.heartbeat.initiator == side:
        return True, away, towards, None
    return False, towards, None, away if s.heartbeat.style == "pingpong" else None


class _Setup:
    """What a window needs: the packet directions, the deciding band, the tilt."""

    def __init__(self, s: Scenario):
        self.s = s
        T = s.heartbeat.interval
        det = s.detector
        self.pingpong, self.first, self.second, _ = _directions(s)
        # how many rounds must fail for a suspicion: the band to tilt
        if det.kind == "timeout":
            m = math.ceil(det.timeout / T)
            reach = det.timeout
        elif det.kind == "missed":
            m = det.missed.k
            reach = m * T + s.ack_timeout
        else:
            m = max(1, math.ceil(s.nfd_delta / T))
            reach = T + s.nfd_delta
        spread = self.first.delay.mean + (self.second.delay.mean if self.second else 0.0)
        if not math.isfinite(spread):
            spread = 10 * T
        self.m = m
        self.history = int(math.ceil((reach + 6 * spread) / T)) + m + 2  # B
        self.width = self.history + 1  # W
        self.band = slice(max(0, self.history - m - 1), self.width)
        band = np.zeros(self.width, bool)
        band[self.band] = True
        # per packet loss that makes about half of the band's rounds fail
        packets = 2 if self.pingpong else 1
        target = 1 - 0.5 ** (1 / packets)
        self.tilt_first = max(self.first.loss.p, target)
        self.tilt_second = max(self.second.loss.p, target) if self.second else 0.0
        self.chain_first = self.chain_second = None
        if self.first.loss.model == "gilbert":
            self.chain_first = _Gilbert(self.first.loss, target, band)
        if self.second is not None and self.second.loss.model == "gilbert":
            self.chain_second = _Gilbert(self.second.loss, target, band)


def _losses(rng, n, W, p, tilt, band) -> tuple[np.ndarray, np.ndarray]:
    """Lost flags (n x W) drawn with the tilt in the band, and each draw's log likelihood ratio."""
    q = np.full(W, p)
    q[band] = tilt
    lost = rng.random((n, W)) < q
    with np.errstate(divide="ignore"):
        log_lost = np.log(p) - np.log(q) if p > 0 else np.where(q > 0, -np.inf, 0.0)
        log_ok = np.log1p(-p) - np.log1p(-q)
    return lost, np.where(lost, log_lost, log_ok)


def _windows(setup: _Setup, rng: np.random.Generator, n: int) -> np.ndarray:
    """Weighted S-transition counts in the last round's interval of n independent windows."""
    s, W, B = setup.s, setup.width, setup.history
    T, jitter = s.heartbeat.interval, s.heartbeat.jitter
    gaps = T * (1 + jitter * (2 * rng.random((n, W)) - 1)) if jitter else np.full((n, W), T)
    sigma = np.cumsum(gaps, axis=1)
    if setup.chain_first is None:
        lost1, ratio1 = _losses(rng, n, W, setup.first.loss.p, setup.tilt_first, setup.band)
        logw = ratio1.sum(axis=1)
    else:  # one ping or heartbeat per round, in round order
        lost1, logw = setup.chain_first.draw(rng, n)
    arrive = np.where(lost1, np.inf, sigma + setup.first.delay.sample(rng, n * W).reshape(n, W))
    if setup.pingpong:
        if setup.chain_second is None:
            lost2, ratio2 = _losses(rng, n, W, setup.second.loss.p, setup.tilt_second, setup.band)
            # a lost ping sends no pong: that pong's draw does not happen and carries no weight
            logw += np.where(lost1, 0.0, ratio2).sum(axis=1)
        else:  # the peer answers each ping as it arrives: pongs step their chain in that order
            order = np.argsort(arrive, axis=1, kind="stable")
            lost2, ratio2 = setup.chain_second.draw(rng, n, order, ~lost1)
            logw += ratio2
        delay2 = setup.second.delay.sample(rng, n * W).reshape(n, W)
        arrive = np.where(lost1 | lost2, np.inf, arrive + delay2)
    counts = _s_transitions(setup, sigma, arrive, sigma[:, B - 1], sigma[:, B])
    return counts * np.exp(logw)


def _s_transitions(setup, sigma, arrive, lo, hi, until=None) -> np.ndarray:
    """Per window, the number of suspicions that start in [lo, hi) (and before ``until``:
    over TCP, a suspicion from the break on is a detection, not a false positive)."""
    s, det = setup.s, setup.s.detector
    n, W = arrive.shape
    if det.kind == "missed":
        ends = sigma + s.ack_timeout
        answered = arrive <= ends
        k = det.missed.k
        # the k-th consecutive miss after an answered ping ends its window in [lo, hi)
        count = np.zeros(n)
        if until is not None:
            hi = np.minimum(hi, until)
        for r in range(k, W):
            start = answered[:, r - k] & ~answered[:, r - k + 1 : r + 1].any(axis=1)
            count += start & (ends[:, r] >= lo) & (ends[:, r] < hi)
        return count
    # stable: segments released together (TCP's in-order delivery) reach the detector in order
    order = np.argsort(arrive, axis=1, kind="stable")
    times = np.take_along_axis(arrive, order, axis=1)
    if det.kind == "timeout":
        deadline = times + det.timeout
        update = np.isfinite(times)
    else:  # nfd: a new largest sequence number moves the deadline to its freshness point
        seqs = np.where(np.isfinite(times), order, -1)
        best = np.maximum.accumulate(seqs, axis=1)
        update = (
            np.isfinite(times)
            & (seqs == best)
            & np.concatenate([np.ones((n, 1), bool), best[:, 1:] > best[:, :-1]], axis=1)
        )
        stamp = np.take_along_axis(sigma, np.maximum(best, 0), axis=1)
        deadline = stamp + s.heartbeat.interval + s.nfd_delta
    # the chain of deadlines, each holding from its update to the next update
    u = np.where(update, times, np.nan)
    # next update time after each position (inf if none)
    nxt = np.full((n, W), np.inf)
    later = np.full(n, np.inf)
    for c in range(W - 1, -1, -1):
        nxt[:, c] = later
        later = np.where(update[:, c], times[:, c], later)
    start = np.maximum(deadline, u)
    suspect = update & (start <= nxt)  # at a tie the model's timer fires first
    # a suspicion continues (no new S-transition) if the previous update's segment was still
    # suspect when this update came and this deadline had already passed
    prev_suspect = np.zeros((n, W), bool)
    last = np.zeros(n, bool)
    for c in range(W):
        prev_suspect[:, c] = last
        last = np.where(update[:, c], suspect[:, c], last)
    new = suspect & ~(prev_suspect & (start <= u))
    if until is not None:
        hi = np.minimum(hi, until)
    in_band = (start >= lo[:, None]) & (start < hi[:, None])
    return (new & in_band).sum(axis=1).astype(float)


# -- TCP: retransmission ladders, in-order delivery, doomed segments ------------------------------
#
# Over TCP nothing is lost for good: a segment whose first L transmissions are lost
# arrives after its ladder, ladder(L) = sum_{i<L} backoff(rto, i) (doubling from the RTO,
# capped at max_rto), and holds back everything sent after it in its direction:
#
#     arrival_k = max(send_k + ladder(L_k) + delay, arrival_{k-1})
#
# (pongs are sent when their ping reaches the peer, so a held ping holds its pong). A
# segment with all max_retries + 1 transmissions lost is doomed: the connection breaks
# when it is sent, nothing later in its direction arrives, and a suspicion from the break
# on is a detection, not a false positive. Each segment's fate is drawn when it is sent
# (as in the model), independently given the RTO; with constant delays every RTT sample
# is the same (Karn's rule keeps only segments sent once, all with rtt = d_up + d_down),
# so SRTT = rtt and RTTVAR decays by 3/4 a sample: the long-lived RTO is rtt + min_rto
# (capped at max_rto), the same for both directions and every segment. Random delays
# would move the RTO with every sample, making each ladder depend on the whole history:
# refused.
#
# The rare event. In-order delivery means a silence at the detector ends with the arrival
# of the one segment that opened it, so many segments cannot add up their delays: a
# silence of the detector's reach needs ONE segment's ladder (a ping's or its pong's) to
# run for about x = reach - the round's normal spacing (timeout: timeout - T; missed:
# (k - 1) T + ack_timeout - rtt; nfd: delta - delay), i.e. j* = min{j: ladder(j) >= x}
# lost transmissions of that segment: probability p^j*. Splitting the losses between a
# ping and its pong, or between consecutive segments, needs more losses in all (the ladder
# doubles), so it is the lesser path. And the segment is pinned down: a suspicion that
# starts in the counting interval was opened by the segment sent about x + delay before it
# (one round; two or three with jitter): the band.
#
# The tilt: in the band, the first j* transmissions of each segment are lost with
# probability q (transmissions after the j*-th keep the true p: the event is {L >= j*}, and
# beyond it the true tail is already the right one, which also keeps doomed segments as
# rare as they are). The weight is the product of the per-transmission ratios: (p/q)^L
# (1 - p)/(1 - q) for L < j*, (p/q)^j* for L >= j*. For the segment that opens the silence
# the relative second moment is q^-j*; each other tilted segment multiplies it by
# E_p[ratio] ~ 1/(1 - q); with b tilted segments that is about q^-j* (1 - q)^-b, least at
# q = j*/(j* + b) (j* = 7, one segment: q = 0.875, a factor of about 20 where brute force
# needs 1/p^j*). Nothing else is tilted: paths through other segments are sampled at their
# own (lower) probability, and the estimate stays unbiased whatever they are.
#
# Head-of-line blocking: a segment sent before the window (not simulated) could still be
# running its ladder and hold back the window's arrivals. The window is exact from
# t* = (start of the counting interval) - reach on (the detector's count there depends
# only on arrivals from t* on, as for datagrams) unless such a segment could delay an
# arrival to t* or later. Its probability is bounded by a union over earlier rounds and
# reported (see :meth:`_TcpSetup.bound`); the history is lengthened until the bound is
# below 1e-3 of the dominant path's probability per round.

TCP_BOUND_SHARE = 1e-3  # the truncation bound aimed at, relative to p^j* per round
MAX_WIDTH = 4000  # rounds in a window at most (the bound is reported whatever it is)


def _failures(u: np.ndarray, p) -> np.ndarray:
    """Losses before the first success, each transmission lost with ``p`` (u uniform in (0, 1])."""
    p = np.broadcast_to(np.asarray(p, float), u.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.floor(np.log(u) / np.log(np.where((p > 0) & (p < 1), p, 0.5)))
    return np.where(p <= 0, 0.0, np.where(p >= 1, np.inf, g))


class _Segments:
    """One direction's segments over a window: each one's lost transmissions and log ratio.

    ``q[r]``: the loss of round r's first ``jstar`` transmissions under the importance
    law (the true ``p`` outside the band); later transmissions keep ``p``.
    """

    def __init__(self, p: float, q: np.ndarray, jstar: int, retries: int):
        self.p, self.q, self.jstar, self.doom = p, q, jstar, retries + 1
        tilted = q != p
        with np.errstate(divide="ignore"):
            self.lr_lost = np.where(tilted, math.log(p) - np.log(q), 0.0) if p > 0 else 0 * q
            self.lr_kept = np.where(tilted, math.log1p(-p) - np.log1p(-q), 0.0)

    def draw(self, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Lost transmissions (n x W; ``retries + 1``: doomed) and their log likelihood ratios."""
        W = len(self.q)
        first = np.minimum(_failures(1 - rng.random((n, W)), self.q), self.jstar)
        tail = _failures(1 - rng.random((n, W)), self.p)
        short = first < self.jstar
        lost = np.minimum(np.where(short, first, self.jstar + tail), self.doom).astype(np.intp)
        lr = np.where(short, first * self.lr_lost + self.lr_kept, self.jstar * self.lr_lost)
        return lost, lr


def _tail(p: float, ladder: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(a segment's ladder runs for y or more, and it is not doomed): p^J - p^(R+1)."""
    R = len(ladder) - 2
    need = np.searchsorted(ladder[: R + 1], y, side="left")
    return np.where(need <= R, p ** np.minimum(need, R + 1) - p ** (R + 1), 0.0)


class _TcpSetup:
    """What a TCP window needs: directions, the ladder, the band and its tilt, the history."""

    def __init__(self, s: Scenario, history: bool = True):
        self.s = s
        hb, det, tcp = s.heartbeat, s.detector, s.link.tcp
        T, J = hb.interval, hb.jitter
        self.pingpong, first, second, back = _directions(s)
        self.d1 = first.delay.value
        self.d2 = second.delay.value if second else 0.0
        self.rtt = s.link.up.delay.value + s.link.down.delay.value
        self.rto = min(self.rtt + tcp.min_rto, tcp.max_rto)
        self.R = R = tcp.max_retries
        rungs = np.minimum(self.rto * 2.0 ** np.arange(R), tcp.max_rto)  # backoff(rto, i)
        self.ladder = np.concatenate(
            [[0.0], np.cumsum(rungs), [np.inf]]
        )  # by losses; R + 1: doomed
        self.p1 = first.loss.p
        self.p2 = second.loss.p if second else 0.0
        self.back_doom = back.loss.p ** (R + 1) if back is not None else 0.0
        d_ev = self.d1 + self.d2  # a round's send to its evidence at the detector
        if det.kind == "timeout":
            reach, x = det.timeout, det.timeout - T
        elif det.kind == "missed":
            k = det.missed.k
            reach, x = k * T * (1 + J) + s.ack_timeout, (k - 1) * T + s.ack_timeout - d_ev
        else:
            reach, x = T + s.nfd_delta, s.nfd_delta - d_ev
        self.reach, self.x = reach, x
        jstar = int(np.searchsorted(self.ladder[: R + 1], x, side="left")) if x > 0 else 0
        self.jstar = min(jstar, R)
        # the band: rounds c whose segment, late by x, opens a silence whose suspicion starts
        # in the counting interval [sigma_{B-1}, sigma_B): sigma_{B-1} - sigma_c spans n gaps
        # and the suspicion starts about y = d_ev + x (+- one gap's jitter) after sigma_c
        y = d_ev + x
        n_lo = max(0, math.floor((y - T * J) / (T * (1 + J))))
        n_hi = max(n_lo, math.floor((y + T * J) / (T * (1 - J))))
        self.offsets = range(n_lo, n_hi + 1)
        lossy = (self.p1 > 0) + (self.pingpong and self.p2 > 0)
        b = max(1, len(self.offsets) * lossy)
        q = self.jstar / (self.jstar + b)
        self.q1 = max(self.p1, q) if self.p1 > 0 else 0.0
        self.q2 = max(self.p2, q) if self.p2 > 0 else 0.0
        if not history:
            return
        # the history: long enough for the count's reach and the band, then until the
        # head-of-line bound is small next to the dominant path
        tmin = T * (1 - J)
        B = max(n_hi + 2, math.ceil((reach + d_ev) / tmin) + 2)
        scale = self.p1**self.jstar + (self.p2**self.jstar if self.pingpong else 0.0)
        target = TCP_BOUND_SHARE * min(1.0, scale)
        while self.bound(B, doomed=False) > target and B + 1 < MAX_WIDTH:
            B = B + 1 if B < 64 else B + B // 8
        self.history = B = min(B, MAX_WIDTH - 1)
        self.width = W = B + 1
        self.truncation_bound = self.bound(B)
        q1, q2 = np.full(W, self.p1), np.full(W, self.p2)
        band = [B - 1 - n for n in self.offsets if B - 1 - n >= 0]
        q1[band], q2[band] = self.q1, self.q2
        self.band = band
        self.first = _Segments(self.p1, q1, self.jstar, R)
        self.second = _Segments(self.p2, q2, self.jstar, R) if self.pingpong else None

    def bound(self, B: int, doomed: bool = True) -> float:
        """An upper bound on the probability that the window's count differs from the process's.

        Rounds are spaced at least tmin = T (1 - jitter) apart, and t* = sigma_{B-1} - reach.
        One packet a round (oneway, or the peer's pings): round -l (before the window) can
        matter only if its ladder reaches t*: ladder >= (B - 1 + l) tmin - reach - delay.
        Pings and pongs: if every earlier ping's and pong's ladder is below h_l = ((B - 1 +
        l) tmin - reach - rtt) / 2, the earlier pings all arrive before (t* + sigma_{-1} -
        rtt) / 2 + d_ping and their pongs before t*; a window ping they hold then sends its
        pong before that time, which reaches t* only if its ladder is h_1 or more, and a
        window ping i is held only if some earlier ladder runs past sigma_i (>= (i + l) tmin).
        Union bounds over all of these (ladders short of doomed: a connection broken before
        the window is not the live one), plus the probability that a segment in the window
        is doomed (the estimate does not divide out the live time that ends there).
        """
        tmin = self.s.heartbeat.interval * (1 - self.s.heartbeat.jitter)
        top = self.ladder[self.R]
        span = 2 * top + self.reach + self.rtt + 2 * tmin
        ls = np.arange(1, int(span / tmin) + 3)  # beyond, every term is 0
        lead = (B - 1 + ls) * tmin - self.reach
        if not self.pingpong:
            total = _tail(self.p1, self.ladder, lead - self.d1).sum()
        else:
            h = (lead - self.rtt) / 2
            total = (_tail(self.p1, self.ladder, h) + _tail(self.p2, self.ladder, h)).sum()
            held = (np.minimum(ls, B) * _tail(self.p1, self.ladder, ls * tmin)).sum()
            total += held * _tail(self.p2, self.ladder, h[:1])[0]
        if not doomed:  # the head-of-line part alone (it shrinks as the history grows)
            return float(total)
        doom = self.p1 ** (self.R + 1) + self.p2 ** (self.R + 1) + self.back_doom
        return float(total + (B + 1) * doom)


def _tcp_windows(setup: _TcpSetup, rng: np.random.Generator, n: int) -> np.ndarray:
    """Weighted S-transition counts in the last round's interval of n independent TCP windows."""
    s, W, B, R = setup.s, setup.width, setup.history, setup.R
    T, jitter = s.heartbeat.interval, s.heartbeat.jitter
    gaps = T * (1 + jitter * (2 * rng.random((n, W)) - 1)) if jitter else np.full((n, W), T)
    sigma = np.cumsum(gaps, axis=1)
    lost1, logw = setup.first.draw(rng, n)
    logw = logw.sum(axis=1)
    # in order: each arrival waits for the one before (a doomed segment's inf holds all after it)
    arrive = np.maximum.accumulate(sigma + setup.ladder[lost1] + setup.d1, axis=1)
    broken = np.where(lost1 > R, sigma, np.inf).min(axis=1)  # a doomed segment breaks when sent
    if setup.pingpong:  # each pong is sent when its ping reaches the peer
        lost2, lr2 = setup.second.draw(rng, n)
        sent = np.isfinite(arrive)
        broken = np.minimum(broken, np.where(sent & (lost2 > R), arrive, np.inf).min(axis=1))
        logw += np.where(sent, lr2, 0.0).sum(axis=1)  # no ping, no pong: no draw, no weight
        arrive = np.maximum.accumulate(arrive + setup.ladder[lost2] + setup.d2, axis=1)
    elif setup.back_doom > 0:  # the detector's pongs to the peer's pings: they can only break
        doomed = (rng.random((n, W)) < setup.back_doom) & np.isfinite(arrive)
        broken = np.minimum(broken, np.where(doomed, arrive, np.inf).min(axis=1))
    counts = _s_transitions(setup, sigma, arrive, sigma[:, B - 1], sigma[:, B], until=broken)
    return counts * np.exp(logw)


def estimate(
    s: Scenario, rel_error: float, max_wall: float = 60.0, seed: int | None = None
) -> dict:
    """The false-positive rate by importance sampling, to ``rel_error`` (95 %) or the budget."""
    from simlab.errors import EngineRefusal

    problems = unsupported(s)
    if problems:
        raise EngineRefusal("fast --rel-error", problems)
    tcp = s.link.transport == "tcp"
    setup = _TcpSetup(s) if tcp else _Setup(s)
    windows = _tcp_windows if tcp else _windows
    rng = np.random.default_rng(
        np.random.SeedSequence(s.seed if seed is None else seed, spawn_key=(0x7A2E,))
    )
    started = time.perf_counter()
    total = total_sq = weight_sum = weight_sq = 0.0
    n_windows = 0
    largest = max(2_000, 8_000_000 // setup.width)  # windows a batch: memory stays bounded
    batch = min(20_000, largest)
    exhausted = False
    interval = s.heartbeat.interval  # the counting interval's mean length
    while True:
        x = windows(setup, rng, batch)
        total += x.sum()
        total_sq += (x * x).sum()
        nz = x[x > 0]
        weight_sum += nz.sum()
        weight_sq += (nz * nz).sum()
        n_windows += batch
        mean = total / n_windows
        var = max(total_sq / n_windows - mean * mean, 0.0)
        half = 1.96 * math.sqrt(var / n_windows)
        wall = time.perf_counter() - started
        if mean > 0 and half <= rel_error * mean and n_windows >= 100_000:
            break
        if wall > max_wall:
            exhausted = True
            break
        batch = min(400_000, largest, batch * 2)
    rate = float(mean) / interval  # S-transitions per second of live connection
    se = math.sqrt(var / n_windows) / interval
    ess = float(weight_sum**2 / weight_sq) if weight_sq > 0 else 0.0
    # no window saw an event: the weights say nothing about how rare it is, so the
    # upper bound is unknown (NaN), not the zero-width interval a zero SE would give
    high = (rate + 1.96 * se) * 3600 if rate > 0 else math.nan
    out = {
        "scenario": s.name,
        "fp_per_conn_hour": rate * 3600,
        "fp_per_conn_hour_ci_low": max(0.0, (rate - 1.96 * se) * 3600),
        "fp_per_conn_hour_ci_high": high,
        "mistake_rate_per_s": rate,
        "mistake_rate_per_s_se": se,
        "fp_per_round": rate * interval,
        "rare_event_method": METHOD,
        "rare_event_windows": n_windows,
        "rare_event_effective_sample_size": ess,
        "rare_event_rel_half_width": (1.96 * se / rate) if rate > 0 else math.nan,
        "rare_event_budget_exhausted": exhausted,
        "engine": "fast",
        "seed": s.seed,
        "wall_s": time.perf_counter() - started,
    }
    if tcp:  # the head-of-line truncation (and doomed-segment) bound, per window
        out["rare_event_truncation_bound"] = setup.truncation_bound
    return out
