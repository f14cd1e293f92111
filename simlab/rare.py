"""Rare false positives by importance sampling: rates of 1e-6 or 1e-9 per round in seconds.

A false positive needs a success followed by m failed rounds, which at 0.5 % loss
happens once in a million rounds. Brute force would simulate them all; here the
rate is estimated from short independent windows of rounds instead:

- a window is W = B + 1 rounds of the stationary process (datagram links, i.i.d.
  delays, Bernoulli loss); the first B rounds are history, and the window counts
  the S-transitions (trust -> suspect) that fall in its last round's interval
  [sigma_B, sigma_{B+1}). By stationarity the expected count is rate x interval;
- the loss of the rounds that decide such a transition (the last m + 2) is raised
  so that about half of those rounds fail, and each window carries the likelihood
  ratio of its loss draws as its weight (Glynn and Iglehart's importance sampling:
  the weighted count is unbiased for the untilted expectation);
- windows are drawn in batches until the 95 % half-width is within ``rel_error`` of
  the estimate, or the wall-time budget runs out (then said so).

The estimate is the stationary S-transition rate: the monitor-mode false-positive
rate. In reconnect mode it is also the false-positive rate when a new connection's
first declaration needs as many failed rounds as any later one (constant delays, no
jitter; checked, else refused): then they differ by a relative amount of the order
of the (rare) rate per round itself.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .scenario import Scenario

METHOD = "importance sampling: stationary windows, tilted loss, likelihood-ratio weights"


def unsupported(s: Scenario) -> list[str]:
    from .fast import unsupported as fast_unsupported

    out = fast_unsupported(s)
    if s.link.transport != "datagram":
        out.append(
            "link.transport: tcp (retransmission state has a long memory; rare-event windows need datagrams)"
        )
    for name, d in (("uplink", s.link.up), ("downlink", s.link.down)):
        if d.loss.model != "bernoulli":
            out.append(f"link.{name}.loss: gilbert (the tilt is defined for bernoulli loss)")
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
        # per packet loss that makes about half of the band's rounds fail
        packets = 2 if self.pingpong else 1
        target = 1 - 0.5 ** (1 / packets)
        self.tilt_first = max(self.first.loss.p, target)
        self.tilt_second = max(self.second.loss.p, target) if self.second else 0.0


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
    lost1, ratio1 = _losses(rng, n, W, setup.first.loss.p, setup.tilt_first, setup.band)
    logw = ratio1.sum(axis=1)
    arrive = np.where(lost1, np.inf, sigma + setup.first.delay.sample(rng, n * W).reshape(n, W))
    if setup.pingpong:
        lost2, ratio2 = _losses(rng, n, W, setup.second.loss.p, setup.tilt_second, setup.band)
        # a lost ping sends no pong: that pong's draw does not happen and carries no weight
        logw += np.where(lost1, 0.0, ratio2).sum(axis=1)
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
