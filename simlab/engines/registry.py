"""One scenario, several engines: pick one, or let ``auto`` pick the most exact that covers it.

- ``simpy``: the discrete-event model (everything the scenario format has);
- ``analytic``: exact answers for the round-chain subset (:mod:`simlab.engines.analytic.chain`);
- ``fast``: a vectorized Monte Carlo of the model's round-by-round subset (:mod:`simlab.engines.fast`).

An engine asked for a scenario it does not cover refuses, naming each feature it
lacks; it never approximates silently. A key an engine cannot produce is absent
from its figures, not zero.
"""

from __future__ import annotations

import math
import time

from simlab.engines import fast
from simlab.engines.analytic import chain as analytic
from simlab.errors import Problem, ScenarioError
from simlab.scenario.schema import Scenario

ENGINES = ("simpy", "analytic", "fast", "auto")


def choose(scenario: Scenario) -> tuple[str, str]:
    """(engine, why) for ``auto``: analytic where it is exact, else fast where it covers, else simpy."""
    missing = analytic.unsupported(scenario)
    if not missing and not analytic.run(scenario).get("analytic_omitted"):
        return "analytic", "exact: the scenario is a chain of heartbeat rounds over datagrams"
    if not missing:
        missing = ["the detector's figures when the NAT mapping expires"]
    why = "analytic does not cover: " + "; ".join(missing)
    outside = fast.unsupported(scenario)
    if not outside:
        return "fast", why
    return "simpy", why + "; fast does not cover: " + "; ".join(outside)


def run(
    scenario: Scenario,
    engine: str = "simpy",
    *,
    rel_error: float | None = None,
    max_wall: float = 60.0,
    **options,
) -> dict:
    """The run's figures from ``engine`` (``options`` go to the simpy engine: progress).

    ``rel_error``: estimate the false-positive rate to this relative 95 % half-width by
    importance sampling (:mod:`simlab.engines.rare`, on the fast engine), within ``max_wall`` seconds.
    """
    if engine not in ENGINES:
        problem = Problem("--engine", f"{engine!r}: must be one of {', '.join(ENGINES)}")
        raise ScenarioError([problem], "--engine")
    if rel_error is not None:
        from simlab.engines import rare

        problems = []
        if engine not in ("fast", "auto"):
            problems.append(
                Problem(
                    "--rel-error", f"rare-event estimation runs on the fast engine, not {engine}"
                )
            )
        if not 0 < rel_error < 1:
            problems.append(Problem("--rel-error", f"{rel_error!r}: must be between 0 and 1"))
        if not 0 < max_wall < math.inf:
            problems.append(
                Problem("--max-wall", f"{max_wall!r}: must be a finite number of seconds above 0")
            )
        if problems:
            raise ScenarioError(problems, "--rel-error")
        return rare.estimate(scenario, rel_error, max_wall)
    started = time.perf_counter()
    why = None
    if engine == "auto":
        engine, why = choose(scenario)
    if engine == "analytic":
        out = analytic.run(scenario)
    elif engine == "fast":
        out = fast.run(scenario)
    else:
        from simlab.engines.runner import simulate

        out = simulate(scenario, **options).summary
    if why is not None:
        out["engine_reason"] = why
    out["wall_s"] = time.perf_counter() - started
    return out
