"""Time scaling: the same scenario with every duration multiplied by ``factor``.

Heartbeat intervals, timeouts, NAT idle timeouts, failure rates, outage and stall
lengths, link delays, an adaptive policy's durations (probe bounds and precision,
state timeouts, a throttled timer's grid) and the horizon all shrink; rates grow. What belongs to the
kernel does not scale (its 200 ms minimum RTO, the real RTT): the model side of a
cross-check runs the *scaled* scenario with the real kernel's TCP constants.

Scaling must not change the question. :func:`scale_problems` says which ordering a
scale breaks (a NAT timeout the kernel's conntrack rounds to whole seconds past the
heartbeat interval; a scaled interval or timeout falling under the unscaled 200 ms
minimum RTO, or an unscaled TCP give-up time moving past a scaled timeout), and
:func:`auto_scale` picks the smallest scale at or above a preferred one that keeps
them all (on the netns backend, one that makes the NAT timeout whole seconds).
"""

from __future__ import annotations

import dataclasses
import math

from simlab.engines.network import give_up_after
from simlab.scenario.distributions import scaled
from simlab.scenario.schema import Scenario, Tcp

# Linux's TCP constants (include/net/tcp.h; net.ipv4.tcp_retries2 = 15).
KERNEL_TCP = Tcp(min_rto=0.2, max_rto=120.0, max_retries=15, initial_rto=1.0)


DEFAULT_SCALE = 0.05  # preferred: fast, yet durations well above the event loop's jitter
# A scaled duration that must stay above a kernel constant stays above it by this much:
# the kernel's timers fire on jiffy ticks (a 200 ms RTO fires after about 207 ms here).
MARGIN = 0.1


def conntrack_seconds(value: float) -> int:
    """The kernel's conntrack timeout for a NAT idle timeout of ``value`` s: whole seconds,
    at least 1 (as :meth:`simlab.harness.netns.NetnsBackend.nat_seconds` sets it)."""
    return max(1, round(value))


def _durations(s: Scenario) -> list[tuple[str, float]]:
    """The durations whose orderings decide the answer: interval, detector timeout, NAT."""
    out = [("heartbeat interval", s.heartbeat.interval)]
    if s.detector.kind == "missed":
        out.append(("ack timeout", s.ack_timeout))
    else:
        out.append(("detector timeout", s.detector.timeout))
        # a read deadline past the next ping (gorilla's pongWait - pingPeriod): the time a
        # lost ping or pong has to be retransmitted before the deadline; against the
        # unscaled minimum RTO it decides whether one loss is a false disconnect
        margin = s.detector.timeout - s.heartbeat.interval
        if s.detector.kind == "timeout" and margin > 0:
            out.append(("deadline's margin past the next ping", margin))
    return out


def _nat(s: Scenario) -> float | None:
    idle = s.nat.idle_timeout
    return None if idle is None else float(idle.mean)


def _kernel_limits(s: Scenario) -> list[tuple[str, float, float]]:
    """(what, the scenario's value, the real kernel's value) of the TCP constants that don't
    scale. The minimum RTO matters only where packets are lost (loss, outages)."""
    out = []
    loses = s.link.up.loss.mean > 0 or s.link.down.loss.mean > 0 or s.link.outages is not None
    if loses:
        out.append(("the kernel's minimum RTO", s.link.tcp.min_rto, KERNEL_TCP.min_rto))
    out.append(
        (
            "the kernel's TCP give-up time",
            give_up_after(s.link.tcp.min_rto, s.link.tcp),
            give_up_after(KERNEL_TCP.min_rto, KERNEL_TCP),
        )
    )
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g} s"


@dataclasses.dataclass(frozen=True)
class _Bound:
    """One duration that must stay on its side of an unscaled kernel constant."""

    what: str
    value: float  # unscaled (s)
    limit: str
    kernel: float  # the real kernel's value (s)
    above: bool  # the scenario has the duration above the constant
    scale: float  # the lowest (above) or highest (below) scale that keeps it

    def kept(self, x: float) -> bool:
        tol = 1 + 1e-9
        return x * tol >= self.scale if self.above else x <= self.scale * tol

    def message(self, x: float) -> str:
        side, need = ("above", "at least") if self.above else ("below", "at most")
        return (
            f"the {self.what} ({_fmt(self.value)}) becomes {_fmt(self.value * x)}, no longer "
            f"{side} {self.limit} ({_fmt(self.kernel)}, which does not scale) by "
            f"{MARGIN:.0%}, as in the scenario; that needs a scale of {need} {self.scale:.4g}"
        )


def _bounds(s: Scenario) -> list[_Bound]:
    """Every scenario duration on its side of every unscaled kernel constant, with
    :data:`MARGIN`: each as the scale bound that keeps it."""
    durations = _durations(s)
    nat = _nat(s)
    if nat is not None:
        durations.append(("NAT idle timeout", nat))
    out = []
    for what, d in durations:
        if not d > 0:
            continue
        for limit, k_scn, k_ker in _kernel_limits(s):
            if d > k_scn:  # must stay above: x d >= k (1 + margin)
                out.append(_Bound(what, d, limit, k_ker, True, k_ker * (1 + MARGIN) / d))
            elif d < k_scn:  # must stay below: x d <= k / (1 + margin)
                out.append(_Bound(what, d, limit, k_ker, False, k_ker / (1 + MARGIN) / d))
    return out


def _side(a: float, b: float) -> int:
    """1, -1 or 0 as ``a`` is longer than, shorter than or (within rounding) equal to ``b``."""
    if math.isclose(a, b, rel_tol=1e-9):
        return 0
    return 1 if a > b else -1


def auto_scale(s: Scenario, backend: str = "netns", prefer: float = DEFAULT_SCALE) -> float | None:
    """The smallest time scale at or above ``prefer`` that keeps every ordering
    :func:`scale_problems` checks (None: none does); a scale raised to a bound is
    rounded up to three significant digits.

    On the netns backend a NAT idle timeout becomes a whole number of seconds (the
    kernel's conntrack counts whole seconds), so its ratio to every other duration is
    kept exactly: the scale is k / timeout for a whole k >= 1.
    """
    bounds = _bounds(s)
    low = max(b.scale for b in bounds if b.above) if any(b.above for b in bounds) else 0.0
    x = prefer
    if low > prefer:  # up to a bound: rounded up to 3 significant digits (0.0734, not 0.07333...)
        q = 10 ** (math.floor(math.log10(low)) - 2)
        x = math.ceil(low / q * (1 - 1e-12)) * q
        x = float(f"{x:.12g}")
    nat = _nat(s)
    if backend == "netns" and nat is not None:
        k = max(1, math.ceil(x * nat - 1e-9))
        x = k / nat
    return x if all(b.kept(x) for b in bounds) else None


_SIDE = {1: "longer than", -1: "shorter than", 0: "as long as"}
_ALONE = {1: "longer", -1: "shorter", 0: "as long"}


def _problems(s: Scenario, factor: float, backend: str) -> list[str]:
    """The orderings ``factor`` breaks, each in a sentence (see :func:`scale_problems`)."""
    out = []
    nat = _nat(s)
    if backend == "netns" and nat is not None:
        kernel = conntrack_seconds(nat * factor)
        for what, d in _durations(s):
            before, after = _side(nat, d), _side(kernel, d * factor)
            if before != after:
                out.append(
                    f"the NAT idle timeout ({_fmt(nat)}) becomes {_fmt(nat * factor)}, which the "
                    f"kernel's conntrack rounds to {kernel} s: {_SIDE[after]} the {what} "
                    f"({_fmt(d * factor)} scaled), while in the scenario it is "
                    f"{_ALONE[before]} ({_fmt(nat)} against {_fmt(d)})"
                )
    return out + [b.message(factor) for b in _bounds(s) if not b.kept(factor)]


def scale_problems(s: Scenario, factor: float, backend: str = "netns") -> list[str]:
    """Why time scale ``factor`` would change the question ``s`` asks (empty: it does not).

    Checks that (1) on the netns backend, the NAT idle timeout the kernel gets (whole
    seconds, at least 1) stays on the same side of the heartbeat interval and the
    detector's timeout as in ``s``; (2) each of those durations stays on the same side
    of the kernel's unscaled TCP constants (minimum RTO where packets are lost, the
    TCP give-up time) as in ``s`` with its own TCP constants. Each message names the
    ordering broken and a scale that keeps every ordering.
    """
    if not (factor > 0 and math.isfinite(factor)):
        return [f"the time scale must be a positive number, got {factor!r}"]
    out = _problems(s, factor, backend)
    if out:
        keep = auto_scale(s, backend, prefer=factor) or auto_scale(s, backend, prefer=0.0)
        shown = None if keep is None else f"{keep:.6g}"
        if keep is not None and _problems(s, float(shown), backend):
            shown = f"{keep:.12g}"  # the short form would miss a bound it sits on
        hint = (
            f"--time-scale {shown} keeps every ordering (or leave --time-scale out: the "
            "automatic scale keeps them)"
            if keep is not None
            else "no time scale keeps every ordering with the kernel's constants"
        )
        out = [f"time scale {factor:g}: {m}; {hint}" for m in out]
    return out


def _opt(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def scale_scenario(s: Scenario, factor: float) -> Scenario:
    """``s`` with its durations multiplied by ``factor`` and the kernel's TCP constants."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"time scale must be a positive number, got {factor!r}")
    r = dataclasses.replace
    hb = r(
        s.heartbeat,
        interval=s.heartbeat.interval * factor,
        policy=_policy(s.heartbeat.policy, factor),
    )
    d = s.detector
    det = r(
        d,
        timeout=d.timeout * factor,
        missed=r(d.missed, ack_timeout=_opt(d.missed.ack_timeout, factor)),
        phi=r(
            d.phi,
            min_std=d.phi.min_std * factor,
            acceptable_pause=d.phi.acceptable_pause * factor,
            first_estimate=_opt(d.phi.first_estimate, factor),
        ),
        nfd=r(d.nfd, delta=_opt(d.nfd.delta, factor)),
        adaptive=r(d.adaptive, alpha=_opt(d.adaptive.alpha, factor)),
    )
    link = s.link

    def direction(dr):
        return r(dr, delay=scaled(dr.delay, factor))

    outages = link.outages
    if outages is not None:
        outages = r(outages, mtbf=outages.mtbf * factor, duration=scaled(outages.duration, factor))
    link = r(
        link, up=direction(link.up), down=direction(link.down), outages=outages, tcp=KERNEL_TCP
    )
    nat = s.nat
    if nat.idle_timeout is not None:
        nat = r(nat, idle_timeout=scaled(nat.idle_timeout, factor))
    peer = s.peer
    crash = peer.crash and r(peer.crash, mtbf=peer.crash.mtbf * factor)
    stall = peer.stall and r(
        peer.stall, mtbf=peer.stall.mtbf * factor, duration=scaled(peer.stall.duration, factor)
    )
    peer = r(peer, crash=crash, stall=stall)
    return r(
        s,
        horizon=s.horizon * factor,
        heartbeat=hb,
        detector=det,
        link=link,
        nat=nat,
        peer=peer,
        app=r(s.app, rate=s.app.rate / factor),
        reconnect=r(s.reconnect, delay=s.reconnect.delay * factor),
    )


def _policy(p, x: float):
    """An adaptive policy's durations scaled (counts, fractions and factors kept)."""
    r = dataclasses.replace
    throttle = p.throttle and r(
        p.throttle,
        hidden_at=p.throttle.hidden_at * x,
        align=p.throttle.align * x,
        intensive_after=p.throttle.intensive_after * x,
        intensive_align=p.throttle.intensive_align * x,
    )
    return r(
        p,
        throttle=throttle,
        late=p.late * x,
        normal=r(p.normal, interval=_opt(p.normal.interval, x), timeout=_opt(p.normal.timeout, x)),
        weak=r(p.weak, interval=p.weak.interval * x, timeout=p.weak.timeout * x),
        high_latency=r(
            p.high_latency,
            interval=p.high_latency.interval * x,
            timeout=p.high_latency.timeout * x,
            rtt=p.high_latency.rtt * x,
            exit_rtt=p.high_latency.exit_rtt * x,
        ),
        floor=_opt(p.floor, x),
        ceiling=p.ceiling * x,
        step=p.step * x,
        precision=p.precision * x,
        reprobe=_opt(p.reprobe, x),
    )
