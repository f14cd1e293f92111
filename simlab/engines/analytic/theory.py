"""Closed-form failure-detector results, to check the simulator and to pick settings.

Most of this is the NFD-S analysis of Chen, Toueg and Aguilera, "On the Quality of
Service of Failure Detectors", IEEE Trans. Computers 51(5), 2002 (below: CTA 2002):
a sender p emits heartbeat m_i at sigma_i = i*eta, the monitor q has freshness points
tau_i = sigma_i + delta and, in [tau_i, tau_{i+1}), trusts p iff it has received some
m_j with j >= i. Assumptions throughout: synchronized clocks, i.i.d. message loss with
probability p_loss, i.i.d. delays D independent of loss. The k-missed and crash-latency
results are derived from it (see /work/shared/reference/failure-detectors.md).

All times are float seconds; all functions are pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

from simlab.scenario.distributions import (
    Constant,
    Distribution,
    Exponential,
    Lognormal,
    Pareto,
    Uniform,
)

# nfd_s_configure scans eta down to max(eta_max * _ETA_FLOOR, T_D^U * _ETA_MIN_SHARE)
# on a geometric grid with relative step _ETA_STEP
_ETA_FLOOR = 1e-3
_ETA_MIN_SHARE = 1e-4
_ETA_STEP = 1e-4
# work cap for one vectorised block of the scan (grid points x factors)
_BLOCK_CELLS = 2_000_000
# u(x) has (delta + eta) / eta factors; refuse absurd ratios instead of exhausting memory
_MAX_FACTORS = 100_000


@dataclass(frozen=True)
class NfdQos:
    """QoS of NFD-S while p is alive (CTA 2002), plus the worst-case detection time.

    mistake_rate is lambda_M (per second), mistake_recurrence_mean E(T_MR) and
    mistake_duration_mean E(T_M) are seconds, query_accuracy is P_A, p_s is the
    probability that a given freshness point is an S-transition (trust -> suspect).
    """

    mistake_rate: float
    mistake_recurrence_mean: float
    mistake_duration_mean: float
    query_accuracy: float
    detection_time_bound: float
    p_s: float


@dataclass(frozen=True)
class CrashLatency:
    """Distribution of the crash detection time T_D of a last-heard + timeout detector.

    T_D = max(0, max - U - L*period), U ~ U[0, period), P(L = l) = (1 - p_loss) p_loss^l,
    where max = timeout + delay (see timeout_crash_latency).
    """

    mean: float
    max: float
    period: float
    p_loss: float

    def cdf(self, t: float) -> float:
        """Pr(T_D <= t): a geometric mixture of uniforms clipped at 0 (atom at 0)."""
        if t < 0:
            return 0.0
        if t >= self.max:
            return 1.0
        # lags l >= n have max - l*T <= t, so T_D <= t for sure: tail weight p^n
        n = math.ceil((self.max - t) / self.period)
        lags = np.arange(n)
        weights = (1 - self.p_loss) * self.p_loss**lags
        # Pr(max - U - l*T <= t) = Pr(U >= max - l*T - t)
        below = np.clip((t + self.period + lags * self.period - self.max) / self.period, 0, 1)
        return float(min(1.0, np.sum(weights * below) + self.p_loss**n))

    def quantile(self, q: float) -> float:
        """Smallest t with cdf(t) >= q, by bisection (cdf is continuous on (0, max])."""
        if not 0 <= q <= 1:
            raise ValueError(f"quantile level must be in [0, 1], got {q!r}")
        if self.cdf(0.0) >= q:
            return 0.0
        lo, hi = 0.0, self.max
        for _ in range(200):
            mid = (lo + hi) / 2
            if mid in (lo, hi):
                break
            if self.cdf(mid) >= q:
                hi = mid
            else:
                lo = mid
        return hi


def nfd_s_qos(eta: float, delta: float, p_loss: float, delay: Distribution) -> NfdQos:
    """Exact QoS of NFD-S with period eta and shift delta (CTA 2002, Theorem 5).

    p_j(x) = p_L + (1 - p_L) Pr(D > delta + x - j eta), u(x) = prod_{j>=0} p_j(x),
    q_0 = (1 - p_L) Pr(D < delta + eta), p_S = q_0 u(0); lambda_M = p_S / eta,
    E(T_MR) = eta / p_S, E(T_M) = int_0^eta u / p_S, P_A = 1 - int_0^eta u / eta.
    With p_S = 0 there are no mistakes: E(T_MR) = inf and E(T_M) = nan.
    """
    _check_positive("eta", eta)
    _check_probability("p_loss", p_loss)
    if not math.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta!r}")
    q0 = (1 - p_loss) * (1 - float(_sf(delay, delta + eta)))
    p_s = q0 * float(_u(np.array([0.0]), eta, delta, p_loss, delay)[0])
    suspected = _integral_u(eta, delta, p_loss, delay)
    return NfdQos(
        mistake_rate=p_s / eta,
        mistake_recurrence_mean=eta / p_s if p_s > 0 else math.inf,
        mistake_duration_mean=suspected / p_s if p_s > 0 else math.nan,
        query_accuracy=min(1.0, max(0.0, 1 - suspected / eta)),
        detection_time_bound=eta + delta,
        p_s=p_s,
    )


def nfd_s_configure(
    max_detection: float,
    min_mistake_recurrence: float,
    max_mistake_duration: float,
    p_loss: float,
    delay: Distribution,
) -> tuple[float, float]:
    """(eta, delta) for NFD-S meeting T_D <= T_D^U, E(T_MR) >= T_MR^L, E(T_M) <= T_M^U.

    The configuration procedure of CTA 2002 for a known delay distribution:
    q_0' = (1 - p_L) Pr(D < T_D^U), eta_max = min(q_0' T_M^U, T_D^U),
    f(eta) = eta / prod_{j=1}^{ceil(T_D^U/eta)-1} [p_L + (1 - p_L) Pr(D > T_D^U - j eta)],
    eta = the largest eta <= eta_max with f(eta) >= T_MR^L, delta = T_D^U - eta.
    f is not monotone, so it is scanned on a fine grid (plus its breakpoints) down to
    max(eta_max / 1000, T_D^U / 10000). Raises ValueError("infeasible: ...") when nothing
    qualifies in that range.
    """
    for name, value in (
        ("max_detection", max_detection),
        ("min_mistake_recurrence", min_mistake_recurrence),
        ("max_mistake_duration", max_mistake_duration),
    ):
        _check_positive(name, value)
    _check_probability("p_loss", p_loss)
    q0 = (1 - p_loss) * (1 - float(_sf(delay, max_detection)))
    eta_max = min(q0 * max_mistake_duration, max_detection)
    if eta_max <= 0:
        raise ValueError(
            "infeasible: no heartbeat can arrive within max_detection "
            f"(q0' = (1 - p_loss) Pr(D < {max_detection:g}) = 0)"
        )
    eta = _largest_feasible_eta(max_detection, min_mistake_recurrence, eta_max, p_loss, delay)
    return eta, max_detection - eta


def k_missed_monitor(period: float, p_loss: float, delay: float, timeout: float) -> NfdQos:
    """QoS of "suspect when nothing heard for timeout" with heartbeats every period.

    Assumes i.i.d. loss p_loss and a constant delay < period. The detector is NFD-S with
    eta = period, delta = timeout + delay - period (reference, derived). For timeout in
    (kT, (k+1)T) this gives lambda_M = (1 - p) p^k / T and
    E(T_M) = (s + p (T - s)) / (1 - p), s = (k + 1) T - timeout. A long outage counts as
    one mistake (no reset of the connection on suspicion).
    """
    _check_positive("period", period)
    _check_positive("timeout", timeout)
    if not 0 <= delay < period:
        raise ValueError(f"delay must be in [0, period), got {delay!r}")
    return nfd_s_qos(
        eta=period, delta=timeout + delay - period, p_loss=p_loss, delay=Constant(delay)
    )


def k_missed_reset_rounds(q: float, k: int) -> float:
    """Expected rounds until k consecutive failed rounds, each failing w.p. q independently.

    The counter restarts after a declaration (the connection is torn down), so this is the
    mean number of rounds between false declarations: (1 - q^k) / ((1 - q) q^k)
    = sum_{i=1..k} q^-i (reference, derived from a Markov chain).
    """
    _check_probability("q", q)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if q == 0:
        return math.inf
    if q == 1:
        return float(k)
    qk = q**k
    if qk == 0:
        return math.inf
    return -math.expm1(k * math.log(q)) / ((1 - q) * qk)


def pingpong_round_failure(p_up: float, p_down: float) -> float:
    """Probability that a ping/pong round fails with independent loss each way."""
    _check_probability("p_up", p_up)
    _check_probability("p_down", p_down)
    return 1 - (1 - p_up) * (1 - p_down)


def timeout_crash_latency(
    period: float, p_loss: float, delay: float, timeout: float
) -> CrashLatency:
    """Crash detection time of "suspect when nothing heard for timeout" (reference, derived).

    Heartbeats every period, i.i.d. loss p_loss < 1, constant delay, crash at a uniformly
    random phase U since the last send, L ~ Geometric the number of lost heartbeats just
    before it: T_D = max(0, timeout + delay - U - L period). The mean is an exact finite
    sum; for small p it is about timeout + delay - period/2 - period p/(1 - p).
    """
    _check_positive("period", period)
    _check_positive("timeout", timeout)
    if not 0 <= p_loss < 1:
        raise ValueError(f"p_loss must be in [0, 1), got {p_loss!r}")
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay!r}")
    reach = timeout + delay
    mean = 0.0
    for lag in range(math.ceil(reach / period) + 1):
        a = reach - lag * period
        if a <= 0:
            break
        # E[max(0, a - U)] for U ~ U[0, T)
        clipped = a - period / 2 if a >= period else a * a / (2 * period)
        mean += (1 - p_loss) * p_loss**lag * clipped
    return CrashLatency(mean=mean, max=reach, period=period, p_loss=p_loss)


def poisson_interval(count: int, exposure: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) confidence interval for a Poisson rate: count events in exposure.

    low = chi2.ppf(a/2, 2k) / (2 exposure) (0 when k = 0),
    high = chi2.ppf(1 - a/2, 2k + 2) / (2 exposure), a = 1 - level.
    """
    if isinstance(count, bool) or int(count) != count or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    _check_positive("exposure", exposure)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    alpha = 1 - level
    low = 0.0 if count == 0 else float(stats.chi2.ppf(alpha / 2, 2 * count)) / 2 / exposure
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * count + 2)) / 2 / exposure
    return low, high


# --- helpers -------------------------------------------------------------------------


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_probability(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _sf(delay: Distribution, x: np.ndarray | float) -> np.ndarray:
    """delay.sf over an array (the distributions are vectorized)."""
    return np.asarray(delay.sf(np.asarray(x, dtype=float)), dtype=float)


def _features(delay: Distribution) -> tuple[float, ...]:
    """Delay values where sf jumps, kinks or changes scale: breakpoints for quad."""
    if isinstance(delay, Constant):
        return (0.0, delay.value)
    if isinstance(delay, Uniform):
        return (0.0, delay.low, delay.high)
    if isinstance(delay, Exponential):
        return (0.0,) + tuple(delay.mean_ * m for m in (0.25, 1.0, 4.0, 16.0))
    if isinstance(delay, Lognormal):
        return (0.0,) + tuple(delay.median * math.exp(delay.sigma * k) for k in range(-4, 5, 2))
    if isinstance(delay, Pareto):
        return (0.0,) + tuple(delay.scale * m for m in (1.0, 2.0, 4.0, 16.0))
    return (0.0,)


def _loss_factor(args: np.ndarray, p_loss: float, delay: Distribution) -> np.ndarray:
    """p_L + (1 - p_L) Pr(D > args), exactly 1 where args < 0 (message not yet due)."""
    return np.where(args < 0, 1.0, p_loss + (1 - p_loss) * _sf(delay, args))


def _u(x: np.ndarray, eta: float, delta: float, p_loss: float, delay: Distribution) -> np.ndarray:
    """u(x) = Pr(q suspects at tau_i + x) for each x in [0, eta) (CTA 2002)."""
    top = math.floor((delta + float(np.max(x))) / eta)
    if top < 0:
        return np.ones_like(x)
    if top > _MAX_FACTORS:
        raise ValueError(f"delta / eta = {delta / eta:g} is too large to evaluate")
    j = np.arange(top + 1)
    args = delta + x[:, None] - j[None, :] * eta
    return np.prod(_loss_factor(args, p_loss, delay), axis=1)


def _integral_u(eta: float, delta: float, p_loss: float, delay: Distribution) -> float:
    """int_0^eta u(x) dx, split where a factor's argument hits a feature of D."""
    top = max(0, math.floor((delta + eta) / eta))
    cuts = {0.0, eta}
    for j in range(top + 1):
        for a in _features(delay):
            x = a - delta + j * eta
            if 0 < x < eta:
                cuts.add(x)
    edges = sorted(cuts)

    def integrand(x: float) -> float:
        return float(_u(np.array([x]), eta, delta, p_loss, delay)[0])

    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            total += integrate.quad(integrand, lo, hi, epsabs=0.0, epsrel=1e-10, limit=200)[0]
    return total


def _log_f(
    etas: np.ndarray, max_detection: float, p_loss: float, delay: Distribution
) -> np.ndarray:
    """log f(eta) of the configuration procedure, for an array of eta (may be +inf)."""
    top = math.ceil(max_detection / float(np.min(etas)))
    j = np.arange(1, top + 1)
    args = max_detection - etas[:, None] * j[None, :]
    # j runs to ceil(T/eta) - 1, i.e. exactly the j with T - j*eta > 0
    factors = np.where(args > 0, _loss_factor(args, p_loss, delay), 1.0)
    with np.errstate(divide="ignore"):
        return np.log(etas) - np.sum(np.log(factors), axis=1)


def _jumps(delay: Distribution) -> tuple[float, ...]:
    """Delay values where f(eta) can jump or kink (a factor appears or sf is not smooth)."""
    if isinstance(delay, Constant):
        return (0.0, delay.value)
    if isinstance(delay, Uniform):
        return (0.0, delay.low, delay.high)
    if isinstance(delay, Pareto):
        return (0.0, delay.scale)
    return (0.0,)


def _scan_grid(
    max_detection: float, eta_max: float, floor: float, delay: Distribution
) -> np.ndarray:
    """Descending candidate etas in [floor, eta_max]: a geometric grid plus jumps of f."""
    steps = np.arange(math.ceil(math.log(eta_max / floor) / _ETA_STEP) + 1)
    points = [eta_max * np.exp(-_ETA_STEP * steps)]
    for a in _jumps(delay):
        span = max_detection - a
        if span <= 0:
            continue
        # beyond j = 1/step consecutive jumps are closer than the geometric grid
        j = np.arange(1, min(math.floor(span / floor), round(1 / _ETA_STEP)) + 1)
        points.append(span / j)
    grid = np.unique(np.concatenate(points))
    return grid[(grid >= floor) & (grid <= eta_max)][::-1]


def _largest_feasible_eta(
    max_detection: float, target: float, eta_max: float, p_loss: float, delay: Distribution
) -> float:
    """Largest eta <= eta_max with f(eta) >= target: scan down, then bisect the crossing."""
    log_target = math.log(target)

    def feasible(eta: float) -> bool:
        return bool(_log_f(np.array([eta]), max_detection, p_loss, delay)[0] >= log_target)

    floor = max(eta_max * _ETA_FLOOR, max_detection * _ETA_MIN_SHARE)
    if floor > eta_max:
        raise ValueError(
            f"infeasible: eta_max = {eta_max:g} s is below max_detection / "
            f"{1 / _ETA_MIN_SHARE:g} (too little chance that a heartbeat arrives in time)"
        )
    grid = _scan_grid(max_detection, eta_max, floor, delay)
    start = 0
    while start < len(grid):
        factors = math.ceil(max_detection / grid[start])
        size = min(4096, max(16, _BLOCK_CELLS // factors))
        block = grid[start : start + size]
        hits = np.flatnonzero(_log_f(block, max_detection, p_loss, delay) >= log_target)
        if hits.size:
            index = start + int(hits[0])
            if index == 0:
                return float(grid[0])
            return _bisect(feasible, lo=float(grid[index]), hi=float(grid[index - 1]))
        start += size
    raise ValueError(
        f"infeasible: no eta in [{floor:g}, {eta_max:g}] s reaches "
        f"a mistake recurrence of {target:g} s"
    )


def _bisect(feasible: Callable[[float], bool], lo: float, hi: float) -> float:
    """Narrow [lo, hi] (feasible(lo), not feasible(hi)) and return the feasible end."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi) or hi - lo <= 1e-13 * hi:
            break
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class NatSurvival:
    """Whether heartbeats keep a NAT mapping alive, and how long it lasts when they do not.

    ``p_gap_too_long``: probability that the silence between two refreshes reaches the idle
    timeout; ``mean_time_to_expiry``: from a refresh (the opening) to the expiry, in
    seconds (inf if it never expires); ``expiries_per_hour``: its inverse, per hour.
    """

    survives: bool
    p_gap_too_long: float
    mean_time_to_expiry: float
    expiries_per_hour: float


def nat_survival(
    interval: float, idle: float, p_loss: float = 0.0, jitter: float = 0.0
) -> NatSurvival:
    """A mapping refreshed by heartbeats every ``interval`` x U(1 - jitter, 1 + jitter), each
    lost (before the NAT, so not refreshing) with ``p_loss``; it expires after ``idle`` of
    silence (a refresh exactly at the expiry is too late, as in the model).

    Successful refreshes form a renewal process with gaps X = G_1 + ... + G_K, K geometric
    (1 - p_loss): the mapping expires in the first gap with X >= idle, so the mean time to
    expiry is E[X; X < idle] / P(X >= idle) + idle (renewal-reward). Constant intervals
    give closed forms here; with jitter, :mod:`simlab.engines.analytic.natlife` sums the Irwin-Hall
    distributions of K jittered intervals exactly.
    """
    _check_positive("interval", interval)
    _check_positive("idle", idle)
    if not 0 <= p_loss < 1:
        raise ValueError(f"p_loss must be in [0, 1), got {p_loss!r}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    if jitter > 0:
        from simlab.engines.analytic import natlife

        sch = natlife.Schedule(interval, ((p_loss, ()), (1 - p_loss, (0.0,))), 0.0, jitter)
        life = natlife.mapping_life(sch, Constant(idle))
        if life.survives:
            return NatSurvival(True, 0.0, math.inf, 0.0)
        return NatSurvival(False, life.refresh_expiry_p, life.mean_life, 3600 / life.mean_life)
    n_ok = math.ceil(idle / interval) - 1  # gaps k*T < idle: k = 1..n_ok
    tail = p_loss**n_ok  # the first n_ok attempts after a refresh all lost
    below = sum(k * interval * (1 - p_loss) * p_loss ** (k - 1) for k in range(1, n_ok + 1))
    if tail <= 0:
        return NatSurvival(True, 0.0, math.inf, 0.0)
    mean = below / tail + idle
    return NatSurvival(False, tail, mean, 3600 / mean)
