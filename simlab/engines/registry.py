"""One scenario, several engines: pick one, or let ``auto`` pick the most exact that covers it.

- ``simpy``: the discrete-event model (everything the scenario format has);
- ``analytic``: exact answers for the round-chain subset (:mod:`simlab.engines.analytic.chain`);
- ``fast``: a vectorized Monte Carlo of the model's round-by-round subset (:mod:`simlab.engines.fast`).

An engine asked for a scenario it does not cover refuses, naming each feature it
lacks; it never approximates silently. A key an engine cannot produce is absent
from its figures, not zero.
"""

from __future__ import annotations

import importlib
import math
import time
from dataclasses import dataclass

from simlab.errors import Problem, ScenarioError
from simlab.scenario.schema import Scenario


@dataclass(frozen=True)
class Engine:
    """One engine: its name and where its code lives, what it is, what it covers.

    The engine's module has ``unsupported(scenario) -> list[str]`` (each feature of the
    scenario it does not cover; empty: it covers the scenario) and ``run(scenario, **options)
    -> dict`` (the run's figures, keys of :mod:`simlab.engines.metrics`; a figure it cannot
    produce is absent, not zero). Modules are imported when first used, so reading the
    registry (the CLI's ``--engine`` choices) costs nothing.
    """

    name: str
    module: str
    about: str
    exact: bool = False  # its figures are exact: no sampling error (the panel compares exactly)
    fleets: bool = False  # it also runs fleet files (reconnect storms)
    options: tuple[str, ...] = ()  # keyword options of run() it takes (others are not passed)
    # its speed, for the work budget (estimate()): rough, from python -m simlab.bench
    rounds_per_s: float = 60_000.0  # heartbeat rounds per wall second (inf: constant time)
    run_s: float = 0.01  # the fixed cost of one run, seconds
    attempts_per_s: float | None = None  # fleets: reconnection attempts per wall second

    def estimate(self, scenario: Scenario) -> float:
        """Rough wall seconds of one run of ``scenario`` (see :func:`estimate`)."""
        return self.run_s + heartbeat_rounds(scenario) / self.rounds_per_s

    def code(self):
        return importlib.import_module(self.module)

    def unsupported(self, scenario: Scenario) -> list[str]:
        return self.code().unsupported(scenario)

    def run(self, scenario: Scenario, **options) -> dict:
        return self.code().run(scenario, **{k: v for k, v in options.items() if k in self.options})


# In the order ``auto`` tries them: the most exact that covers the scenario wins.
REGISTRY: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            "analytic",
            "simlab.engines.analytic.chain",
            "exact answers for the round-chain subset (datagrams, constant delays)",
            exact=True,
            rounds_per_s=math.inf,  # constant time: a few ms per run, whatever the horizon
            run_s=0.05,
        ),
        Engine(
            "fast",
            "simlab.engines.fast",
            "a vectorized Monte Carlo of the model's round-by-round subset",
            # 10 million rounds/s over TCP, 1-1.7 million over datagrams (a lost round is a
            # reconnection there): the geometric middle, within 3x of both
            rounds_per_s=3_000_000.0,
        ),
        Engine(
            "simpy",
            "simlab.engines.runner",
            "the discrete-event model: everything the scenario format has",
            fleets=True,
            options=("progress",),
            rounds_per_s=60_000.0,  # 45,000-95,000 rounds/s: outages, NAT and TCP slow it
            attempts_per_s=170_000.0,  # the fleet model: 3-6 us per attempt
        ),
    )
}
AUTO = "auto"
ENGINES = ("simpy", "analytic", "fast", AUTO)  # the --engine choices, as the CLI lists them
assert set(ENGINES) == {*REGISTRY, AUTO}


# The work budget: what a run or a sweep would cost, told before it starts
BUDGET_S = 3600.0  # the default limit (--budget): one hour of wall time
NOTICE_S = 5.0  # an estimate above this is printed before the run
FLEET_ATTEMPTS = 10  # attempts per client assumed for a fleet (2-18 in the example storms)


def heartbeat_rounds(scenario: Scenario) -> float:
    """connections x horizon / heartbeat.interval (application messages count as rounds too)."""
    per_s = 1.0 / scenario.heartbeat.interval + scenario.app.rate
    return scenario.connections * max(1.0, scenario.horizon * per_s)


def estimate(scenario, engine: str = "simpy") -> float:
    """Rough wall seconds of one run of ``scenario`` on ``engine``, from its calibrated speed.

    ``auto``: the engine :func:`choose` picks. A fleet (``simlab.fleet.spec.Fleet``) runs
    on the fleet model whatever the engine: clients x attempts (``FLEET_ATTEMPTS`` each,
    fewer if its policy gives up sooner). Within a factor of about 3 on the development
    machine (``python -m simlab.bench``); meant to tell minutes from years.
    """
    if hasattr(scenario, "clients"):  # a fleet
        model = REGISTRY["simpy"]
        attempts = min(FLEET_ATTEMPTS, scenario.policy.max_attempts or FLEET_ATTEMPTS)
        return model.run_s + scenario.clients * attempts / model.attempts_per_s
    if engine == AUTO:
        engine, _ = choose(scenario)
    return get(engine).estimate(scenario)


def format_wall(seconds: float) -> str:
    """A wall time as a person reads it: '45s', '3.2h', '12d', '1.5e+05 years'."""
    if seconds >= 365.25 * 86400:
        return f"{seconds / (365.25 * 86400):.3g} years"
    unit, size = next(
        ((u, z) for u, z in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)) if seconds >= z),
        ("s", 1.0),
    )
    value = seconds / size
    return f"{value:.2g}{unit}" if value < 10 else f"{value:.0f}{unit}"


def get(name: str) -> Engine:
    """The engine called ``name`` (not ``auto``); a clear error naming the choices otherwise."""
    if name not in REGISTRY:
        problem = Problem("--engine", f"{name!r}: must be one of {', '.join(REGISTRY)}")
        raise ScenarioError([problem], "--engine")
    return REGISTRY[name]


def choose(scenario: Scenario) -> tuple[str, str]:
    """(engine, why) for ``auto``: analytic where it is exact, else fast where it covers, else simpy."""
    analytic, fast = REGISTRY["analytic"], REGISTRY["fast"]
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
    out = REGISTRY[engine].run(scenario, **options)
    if why is not None:
        out["engine_reason"] = why
    out["wall_s"] = time.perf_counter() - started
    return out
