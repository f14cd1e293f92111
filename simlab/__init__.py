"""simlab: choose heartbeat (keepalive) settings for long-lived connections, with evidence.

>>> import simlab
>>> scenario = simlab.load_scenario("examples/demo.yaml", {"heartbeat.interval": "10s"})
>>> result = simlab.simulate(scenario)
>>> result.summary["fp_per_conn_hour"], result.records.head()
"""

from __future__ import annotations

from collections.abc import Sequence
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
    source: str | Path | dict | None = None,
    overrides: dict | None = None,
    *,
    preset: str | None = None,
    networks: Sequence[str] = (),
    warnings: list | None = None,
) -> Scenario:
    """Load and validate a scenario exactly as ``simlab run``/``check`` do.

    Layers, lowest first: the built-in defaults < ``source`` (a file or mapping; None:
    the defaults alone, which then needs a preset or a network) < ``preset`` (a
    library's heartbeat defaults, ``--preset``) < each of ``networks`` in turn
    (``--network``) < ``overrides`` (dotted keys to values, ``--set``). See
    :func:`simlab.scenario.presets.load_layered` and ``simlab presets``.

    Raises ScenarioError listing every problem. Warnings are appended to ``warnings`` if given.
    """
    from simlab.scenario.presets import load_layered

    scenario, found = load_layered(
        source, preset=preset, networks=networks, overrides=overrides, spelling="python"
    )
    if warnings is not None:
        warnings.extend(found)
    return scenario


def sweep(
    source,
    out,
    *,
    preset: str | None = None,
    networks: Sequence[str] = (),
    strict: bool = False,
    **kwargs,
):
    """Run a parameter sweep (a sweep file or mapping) into the CSV ``out``; see simlab.sweeps.sweep.

    ``preset`` and ``networks`` layer the sweep's base as ``simlab sweep --preset --network`` do.
    Points whose values cannot go together are left out (``result.attrs['left_out']``);
    ``strict=True`` refuses them instead, as ``simlab sweep --strict`` does.
    """
    from simlab.sweeps.sweep import sweep as run

    return run(source, out, preset=preset, networks=networks, strict=strict, **kwargs)
