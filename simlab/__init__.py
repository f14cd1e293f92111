"""simlab: choose heartbeat (keepalive) settings for long-lived connections, with evidence.

>>> import simlab
>>> scenario = simlab.load_scenario("examples/demo.yaml", {"heartbeat.interval": "10s"})
>>> result = simlab.simulate(scenario)
>>> result.summary["fp_per_conn_hour"], result.records.head()
"""

from __future__ import annotations

from pathlib import Path

from simlab.engines.runner import Result, simulate
from simlab.errors import ScenarioError

# the function, not the module: simlab.choose(sweep, max_detection=..., ...) for notebooks;
# the module's other names: from simlab.lab.choose import Choice, parse_rate, ...
from simlab.lab.choose import choose  # noqa: E402
from simlab.scenario.schema import Scenario
from simlab.version import __version__

__all__ = [
    "Result",
    "Scenario",
    "ScenarioError",
    "choose",
    "load_scenario",
    "simulate",
    "sweep",
    "__version__",
]


def load_scenario(
    source: str | Path | dict, overrides: dict | None = None, *, warnings: list | None = None
) -> Scenario:
    """Load and validate a scenario file or mapping; ``overrides`` maps dotted keys to values.

    Raises ScenarioError listing every problem. Warnings are appended to ``warnings`` if given.
    """
    from simlab.scenario.reader import load

    scenario, found = load(source, overrides)
    if warnings is not None:
        warnings.extend(found)
    return scenario


def sweep(source, out, **kwargs):
    """Run a parameter sweep (a sweep file or mapping) into the CSV ``out``; see simlab.sweeps.sweep."""
    from simlab.sweeps.sweep import sweep as run

    return run(source, out, **kwargs)
