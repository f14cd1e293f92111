"""How long a NAT mapping lives under a heartbeat schedule: the analytic engine's NAT figures.

A mapping is refreshed by every packet that crosses it (outbound ones always,
inbound ones with ``nat.refresh: both``) and expires after ``idle`` of silence; a
refresh at the very instant of expiry is too late, as in the model. Lost packets
are lost before the NAT and refresh nothing.

Over a datagram link with constant delays and Bernoulli loss, heartbeat rounds are
independent: round k, sent k T after the opening, refreshes the mapping at a subset
of fixed offsets (a client's ping at 0 and, with ``refresh: both``, its pong at the
round trip; a server's ping and the client's pong at the downlink delay). The
lattice refreshes form a Markov renewal process whose state after a refresh is (the
round's outcome, which of its refreshes). Jittered intervals make the time of i
rounds an Irwin-Hall variable (summed exactly). Application messages add an
independent Poisson stream of refreshes (the client's messages that are not lost).

The mapping expires in the first silence of length >= idle. Its mean lifetime from
the opening solves a linear system over the refresh states (first-step analysis):
``f(x) = sum over the next lattice refresh (y, gap g) of P(x -> y, g) * h(g, f(y))``
with ``h = g + f(y)`` when g < idle (a silence inside the gap cannot reach idle),
else ``E[tau; tau <= g] + P(tau > g) (g + f(y))``, tau being the time at which the
Poisson stream alone, started at the refresh, first leaves a silence of idle
(:class:`PoissonGap`; without application traffic tau = idle).

A timeout distribution (uniform; constant is the point case) is averaged over, since
the model draws each connection's timeout once. Timeouts for which the mapping can
never expire are reported as a share, and the lifetime figures are those of the
mappings that do expire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise

import numpy as np
from scipy import integrate

from simlab.scenario.distributions import Constant, Uniform
from simlab.scenario.schema import Scenario

_NEGLIGIBLE = 1e-18  # probability mass below which a lattice gap is no longer followed
_MAX_ROUNDS = 1_000_000
_TERMS = 40  # polynomial terms kept per piece of PoissonGap (b c <= 1/e: 0.37^40/40! ~ 1e-65)


class PoissonGap:
    """tau: when a Poisson stream of rate ``a``, started with a point at 0, first leaves a
    silence of length ``c`` (the mapping expires at tau if nothing else refreshes it).

    u(t) = P(tau > t) is 1 on [0, c), drops by e^{-ac} at c and then obeys the delay
    differential equation u'(t) = -a e^{-ac} u(t - c): expiry at t needs a point at
    t - c (rate a, independent of tau > t - c) and none in the c after it. The global
    solution is an alternating sum that cancels catastrophically for t >> c, so u is
    kept piecewise, as polynomials in the local variable s in [0, c) of each piece
    [n c, (n + 1) c) (the method of steps); with b = a e^{-ac} <= 1/(e c), the
    coefficients shrink like (b c)^k / k! and stay stable.
    """

    def __init__(self, a: float, c: float):
        self.a, self.c = a, c
        self.b = a * math.exp(-a * c)
        self.pieces = [np.array([1.0])]
        self.cum = [0.0, c]  # the integral of u over [0, n c], n = 0, 1, ...

    def _locate(self, t: float) -> tuple[int, float]:
        n = int(t // self.c)
        while len(self.pieces) <= n:  # the next piece: u(nc) - b * int_0^s u(r - c) dr
            prev, first = self.pieces[-1], len(self.pieces) == 1
            nxt = -self.b * _anti(prev)
            nxt[0] += _poly(prev, self.c) - (math.exp(-self.a * self.c) if first else 0.0)
            self.pieces.append(nxt[:_TERMS])
            self.cum.append(self.cum[-1] + _poly(_anti(nxt[:_TERMS]), self.c))
        return n, t - n * self.c

    def survival(self, t: float) -> float:
        """P(tau > t)."""
        n, s = self._locate(t)
        return max(0.0, _poly(self.pieces[n], s))

    def integral(self, t: float) -> float:
        """The integral of P(tau > r) over r in [0, t]."""
        n, s = self._locate(t)
        return float(self.cum[n] + _poly(_anti(self.pieces[n]), s))

    def mean(self) -> float:
        """E[tau] = (e^{ac} - 1) / a: the classic waiting time for a gap of length c."""
        return math.expm1(self.a * self.c) / self.a

    def expired_by(self, g: float) -> tuple[float, float]:
        """(P(tau <= g), E[tau; tau <= g]) = (1 - u(g), int_0^g (u(r) - u(g)) dr)."""
        u = self.survival(g)
        return 1.0 - u, self.integral(g) - g * u


@lru_cache(maxsize=65536)
def _irwin_hall_below(i: int, z: float) -> tuple[float, float]:
    """(P(Z < z), E[Z; Z < z]) for Z the sum of i uniforms on [0, 1) (Irwin-Hall).

    P(Z < z) = (1/i!) sum_{k <= z} (-1)^k C(i, k) (z - k)^i, and E[Z; Z < z] = z P(Z < z)
    minus its integral, (1/(i+1)!) sum_{k <= z} (-1)^k C(i, k) (z - k)^(i+1). The sums
    cancel heavily for large i, so they are taken in exact rational arithmetic (the float
    z is a binary fraction) and rounded once.
    """
    if z <= 0:
        return 0.0, 0.0
    if z >= i:
        return 1.0, i / 2
    x = Fraction(z)
    signs = [(-1) ** k * math.comb(i, k) for k in range(int(z) + 1)]
    cdf = sum(c * (x - k) ** i for k, c in enumerate(signs)) / math.factorial(i)
    integral = sum(c * (x - k) ** (i + 1) for k, c in enumerate(signs)) / math.factorial(i + 1)
    return float(cdf), float(x * cdf - integral)


def _poly(coef: np.ndarray, s: float) -> float:
    return float(np.polynomial.polynomial.polyval(s, coef))


def _anti(coef: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], coef / np.arange(1, len(coef) + 1)])


@dataclass(frozen=True)
class Schedule:
    """The refresh structure of one connection: its lattice rounds and its Poisson stream.

    ``outcomes``: each round's possible outcomes as (probability, refresh offsets after
    the round's send time, ascending); ``app_rate``: refreshes per second from
    application messages.
    """

    interval: float
    outcomes: tuple[tuple[float, tuple[float, ...]], ...]
    app_rate: float = 0.0
    jitter: float = 0.0  # each interval is T (1 + jitter (2U - 1)), U uniform, independent

    def rounds_below(self, i: int, x: float) -> tuple[float, float]:
        """(P(S_i < x), E[S_i; S_i < x]) for S_i, the time of i rounds (i jittered intervals)."""
        T, j = self.interval, self.jitter
        if j == 0:
            return (1.0, i * T) if i * T < x else (0.0, 0.0)
        low, width = i * T * (1 - j), 2 * j * T
        p, partial = _irwin_hall_below(i, (x - low) / width)
        return p, low * p + width * partial

    @property
    def empty(self) -> float:
        """Probability that a round refreshes nothing."""
        return sum(p for p, o in self.outcomes if not o)


def schedule(s: Scenario) -> Schedule:
    """The refreshes of ``s``'s heartbeats and application messages (see the module docstring)."""
    hb, both = s.heartbeat, s.nat.refresh == "both"
    pu, pd = s.link.up.loss.p, s.link.down.loss.p
    # only offsets that refresh the mapping need a (constant) delay: see problems()
    du, dd = (getattr(d.delay, "value", math.nan) for d in (s.link.up, s.link.down))
    if hb.initiator == "client":
        if hb.style == "oneway":
            outcomes = ((pu, ()), (1 - pu, (0.0,)))
        else:  # the ping goes out at 0; its pong comes back through the NAT at the round trip
            outcomes = (
                (pu, ()),
                ((1 - pu) * pd, (0.0,)),
                ((1 - pu) * (1 - pd), (0.0, du + dd) if both else (0.0,)),
            )
    elif hb.style == "oneway":  # the server's heartbeats come in at the downlink delay
        outcomes = ((pd, ()), (1 - pd, (dd,) if both else ()))
    else:  # the server's ping comes in and the client's pong goes out at the same instant
        outcomes = (
            (pd, ()),
            ((1 - pd) * pu, (dd,) if both else ()),
            ((1 - pd) * (1 - pu), (dd,)),
        )
    rate = s.app.rate * (1 - pu) if s.app.direction in ("both", "up") else 0.0
    return Schedule(hb.interval, outcomes, rate, hb.jitter)


def problems(s: Scenario) -> list[str]:
    """What keeps ``s``'s NAT from being the renewal process above (empty: covered)."""
    if s.nat.idle_timeout is None:
        return []
    out = []
    if not isinstance(s.nat.idle_timeout, (Constant, Uniform)):
        out.append(
            "nat.idle_timeout as an unbounded distribution (analytic: constant or uniform; "
            "an unbounded timeout can make the mean lifetime infinite)"
        )
    for name, d in (("uplink", s.link.up), ("downlink", s.link.down)):
        if d.loss.model != "bernoulli":
            out.append(f"link.{name}.loss: gilbert with a NAT (correlated refreshes)")
    random = not all(isinstance(d.delay, Constant) for d in (s.link.up, s.link.down))
    outbound_only = s.heartbeat.initiator == "client" and s.nat.refresh == "outbound"
    if (
        random
        and not outbound_only
        and not (s.heartbeat.style == "oneway" and s.nat.refresh == "outbound")
    ):
        out.append(
            "random delays with a NAT that packets from the server refresh (analytic: constant)"
        )
    if s.app.rate > 0 and s.heartbeat.jitter > 0:
        out.append("app.rate with heartbeat.jitter > 0 (analytic: one or the other)")
    if s.app.rate > 0 and s.nat.refresh == "both" and s.app.direction in ("both", "down"):
        out.append(
            "app.rate towards the client with nat.refresh: both (the server's messages reach "
            "the NAT only from the downlink delay after the opening: not a renewal from it)"
        )
    if (
        s.nat.refresh == "both"
        and s.heartbeat.style == "pingpong"
        and s.heartbeat.initiator == "client"
    ):
        rtt = s.link.up.delay.mean + s.link.down.delay.mean
        if rtt >= s.heartbeat.interval:
            out.append("nat.refresh: both with a round trip not below the interval")
    return out


@dataclass(frozen=True)
class MappingLife:
    """A mapping's fate under a schedule, over the timeout distribution.

    ``expiring_share``: share of timeouts for which it can expire; ``mean_life``: the
    mean time from the opening to the expiry of those (inf if none expire);
    ``refresh_expiry_p``: share of refreshes after which the mapping expires (constant
    timeout, no application traffic; else None).
    """

    expiring_share: float
    mean_life: float
    refresh_expiry_p: float | None

    @property
    def survives(self) -> bool:
        return self.expiring_share == 0

    @property
    def expiries_per_hour(self) -> float | None:
        """Expiries per hour of a mapping (only when every timeout expires)."""
        if self.survives:
            return 0.0
        return 3600 / self.mean_life if self.expiring_share == 1 else None


class _Chain:
    """The lattice refresh states and their transitions, for one timeout."""

    def __init__(self, sch: Schedule, c: float):
        self.sch, self.c = sch, c
        T = sch.interval
        live = [(p, o) for p, o in sch.outcomes if p > 0 and o]
        # states: (outcome, position); the opening is an extra state at offset 0
        self.states = [(w, j) for w, (p, o) in enumerate(live) for j in range(len(o))]
        index = {x: i for i, x in enumerate(self.states)}
        n = len(self.states) + 1
        opening = n - 1
        gap = PoissonGap(sch.app_rate, c) if sch.app_rate > 0 else None
        P = np.zeros((n, n))  # P[x, y]: the next refresh is y and the mapping lived to it
        reward = np.zeros(n)  # expected time spent until then, or until the expiry
        empty = sch.empty

        def move(x, y, prob, g):
            if g < c:
                P[x, y] += prob
                reward[x] += prob * g
            elif gap is None:
                reward[x] += prob * c
            else:
                p_exp, t_exp = gap.expired_by(g)
                P[x, y] += prob * (1 - p_exp)
                reward[x] += prob * (t_exp + (1 - p_exp) * g)

        for x, offset, rest in [
            *(
                (index[(w, j)], o[j], o[j + 1 :])
                for w, (p, o) in enumerate(live)
                for j in range(len(o))
            ),
            (opening, 0.0, ()),
        ]:
            if rest:  # the same round's next refresh
                move(x, x + 1, 1.0, rest[0] - offset)
                continue
            mass = 1.0
            for i in range(1, _MAX_ROUNDS):
                for w, (p, o) in enumerate(live):
                    if sch.jitter == 0:
                        move(x, index[(w, 0)], mass * p, i * T + o[0] - offset)
                        continue
                    # the gap S_i + shift is random: below c it leads on, else the mapping expires
                    shift = o[0] - offset
                    p_in, s_in = sch.rounds_below(i, c - shift)
                    P[x, index[(w, 0)]] += mass * p * p_in
                    reward[x] += mass * p * (s_in + shift * p_in + (1 - p_in) * c)
                mass *= empty
                g_next = (i + 1) * T * (1 - sch.jitter) - offset  # the shortest next gap
                done = mass < _NEGLIGIBLE or (
                    g_next >= c and (gap is None or gap.survival(g_next) < _NEGLIGIBLE)
                )
                if done:
                    break
            # no lattice refresh from here on (or none that matters): the stream alone
            reward[x] += mass * (c if gap is None else gap.mean())
        self.P, self.reward, self.opening = P, reward, opening

    def _solve(self, reward: np.ndarray) -> float:
        """f(opening) for f = P f + reward, over the states the opening can reach."""
        reach, todo = {self.opening}, [self.opening]
        while todo:
            for y in np.flatnonzero(self.P[todo.pop()]):
                if y not in reach:
                    reach.add(int(y))
                    todo.append(int(y))
        idx = sorted(reach)
        A = np.eye(len(idx)) - self.P[np.ix_(idx, idx)]
        try:
            f = np.linalg.solve(A, reward[idx])
        except np.linalg.LinAlgError:  # a cycle of refreshes that never fails: no expiry
            return math.inf
        return float(f[idx.index(self.opening)])

    def mean_life(self) -> float:
        return self._solve(self.reward)

    def refreshes(self) -> float:
        """Expected number of refreshes in a lifetime, the opening included."""
        return self._solve(np.ones(len(self.P)))


def _can_expire(sch: Schedule, c: float) -> bool:
    if sch.app_rate > 0 or sch.empty > 0:
        return True
    # a jittered gap has a density: it reaches its supremum with probability 0
    return sch_longest(sch) > c if sch.jitter else sch_longest(sch) >= c


def sch_longest(sch: Schedule) -> float:
    """The longest possible silence between refreshes from the opening on (lattice only)."""
    T, live = sch.interval * (1 + sch.jitter), [o for p, o in sch.outcomes if p > 0]
    if any(not o for o in live):
        return math.inf
    firsts = [o[0] for o in live]
    lasts = [o[-1] for o in live]
    inner = max((b - a for o in live for a, b in pairwise(o)), default=0.0)
    return max(T + max(firsts), T + max(firsts) - min(lasts), inner)


def life(sch: Schedule, c: float) -> float:
    """Mean time from the opening to the expiry for one timeout ``c`` (inf if it cannot expire)."""
    if not _can_expire(sch, c):
        return math.inf
    return _Chain(sch, c).mean_life()


def mapping_life(sch: Schedule, timeout) -> MappingLife:
    """The mapping's figures over a constant or uniform timeout."""
    if isinstance(timeout, Constant):
        c = timeout.value
        if not _can_expire(sch, c):
            return MappingLife(0.0, math.inf, 0.0)
        chain = _Chain(sch, c)
        p = 1 / chain.refreshes() if sch.app_rate == 0 else None
        return MappingLife(1.0, chain.mean_life(), p)
    low, high = timeout.low, timeout.high
    top = high if (sch.app_rate > 0 or sch.empty > 0) else min(high, sch_longest(sch))
    if top <= low:  # every timeout in the range outlasts the longest silence
        return MappingLife(0.0, math.inf, None)
    # f is smooth between the gap lengths' knots (linear without application traffic or jitter)
    T, j = sch.interval, sch.jitter
    offsets = sorted({x for p, o in sch.outcomes for x in o} | {0.0})
    breaks = sorted(
        {
            i * T * (1 - j) + k * 2 * j * T + b - a
            for i in range(0, int(top // (T * (1 - j))) + 2)
            for k in range(i + 1 if j else 1)
            for a in offsets
            for b in offsets
            if low < i * T * (1 - j) + k * 2 * j * T + b - a < top
        }
    )
    edges = [low, *breaks, top]
    total = 0.0
    for lo, hi in pairwise(edges):
        value, _err = integrate.quad(lambda c: life(sch, c), lo, hi, epsabs=0, epsrel=1e-12)
        total += value
    share = (top - low) / (high - low)
    return MappingLife(share, total / (top - low), None)
