"""Random durations: message delays, stall and outage lengths, NAT timeouts.

One frozen class per family. Each knows its mean, its survival function
``sf(x) = Pr(X > x)`` for a number or an array (the analytic formulas need it,
vectorized) and how to draw a block of
samples from a numpy Generator (the model draws in blocks: one numpy call per
few hundred messages instead of one per message).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _out(values: np.ndarray):
    """A float for a scalar argument, the array otherwise."""
    return float(values) if values.ndim == 0 else values


@dataclass(frozen=True)
class Constant:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sf(self, x):
        return _out(np.where(np.asarray(x, float) < self.value, 1.0, 0.0))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def sf(self, x):
        x = np.asarray(x, float)
        inside = np.clip((self.high - x) / max(self.high - self.low, 1e-300), 0.0, 1.0)
        return _out(np.where(x < self.low, 1.0, np.where(x >= self.high, 0.0, inside)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True)
class Exponential:
    mean_: float

    @property
    def mean(self) -> float:
        return self.mean_

    def sf(self, x):
        x = np.asarray(x, float)
        return _out(np.where(x < 0, 1.0, np.exp(-np.maximum(x, 0.0) / self.mean_)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_, n)


@dataclass(frozen=True)
class Lognormal:
    median: float
    sigma: float

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    def sf(self, x):
        x = np.asarray(x, float)
        z = np.log(np.maximum(x, 1e-300) / self.median) / max(self.sigma, 1e-300)
        return _out(np.where(x <= 0, 1.0, stats.norm.sf(z)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.median * np.exp(self.sigma * rng.standard_normal(n))


@dataclass(frozen=True)
class Pareto:
    """Pareto type I: Pr(X > x) = (scale / x) ** shape for x >= scale."""

    scale: float
    shape: float

    @property
    def mean(self) -> float:
        return math.inf if self.shape <= 1 else self.shape * self.scale / (self.shape - 1)

    def sf(self, x):
        x = np.asarray(x, float)
        return _out(
            np.where(x < self.scale, 1.0, (self.scale / np.maximum(x, self.scale)) ** self.shape)
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.shape, n))


Distribution = Constant | Uniform | Exponential | Lognormal | Pareto

# name in the scenario file -> (class, parameter names in the file, which are durations)
FAMILIES: dict[str, tuple[type, tuple[str, ...]]] = {
    "constant": (Constant, ("value",)),
    "uniform": (Uniform, ("low", "high")),
    "exponential": (Exponential, ("mean",)),
    "lognormal": (Lognormal, ("median", "sigma")),
    "pareto": (Pareto, ("scale", "shape")),
}
# parameters that are plain numbers, not durations
DIMENSIONLESS = {"sigma", "shape"}


def dist_name(dist: Distribution) -> str:
    """The scenario-file name of a distribution's family."""
    return next(name for name, (cls, _) in FAMILIES.items() if isinstance(dist, cls))


def dist_params(dist: Distribution) -> dict[str, float]:
    """Its parameters as written in a scenario file."""
    return {p: getattr(dist, "mean_" if p == "mean" else p) for p in FAMILIES[dist_name(dist)][1]}


def describe(dist: Distribution) -> str:
    """Scenario-file spelling of a distribution, for messages and tables."""
    params = ", ".join(f"{p}={v:g}" for p, v in dist_params(dist).items())
    return f"{dist_name(dist)}({params})"


class Sampler:
    """Draws one value at a time from a distribution, refilling a block as needed.

    Deterministic for a given generator: the sequence of values does not depend
    on the block size's relation to how many values are used.
    """

    __slots__ = ("_dist", "_rng", "_block", "_buf", "_i")

    def __init__(self, dist: Distribution, rng: np.random.Generator, block: int = 256):
        self._dist, self._rng, self._block = dist, rng, block
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._dist.sample(self._rng, self._block).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value


class Uniforms:
    """Uniform(0, 1) draws, one at a time, from blocks."""

    __slots__ = ("_rng", "_block", "_buf", "_i")

    def __init__(self, rng: np.random.Generator, block: int = 512):
        self._rng, self._block = rng, block
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._rng.random(self._block).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value


def scaled(dist: Distribution, factor: float) -> Distribution:
    """The same family with every duration parameter multiplied by ``factor`` (shapes kept)."""
    cls, names = FAMILIES[dist_name(dist)]
    params = dist_params(dist)
    return cls(*(params[p] if p in DIMENSIONLESS else params[p] * factor for p in names))
