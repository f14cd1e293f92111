"""Reconnect policies: how long a client waits before each reconnection attempt.

A policy is a pure object: no clock, no I/O, and its randomness comes in as a
``numpy.random.Generator`` (a SeedSequence stream). It answers one question,
vectorized over clients: the delays before attempt ``k`` (1-based, counted from
the moment the client noticed the disconnection, then from each failed attempt).
Attempt 1 waits ``delays[0]`` after the disconnection is noticed; attempt ``k+1``
waits ``delays[k]`` after attempt ``k`` failed. A successful connection resets
the count (every library here does), and after ``max_attempts`` failed attempts
the client gives up (``None``: never).

The presets are the libraries' real defaults, transcribed from their source:

- ``exponential``: the seed design: 1 s doubling to a 30 s cap, give up after 10 attempts;
- ``full_jitter``, ``equal_jitter``, ``decorrelated_jitter``: the three variants of
  Marc Brooker's "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015):
  ``U(0, min(cap, base 2^n))``; ``t/2 + U(0, t/2)`` with ``t = min(cap, base 2^n)``;
  ``min(cap, U(base, 3 prev))``. The blog gives formulas, not defaults: these use
  the seed design's base, cap and give-up, so they differ from it only by the jitter;
- ``socketio``: socket.io-client's Manager with backo2 (reconnectionDelay 1000 ms,
  reconnectionDelayMax 5000 ms, randomizationFactor 0.5, factor 2, attempts
  unlimited). backo2 applies its cap *after* the jitter, in integer milliseconds,
  with one random number deciding both the size and the sign of the deviation,
  so from the 5th attempt on every client waits exactly 5 s (and 90 % already do
  on the 4th): the jitter is gone when it matters most;
- ``websockets``: python-websockets' ``async for ws in connect(...)`` iterator:
  the first reconnection after a working connection closes is immediate (the
  iterator resets its delays after every success), then, while attempts fail,
  ``backoff()``'s delays: ``random() * BACKOFF_INITIAL_DELAY`` (5 s), then
  ``BACKOFF_MIN_DELAY`` (3.1 s) multiplied by ``BACKOFF_FACTOR`` (1.618) while
  below ``BACKOFF_MAX_DELAY`` (90 s), then 90 s forever;
- ``phoenix``: phoenix.js Socket's ``reconnectAfterMs``:
  ``[10, 50, 100, 150, 200, 250, 500, 1000, 2000][tries - 1] || 5000`` ms;
- ``custom``: the exponential family from parameters (base, factor, cap, jitter,
  max_attempts), no give-up unless asked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

JITTERS = ("none", "full", "equal", "decorrelated")


@dataclass(frozen=True)
class Policy:
    """A delay schedule; subclasses define :meth:`step`."""

    name: str = "policy"
    max_attempts: int | None = None  # give up after this many failed attempts (None: never)

    def step(self, attempt: int, prev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Delays (s) before attempt ``attempt`` (1-based) for ``len(prev)`` clients.

        ``prev`` holds each client's delay before the previous attempt (NaN for
        attempt 1); only decorrelated jitter uses it.
        """
        raise NotImplementedError

    def delays(
        self,
        clients: int,
        attempts: int,
        rng: np.random.Generator,
        *,
        first: int = 1,
        prev: np.ndarray | None = None,
    ) -> np.ndarray:
        """A (clients, attempts) table: column j is the delay before attempt ``first + j``.

        ``prev``: the delays before attempt ``first - 1`` (to extend a table); NaN by default.
        """
        out = np.empty((clients, attempts))
        last = np.full(clients, np.nan) if prev is None else np.asarray(prev, float)
        for j in range(attempts):
            last = self.step(first + j, last, rng)
            out[:, j] = last
        return out

    def sequence(self, attempts: int, rng: np.random.Generator) -> np.ndarray:
        """One client's first ``attempts`` delays."""
        return self.delays(1, attempts, rng)[0]

    def params(self) -> dict:
        """The policy as a plain mapping (its preset name and every field) that loads back."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Exponential(Policy):
    """Capped exponential backoff ``min(cap, base factor^(k-1))`` and its jittered variants.

    ``jitter``: ``none``; ``full`` U(0, t); ``equal`` t/2 + U(0, t/2); ``decorrelated``
    min(cap, U(base, factor prev)) with prev = base before the first attempt
    (Brooker's formula uses factor 3).
    """

    name: str = "custom"
    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: str = "none"
    max_attempts: int | None = None

    def step(self, attempt, prev, rng):
        n = len(prev)
        if self.jitter == "decorrelated":
            last = np.where(np.isnan(prev), self.base, prev)  # prev = base before attempt 1
            return np.minimum(self.cap, rng.uniform(self.base, last * self.factor))
        with np.errstate(over="ignore"):
            t = min(self.cap, self.base * float(np.float64(self.factor) ** (attempt - 1)))
        if self.jitter == "none":
            return np.full(n, t)
        if self.jitter == "full":
            return rng.uniform(0.0, t, n)
        return t / 2 + rng.uniform(0.0, t / 2, n)  # equal


@dataclass(frozen=True)
class Backo2(Policy):
    """socket.io-client's reconnection delays: the backo2 library, bit for bit.

    ``ms = min * factor^attempts`` (attempts counted from 0); ``rand = Math.random()``;
    ``deviation = floor(rand * jitter * ms)``; subtract it when ``floor(rand * 10)`` is
    even, else add it; return ``Math.min(ms, max) | 0``. The cap comes after the
    jitter, so once ``ms (1 - jitter)`` exceeds ``max`` every client waits exactly
    ``max``. JavaScript arithmetic is kept: after about 1015 failed attempts
    ``min * 2^attempts`` overflows to Infinity, ``Infinity - Infinity`` is NaN and
    ``NaN | 0`` is 0, so half the clients then retry with no delay at all.
    """

    name: str = "socketio"
    min_delay: float = 1.0  # reconnectionDelay
    max_delay: float = 5.0  # reconnectionDelayMax
    randomization: float = 0.5  # randomizationFactor (backo2 ignores values outside (0, 1])
    factor: float = 2.0
    max_attempts: int | None = None  # reconnectionAttempts: Infinity

    def step(self, attempt, prev, rng):
        n = len(prev)
        jitter = self.randomization if 0 < self.randomization <= 1 else 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            ms = np.float64(self.min_delay * 1000) * np.float64(self.factor) ** (attempt - 1)
            ms = np.full(n, ms)
            if jitter:
                rand = rng.random(n)
                deviation = np.floor(rand * jitter * ms)
                even = np.floor(rand * 10) % 2 == 0
                ms = np.where(even, ms - deviation, ms + deviation)
            capped = _js_min(ms, self.max_delay * 1000)
        return _js_int32(capped) / 1000.0


def _js_min(a: np.ndarray, b: float) -> np.ndarray:
    """JavaScript's Math.min: NaN if either argument is NaN."""
    return np.where(np.isnan(a), np.nan, np.minimum(a, b))


def _js_int32(x: np.ndarray) -> np.ndarray:
    """JavaScript's ``x | 0`` (ToInt32): NaN and infinities become 0, the rest truncate and wrap."""
    out = np.zeros_like(x)
    finite = np.isfinite(x)
    wrapped = np.mod(np.trunc(x[finite]), 2.0**32)
    out[finite] = np.where(wrapped >= 2.0**31, wrapped - 2.0**32, wrapped)
    return out


@dataclass(frozen=True)
class WebsocketsIterator(Policy):
    """python-websockets' reconnecting iterator: ``async for websocket in connect(uri)``.

    The iterator sets its delays to None after every successful connection, so the
    first attempt after a working connection closes happens at once
    (``immediate_first``); the delays between failed attempts then come from
    ``websockets.client.backoff()``, computed here with the same repeated
    multiplication so the values agree to the last bit.
    """

    name: str = "websockets"
    initial_delay: float = 5.0  # BACKOFF_INITIAL_DELAY
    min_delay: float = 3.1  # BACKOFF_MIN_DELAY
    factor: float = 1.618  # BACKOFF_FACTOR
    max_delay: float = 90.0  # BACKOFF_MAX_DELAY
    immediate_first: bool = True
    max_attempts: int | None = None

    def ladder(self) -> tuple[float, ...]:
        """The deterministic part of backoff(): min_delay times factor while below max_delay."""
        out, delay = [], self.min_delay
        while delay < self.max_delay and len(out) < 10_000:
            out.append(delay)
            delay *= self.factor
        return tuple(out)

    def step(self, attempt, prev, rng):
        n = len(prev)
        k = attempt - 1 if self.immediate_first else attempt  # position in backoff()
        if k == 0:
            return np.zeros(n)
        if k == 1:
            return rng.random(n) * self.initial_delay
        ladder = self.ladder()
        value = ladder[k - 2] if k - 2 < len(ladder) else self.max_delay
        return np.full(n, value)


@dataclass(frozen=True)
class Schedule(Policy):
    """A fixed list of delays, then a constant: phoenix.js's stepped reconnectAfterMs."""

    name: str = "phoenix"
    steps: tuple[float, ...] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0)
    then: float = 5.0
    max_attempts: int | None = None

    def step(self, attempt, prev, rng):
        value = self.steps[attempt - 1] if attempt <= len(self.steps) else self.then
        return np.full(len(prev), value)


PRESETS: dict[str, Policy] = {
    "exponential": Exponential(name="exponential", max_attempts=10),
    "full_jitter": Exponential(name="full_jitter", jitter="full", max_attempts=10),
    "equal_jitter": Exponential(name="equal_jitter", jitter="equal", max_attempts=10),
    "decorrelated_jitter": Exponential(
        name="decorrelated_jitter", factor=3.0, jitter="decorrelated", max_attempts=10
    ),
    "socketio": Backo2(),
    "websockets": WebsocketsIterator(),
    "phoenix": Schedule(),
    "custom": Exponential(),
}

# fields given as durations (seconds) in fleet files, per policy class
DURATION_FIELDS = {
    "base",
    "cap",
    "min_delay",
    "max_delay",
    "initial_delay",
    "then",
}


def preset(name: str, **changes) -> Policy:
    """A preset by name, with some fields changed: ``preset('socketio', max_delay=10.0)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown policy {name!r}: one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **changes)


def field_names(policy: Policy) -> list[str]:
    """The fields a fleet file may set for this policy (all but ``name``)."""
    return [f.name for f in dataclasses.fields(policy) if f.name != "name"]
