"""A NAT mapping's idle expiry as a pure rule: packets and times in, alive or expired out.

The proxy backend applies it live to every chunk it relays; the netns backend,
whose NAT is the kernel's, applies it afterwards to the client's own traffic log
to say when the kernel's mapping expired (ground truth for the records).
Linux conntrack refreshes an established flow's timer on packets in either
direction, and over TCP every data segment is answered by an ACK the other way,
so a TCP mapping is refreshed by traffic in both directions.
"""

from __future__ import annotations

import math


class NatMapping:
    """One connection's mapping, created at ``start``, expiring after ``idle`` without traffic."""

    def __init__(self, start: float, idle: float):
        self.idle = idle
        self.last = start
        self.expired_at: float | None = None

    def alive(self, t: float) -> bool:
        if self.expired_at is None and t >= self.last + self.idle:
            self.expired_at = self.last + self.idle
        return self.expired_at is None

    def cross(self, t: float) -> bool:
        """A packet crosses at ``t``: True if the mapping let it through (and was refreshed)."""
        if not self.alive(t):
            return False
        self.last = max(self.last, t)
        return True


def expiry_from_log(start: float, idle: float, times: list[float], end: float) -> float:
    """When a mapping refreshed by traffic at ``times`` expired (``inf``: not before ``end``)."""
    nat = NatMapping(start, idle)
    for t in sorted(times):
        if not nat.cross(t):
            break
    nat.alive(end)
    return math.inf if nat.expired_at is None else nat.expired_at
