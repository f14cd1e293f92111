"""Rare false positives by importance sampling: rates of 1e-6 or 1e-9 per round in seconds.

A false positive needs a success followed by m failed rounds, which at 0.5 % loss
happens once in a million rounds. Brute force would simulate them all; here the
rate is estimated from short independent windows of rounds instead:

- a window is W = B + 1 rounds of the stationary process (datagram links, i.i.d.
  delays, Bernoulli or Gilbert-Elliott loss); the first B rounds are history, and
  the window counts the S-transitions (trust -> suspect) that fall in its last
  round's interval [sigma_B, sigma_{B+1}). By stationarity the expected count is
  rate x interval;
- the loss of the rounds that decide such a transition (the last m + 2, "the
  band") is raised so that about half of those rounds fail, and each window
  carries the likelihood ratio of its loss draws as its weight (Glynn and
  Iglehart's importance sampling: the weighted count is unbiased for the untilted
  expectation);
- windows are drawn in batches until the 95 % half-width is within ``rel_error`` of
  the estimate, or the wall-time budget runs out (then said so).

Gilbert-Elliott loss is a hidden two-state chain per direction, stepped once per
packet sent that way, as in :class:`simlab.network.LossProcess`: the chain steps,
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

The estimate is the stationary S-transition rate: the monitor-mode false-positive
rate. In reconnect mode it is also the false-positive rate when a new connection's
first declaration needs as many failed rounds as any later one (constant delays, no
jitter, Bernoulli loss; checked, else refused): then they differ by a relative
amount of the order of the (rare) rate per round itself. With Gilbert-Elliott loss
a new connection inherits the chain's state of the declaration (most likely bad),
so its false positives cluster: reconnect mode is refused there.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .scenario import Loss, Scenario

METHOD = "importance sampling: stationary windows, tilted loss, likelihood-ratio weights"


def unsupported(s: Scenario) -> list[str]:
    from .fast import unsupported as fast_unsupported

    out = fast_unsupported(s)
    if s.link.transport != "datagram":
        out.append(
            "link.transport: tcp (retransmission state has a long memory; rare-event windows need datagrams)"
        )
    gilbert = "gilbert" in (s.link.up.loss.model, s.link.down.loss.model)
    if gilbert and s.detector.on_declare == "reconnect":
        out.append(
            "on_declare: reconnect with gilbert loss (a new connection inherits the loss chain's state, "
            "so false positives cluster; the estimate is the monitor-mode rate: use on_declare: monitor)"
        )
    if s.peer.crash is not None:
        out.append("peer.crash (the rare-event estimate is of false positives on live connections)")
    if out:
        return out
    from .analytic import round_rule
    from .distributions import Constant

    constant = isinstance(s.link.up.delay, Constant) and isinstance(s.link.down.delay, Constant)
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
    return out


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


class _Setup:
    """What a window needs: the packet directions, the deciding band, the tilt."""

    def __init__(self, s: Scenario):
        self.s = s
        T = s.heartbeat.interval
        det = s.detector
        side = s.detector_side
        self.pingpong = s.heartbeat.style == "pingpong"
        down, up = s.link.down, s.link.up
        if self.pingpong and s.heartbeat.initiator == side:  # its own pings, then the pongs
            self.first = down if side == "server" else up
            self.second = up if side == "server" else down
        else:  # the peer's heartbeats or pings: one packet per round, towards the detector
            self.pingpong = False
            self.first = up if side == "server" else down
            self.second = None
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


def _s_transitions(setup: _Setup, sigma, arrive, lo, hi) -> np.ndarray:
    """Per window, the number of suspicions that start in [lo, hi)."""
    s, det = setup.s, setup.s.detector
    n, W = arrive.shape
    if det.kind == "missed":
        ends = sigma + s.ack_timeout
        answered = arrive <= ends
        k = det.missed.k
        # the k-th consecutive miss after an answered ping ends its window in [lo, hi)
        count = np.zeros(n)
        for r in range(k, W):
            start = answered[:, r - k] & ~answered[:, r - k + 1 : r + 1].any(axis=1)
            count += start & (ends[:, r] >= lo) & (ends[:, r] < hi)
        return count
    order = np.argsort(arrive, axis=1)
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
    in_band = (start >= lo[:, None]) & (start < hi[:, None])
    return (new & in_band).sum(axis=1).astype(float)


def estimate(
    s: Scenario, rel_error: float, max_wall: float = 60.0, seed: int | None = None
) -> dict:
    """The false-positive rate by importance sampling, to ``rel_error`` (95 %) or the budget."""
    from .engines import EngineRefusal

    problems = unsupported(s)
    if problems:
        raise EngineRefusal("fast --rel-error", problems)
    setup = _Setup(s)
    rng = np.random.default_rng(
        np.random.SeedSequence(s.seed if seed is None else seed, spawn_key=(0x7A2E,))
    )
    started = time.perf_counter()
    total = total_sq = weight_sum = weight_sq = 0.0
    n_windows = 0
    batch = 20_000
    exhausted = False
    interval = s.heartbeat.interval  # the counting interval's mean length
    while True:
        x = _windows(setup, rng, batch)
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
        batch = min(400_000, batch * 2)
    rate = float(mean) / interval  # S-transitions per second of live connection
    se = math.sqrt(var / n_windows) / interval
    ess = float(weight_sum**2 / weight_sq) if weight_sq > 0 else 0.0
    return {
        "scenario": s.name,
        "fp_per_conn_hour": rate * 3600,
        "fp_per_conn_hour_ci_low": max(0.0, (rate - 1.96 * se) * 3600),
        "fp_per_conn_hour_ci_high": (rate + 1.96 * se) * 3600,
        "mistake_rate_per_s": rate,
        "mistake_rate_per_s_se": se,
        "fp_per_round": rate * interval,
        "rare_event_method": METHOD,
        "rare_event_windows": n_windows,
        "rare_event_effective_sample_size": ess,
        "rare_event_rel_half_width": (1.96 * se / rate) if rate > 0 else math.inf,
        "rare_event_budget_exhausted": exhausted,
        "engine": "fast",
        "seed": s.seed,
        "wall_s": time.perf_counter() - started,
    }
