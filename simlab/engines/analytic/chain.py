"""The analytic engine: exact answers for the part of the model that is a chain of heartbeat rounds.

Over a datagram link with constant delays, every detector simlab has is, round by
round, a rule on consecutive failed rounds (a round fails when its heartbeat, or
its ping or pong, is lost):

- after a successful round J, the detector declares if the next ``m`` rounds all
  fail, at time sigma_J + A (sigma_J: the round's send time);
- from the connection's opening it declares if the first ``m0`` rounds fail, at
  opening + B (the opening counts as a heartbeat with no delay);
- trust comes back (monitor mode) with the next success, at sigma_j + d_ev.

Loss is a hidden Markov chain per direction (Bernoulli: one state; Gilbert-Elliott:
two), so rounds form a Markov chain with "fail" and "success" transitions F and S.
False positives (both conventions), Chen et al.'s QoS and the crash-detection
latency follow from small linear systems. With Bernoulli loss these reduce to
the closed forms in :mod:`simlab.engines.analytic.theory` (the tests check that they do).

The overhead (messages, bytes, radio wakeups) is in :mod:`simlab.engines.analytic.overhead`, the NAT
mapping's lifetime in :mod:`simlab.engines.analytic.natlife`. Anything outside this subset is refused,
feature by feature: no silent approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab.engines.analytic import natlife
from simlab.engines.analytic.rounds import (
    RoundChain,
    RoundRule,
    _delays,
    round_chain,
    round_rule,
)
from simlab.engines.analytic.theory import nfd_s_qos
from simlab.engines.network import UDP_HEADER
from simlab.rules.policy import policy_problems
from simlab.scenario.distributions import Constant
from simlab.scenario.schema import Scenario

ENGINE = "analytic"
TIE = 1e-9  # relative: a deadline this close to an arrival is an ordering tie
# Crashes are analysed in the stationary regime; the model's connections also open, and a
# crash in a connection's first round is detected from the opening. That share of crashes
# is about (rounds to the first evidence) / (mtbf / interval): below 1e-3 at this bound.
CRASH_RARE = 1000


def unsupported(s: Scenario) -> list[str]:
    """Every feature of ``s`` this engine cannot answer exactly (empty: it can)."""
    out = policy_problems(s)
    link, hb, det = s.link, s.heartbeat, s.detector
    if link.transport != "datagram":
        out.append(
            "link.transport: tcp (retransmission delays have no closed form here; use simpy or datagram)"
        )
    if link.outages is not None:
        out.append("link.outages")
    out += natlife.problems(s)
    if s.peer.stall is not None:
        out.append("peer.stall")
    if s.app.rate > 0 and det.liveness == "any":
        out.append("app.rate with detector.liveness: any")
    if hb.jitter > 0:  # exact for the timeout detector: its evidence is a renewal process
        if det.kind != "timeout":
            out.append(f"heartbeat.jitter > 0 with detector.kind: {det.kind} (analytic: timeout)")
        if "gilbert" in (link.up.loss.model, link.down.loss.model):
            out.append("heartbeat.jitter > 0 with gilbert loss")
        if s.peer.crash is not None:
            out.append("heartbeat.jitter > 0 with peer.crash")
    if hb.initiator == "both":
        out.append("heartbeat.initiator: both")
    if det.kind not in ("timeout", "missed", "nfd"):
        out.append(f"detector.kind: {det.kind} (analytic: timeout, missed, nfd)")
    if s.peer.crash is not None and s.peer.crash.mtbf < CRASH_RARE * hb.interval:
        out.append(
            f"peer.crash.mtbf below {CRASH_RARE} intervals (the crash analysis is stationary: "
            "connections' first rounds, where a crash is detected from the opening, must be rare)"
        )
    if s.peer.crash is not None and det.on_declare == "reconnect":
        out.append(
            "peer.crash with detector.on_declare: reconnect (crash latency is exact in monitor mode)"
        )
    random_delay = not isinstance(link.up.delay, Constant) or not isinstance(
        link.down.delay, Constant
    )
    nfd_oneway = det.kind == "nfd" and hb.style == "oneway"
    if random_delay and not (nfd_oneway and det.on_declare == "monitor" and s.peer.crash is None):
        out.append("random delays (exact only for constant delays, or nfd oneway in monitor mode)")
    if nfd_oneway and random_delay:
        for name, direction in (("uplink", link.up), ("downlink", link.down)):
            if direction.loss.model != "bernoulli":
                out.append(f"link.{name}.loss: gilbert with random delays")
    if out or random_delay or hb.jitter > 0:  # (a jittered round has no ordering ties)
        return out
    rule = round_rule(s)
    T = hb.interval
    if det.kind == "timeout":
        for j in range(1, rule.m + 3):
            if (
                abs(j * T - det.timeout) <= TIE * det.timeout
                or abs(j * T + rule.d_ev - det.timeout) <= TIE * det.timeout
            ):
                out.append(
                    "detector.timeout a whole number of intervals from a heartbeat's arrival (an ordering tie)"
                )
                break
    if det.kind == "missed":
        if rule.d_ev >= s.ack_timeout:
            out.append("pongs that arrive after ack_timeout (round trip >= ack_timeout)")
        if T + rule.d_ev < s.ack_timeout:
            out.append(
                "a pong that can answer an earlier ping (ack_timeout > interval + round trip)"
            )
    if rule.m == 0 or rule.m0 == 0:
        out.append(
            "a detector that declares before a heartbeat can arrive (margin not above the delay)"
        )
    gilbert = "gilbert" in (link.up.loss.model, link.down.loss.model)
    if (
        gilbert
        and det.on_declare == "reconnect"
        and ((rule.m + 1) * T < rule.A or (rule.m0 + 1) * T < rule.B)
    ):
        # that round moves the loss chain, which the next connection inherits
        out.append(
            "gilbert loss with a round sent after the deciding ones but before the declaration"
        )
    return out


def _reset_renewal(chain: RoundChain, m0: int, m: int) -> tuple[float, float, float]:
    """Reconnect convention: (E[N], P(declared from the opening), E[N; from the opening]).

    N is the number of rounds of a connection; the counter restarts with every new
    connection, which begins in the hidden state the previous one ended in (the loss
    chain does not move between connections). The long run uses the fixed point of
    that hand-over.
    """
    F, S = chain.F, chain.S
    h = len(F)
    # transient states: (v=1: streak 0..m0-1, no success yet) then (v=0: streak 0..m-1)
    idx1 = lambda s, x: s * h + x  # noqa: E731
    idx0 = lambda s, x: m0 * h + s * h + x  # noqa: E731
    n = (m0 + m) * h
    Q = np.zeros((n, n))
    R1 = np.zeros((n, h))  # absorbed from v=1, into hidden state
    R0 = np.zeros((n, h))
    for v, thr, idx in ((1, m0, idx1), (0, m, idx0)):
        for st in range(thr):
            rows = [idx(st, x) for x in range(h)]
            for a, r in enumerate(rows):
                if st + 1 < thr:
                    Q[r, [idx(st + 1, y) for y in range(h)]] += F[a]
                else:
                    (R1 if v else R0)[r] += F[a]
                Q[r, [idx0(0, y) for y in range(h)]] += S[a]
    fundamental = np.linalg.inv(np.eye(n) - Q)
    steps = fundamental @ np.ones(n)
    absorb1, absorb0 = fundamental @ R1, fundamental @ R0
    mu = chain.pi.copy()
    for _ in range(10_000):  # hand-over fixed point: a few iterations for two states
        start = np.zeros(n)
        start[[idx1(0, x) for x in range(h)]] = mu
        nxt = start @ (absorb1 + absorb0)
        if np.abs(nxt - mu).max() < 1e-15:
            break
        mu = nxt
    start = np.zeros(n)
    start[[idx1(0, x) for x in range(h)]] = mu
    p_open = float(start @ absorb1.sum(axis=1))
    return float(start @ steps), p_open, p_open * m0


def _monitor(chain: RoundChain, m: int) -> tuple[float, float]:
    """Monitor convention: (S-transitions per round, mean rounds from a suspicion to the success)."""
    F, S, pi = chain.F, chain.S, chain.pi
    # in the stationary chain, "a success then m failures" ends at an S-transition
    at = pi @ S @ np.linalg.matrix_power(F, m - 1)  # a success, then m - 1 failures
    entry = at @ F  # ... and the m-th: the suspicion starts, by hidden state
    rate = float(entry.sum())
    rounds = np.linalg.solve(np.eye(len(F)) - F, np.ones(len(F)))  # to the first success
    mean_rounds = float(entry @ rounds / entry.sum()) if entry.sum() > 0 else math.nan
    return rate, mean_rounds


@dataclass(frozen=True)
class Latency:
    """T_D = max(0, a - L T - U): L with the given weights, U ~ U[0, T).

    ``bound``: the largest T_D possible at all, a crash in a connection's first round
    (detected from the opening) included; the distribution itself is stationary.
    """

    weights: np.ndarray
    reach: float
    period: float
    bound: float = 0.0

    def _parts(self):
        return [(w, self.reach - i * self.period) for i, w in enumerate(self.weights) if w > 0]

    @property
    def mean(self) -> float:
        T, total = self.period, 0.0
        for w, a in self._parts():
            if a > 0:
                total += w * (a - T / 2 if a >= T else a * a / (2 * T))
        return total

    @property
    def max(self) -> float:
        return max([a for w, a in self._parts()] + [self.bound])

    def cdf(self, t: float) -> float:
        if t < 0:
            return 0.0
        T = self.period
        return float(sum(w * min(1.0, max(0.0, (t - a + T) / T)) for w, a in self._parts()))

    def quantile(self, q: float) -> float:
        if self.cdf(0.0) >= q:
            return 0.0
        lo, hi = 0.0, self.reach
        for _ in range(200):
            mid = (lo + hi) / 2
            if self.cdf(mid) >= q:
                hi = mid
            else:
                lo = mid
        return hi


def crash_latency(chain: RoundChain, rule: RoundRule, period: float) -> Latency:
    """The detection time of a crash at a uniformly random moment of a long-lived connection.

    Stationary: a crash in a connection's first round (before the peer's first
    message) is detected from the opening instead, up to ``rule.B`` after it.

    L is the number of failed rounds between the last successful one and the crash:
    P(L = l) = pi S F^l 1 (the stationary chain read backwards from the crash).
    """
    reach = rule.A - rule.emit
    n = max(1, math.ceil(reach / period) + 1)
    weights = []
    mass = chain.pi @ chain.S
    for _ in range(n):
        weights.append(float(mass.sum()))
        mass = mass @ chain.F
    weights[-1] += max(0.0, 1 - sum(weights))  # the tail: T_D is 0 there anyway
    return Latency(np.array(weights), reach, period, rule.B)


def _jittered_timeout(s: Scenario, chain: RoundChain) -> tuple:
    """(fp per connection-hour, mistake rate, mean mistake duration, query accuracy) of the
    timeout detector when heartbeat intervals are jittered (Bernoulli loss).

    Its evidence (the pongs, or the peer's heartbeats) arrives at a fixed offset after
    the successful rounds, so the gaps between arrivals are i.i.d.: G = S_K, K geometric
    in the round failure probability q, S_k the Irwin-Hall time of k jittered intervals.
    Monitor mode: a mistake starts with every gap G >= timeout and lasts G - timeout
    (rate P(G >= timeout) / E[G], E[G] = T / (1 - q)). Reconnect mode: a connection is a
    NAT-like mapping whose "idle timeout" is the detector's: :mod:`simlab.engines.analytic.natlife`.
    """
    T, theta = s.heartbeat.interval, s.detector.timeout
    q = float(chain.F.sum())  # one hidden state: the round's failure probability
    d_ev = _delays(s)[0]
    sch = natlife.Schedule(T, ((q, ()), (1 - q, (d_ev,))), 0.0, s.heartbeat.jitter)
    if s.detector.on_declare == "reconnect":
        life = natlife.mapping_life(sch, Constant(theta))
        if life.survives:
            return 0.0, 0.0, None, 1.0
        r = s.reconnect.delay
        return 3600 / life.mean_life, 1 / (life.mean_life + r), r, 1 - r / (life.mean_life + r)
    p_long = excess = 0.0
    weight = 1 - q  # P(K = k)
    for k in range(1, 1_000_000):
        if k * T * (1 - s.heartbeat.jitter) >= theta:  # from here on every gap is long enough
            tail = weight / (1 - q)  # P(K >= k)
            p_long += tail
            excess += tail * (T * (k + q / (1 - q)) - theta)  # E[S_K - theta; K >= k]
            break
        below, below_mean = sch.rounds_below(k, theta)
        p_long += weight * (1 - below)
        excess += weight * (k * T - below_mean - theta * (1 - below))
        weight *= q
        if weight < 1e-18:
            break
    if p_long == 0:
        return 0.0, 0.0, None, 1.0
    rate = p_long * (1 - q) / T
    duration = excess / p_long
    return rate * 3600, rate, duration, 1 - rate * duration


def run(s: Scenario) -> dict:
    """The figures this engine can give exactly for ``s`` (raises if ``s`` is outside its subset)."""
    from simlab.errors import EngineRefusal

    problems = unsupported(s)
    if problems:
        raise EngineRefusal(ENGINE, problems)
    T = s.heartbeat.interval
    monitor = s.detector.on_declare == "monitor"
    out: dict = {"scenario": s.name}
    chain = round_chain(s)
    random_delay = not (
        isinstance(s.link.up.delay, Constant) and isinstance(s.link.down.delay, Constant)
    )
    if s.heartbeat.jitter > 0:
        fp_hour, rate_s, duration, accuracy = _jittered_timeout(s, chain)
    elif random_delay:  # nfd, oneway, monitor, Bernoulli: Chen et al.'s integral formulas
        direction = s.link.up if s.detector_side == "server" else s.link.down
        qos = nfd_s_qos(T, s.nfd_delta, direction.loss.p, direction.delay)
        rate_s, duration, accuracy = qos.mistake_rate, qos.mistake_duration_mean, qos.query_accuracy
        fp_hour = rate_s * 3600
    elif monitor:
        rule = round_rule(s)
        per_round, rounds = _monitor(chain, rule.m)
        rate_s = per_round / T
        duration = (rule.m + rounds) * T + rule.d_ev - rule.A if per_round > 0 else None
        accuracy = 1 - rate_s * duration if per_round > 0 else 1.0
        fp_hour = rate_s * 3600
        if s.peer.crash is not None:
            lat = crash_latency(chain, rule, T)
            out |= {
                "detection_latency_mean_s": lat.mean,
                "detection_latency_p50_s": lat.quantile(0.5),
                "detection_latency_p95_s": lat.quantile(0.95),
                "detection_latency_p99_s": lat.quantile(0.99),
                "detection_latency_max_s": lat.max,
            }
            # connected time includes each crash's undetected stretch
            fp_hour = rate_s * 3600 / (1 + lat.mean / s.peer.crash.mtbf)
    else:
        rule = round_rule(s)
        if not chain.F.any():  # no round can fail: no declaration, ever
            fp_hour, rate_s, duration, accuracy = 0.0, 0.0, None, 1.0
        else:
            n_rounds, p_open, n_open = _reset_renewal(chain, rule.m0, rule.m)
            # a connection lasts (N - m) T + A, or B if the first m0 rounds failed (N = m0)
            connected = (
                T * (n_rounds - n_open)
                - T * rule.m * (1 - p_open)
                + rule.A * (1 - p_open)
                + rule.B * p_open
            )
            r = s.reconnect.delay
            fp_hour = 3600 / connected
            rate_s = 1 / (connected + r)
            duration = r
            accuracy = 1 - r / (connected + r)
    out |= {
        "fp_per_conn_hour": fp_hour,
        "mistake_rate_per_s": rate_s,
        "mistake_duration_mean_s": duration,
        "query_accuracy": accuracy,
    }
    if s.heartbeat.jitter > 0 and monitor:  # a round every T on average
        from simlab.engines.analytic import overhead

        per_round = sum(float(o.M.sum()) * len(o.messages) for o in overhead.outcomes(s))
        out["overhead_msgs_per_conn_hour"] = 3600 / T * per_round
        out["overhead_bytes_per_conn_hour"] = out["overhead_msgs_per_conn_hour"] * (
            s.heartbeat.frame_bytes + UDP_HEADER
        )
    elif s.peer.crash is None and not random_delay and s.heartbeat.jitter == 0:
        from simlab.engines.analytic import overhead

        never = not chain.F.any()  # no round can fail: the connection lasts, as in monitor mode
        cost = overhead.monitor(s) if monitor or never else overhead.reconnect(s)
        if cost is not None:
            out["overhead_msgs_per_conn_hour"] = cost.msgs_per_hour
            # datagrams: every heartbeat is one packet, frame plus IPv4 and UDP headers
            out["overhead_bytes_per_conn_hour"] = cost.msgs_per_hour * (
                s.heartbeat.frame_bytes + UDP_HEADER
            )
            if cost.wakeups_per_hour is not None and s.app.rate == 0:
                out["wakeups_per_conn_hour"] = cost.wakeups_per_hour
    if s.nat.idle_timeout is not None:
        nat = natlife.mapping_life(natlife.schedule(s), s.nat.idle_timeout)
        out |= {
            "nat_survives": nat.survives,
            "nat_expiring_share": nat.expiring_share,
            "nat_gap_too_long_p": nat.refresh_expiry_p,
            "nat_mean_time_to_expiry_s": None if nat.survives else nat.mean_life,
            "nat_expiries_per_mapping_hour": nat.expiries_per_hour,
        }
        out = {k: v for k, v in out.items() if v is not None or not k.startswith("nat_")}
        if not nat.survives:  # breaks interleave with the detector: keep the NAT's figures only
            out = {k: v for k, v in out.items() if k == "scenario" or k.startswith("nat_")}
            out["analytic_omitted"] = (
                "the NAT mapping expires: false positives and detection need the simpy or fast engine"
            )
    out = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in out.items()}
    out["engine"] = ENGINE
    out["seed"] = s.seed
    return out
