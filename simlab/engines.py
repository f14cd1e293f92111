"""One scenario, several engines: pick one, or let ``auto`` pick the most exact that covers it.

- ``simpy``: the discrete-event model (everything the scenario format has);
- ``analytic``: exact answers for the round-chain subset (:mod:`simlab.analytic`);
- ``fast``: a vectorized Monte Carlo of the model's round-by-round subset (:mod:`simlab.fast`).

An engine asked for a scenario it does not cover refuses, naming each feature it
lacks; it never approximates silently. A key an engine cannot produce is absent
from its figures, not zero.
"""

from __future__ import annotations

import time

from . import analytic, fast
from .scenario import Scenario
from .validate import Problem, ScenarioError

ENGINES = ("simpy", "analytic", "fast", "auto")


class EngineRefusal(ScenarioError):
    """The engine does not cover the scenario: the problems name what it lacks."""

    def __init__(self, engine: str, features: list[str]):
        problems = [Problem(f"engine {engine}", f"does not cover {f}") for f in features]
        super().__init__(problems, f"--engine {engine}")
        self.engine, self.features = engine, features


def choose(scenario: Scenario) -> tuple[str, str]:
    """(engine, why) for ``auto``: analytic where it is exact, else fast where it covers, else simpy."""
    missing = analytic.unsupported(scenario)
    if not missing:
        return "analytic", "exact: the scenario is a chain of heartbeat rounds over datagrams"
    why = "analytic does not cover: " + "; ".join(missing)
    outside = fast.unsupported(scenario)
    if not outside:
        return "fast", why
    return "simpy", why + "; fast does not cover: " + "; ".join(outside)


def run(scenario: Scenario, engine: str = "simpy", **options) -> dict:
    """The run's figures from ``engine`` (``options`` go to the simpy engine: progress)."""
    if engine not in ENGINES:
        raise ScenarioError(
            [Problem("--engine", f"{engine!r}: must be one of {', '.join(ENGINES)}")], "--engine"
        )
    started = time.perf_counter()
    why = None
    if engine == "auto":
        engine, why = choose(scenario)
    if engine == "analytic":
        out = analytic.run(scenario)
    elif engine == "fast":
        out = fast.run(scenario)
    else:
        from .runner import simulate

        out = simulate(scenario, **options).summary
    if why is not None:
        out["engine_reason"] = why
    out["wall_s"] = time.perf_counter() - started
    return out
