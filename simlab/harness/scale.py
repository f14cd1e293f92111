"""Time scaling: the same scenario with every duration multiplied by ``factor``.

Heartbeat intervals, timeouts, NAT idle timeouts, failure rates, outage and stall
lengths, link delays, an adaptive policy's durations (probe bounds and precision,
state timeouts, a throttled timer's grid) and the horizon all shrink; rates grow. What belongs to the
kernel does not scale (its 200 ms minimum RTO, the real RTT): the model side of a
cross-check runs the *scaled* scenario with the real kernel's TCP constants.
"""

from __future__ import annotations

import dataclasses
import math

from simlab.scenario.distributions import scaled
from simlab.scenario.schema import Scenario, Tcp

# Linux's TCP constants (include/net/tcp.h; net.ipv4.tcp_retries2 = 15).
KERNEL_TCP = Tcp(min_rto=0.2, max_rto=120.0, max_retries=15, initial_rto=1.0)


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
