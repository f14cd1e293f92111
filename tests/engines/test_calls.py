"""The SimPy pin that simlab.engines.calls relies on: the installed version and the protocol."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import simpy
from packaging.specifiers import SpecifierSet
from simpy.events import NORMAL

from simlab.engines.calls import SIMPY_VERSIONS, Call

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_pins_the_versions_calls_was_written_for():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (simpy_dep,) = [d for d in deps if d.split(">")[0].split("<")[0].strip() == "simpy"]
    assert simpy_dep.replace(" ", "").startswith("simpy" + SIMPY_VERSIONS)


def test_the_installed_simpy_is_in_the_pin():
    assert version("simpy") in SpecifierSet(SIMPY_VERSIONS)


def test_step_fires_calls_in_time_order_and_advances_the_clock():
    env = simpy.Environment()
    seen = []
    for delay, tag in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2")]:
        env.schedule(Call(lambda tag=tag: seen.append((env.now, tag)), ()), NORMAL, delay)
    env.run()
    # same-time events keep their scheduling order (SimPy's event id breaks ties)
    assert seen == [(1.0, "a"), (2.0, "b"), (2.0, "b2"), (3.0, "c")]


def test_calls_mix_with_ordinary_simpy_processes():
    env = simpy.Environment()
    seen = []

    def proc():
        yield env.timeout(1.5)
        seen.append(("timeout", env.now))

    env.process(proc())
    env.schedule(Call(seen.append, (("call", 1.0),)), NORMAL, 1.0)
    env.schedule(Call(seen.append, (("call", 2.0),)), NORMAL, 2.0)
    env.run()
    assert seen == [("call", 1.0), ("timeout", 1.5), ("call", 2.0)]


def test_an_exception_in_a_call_surfaces():
    env = simpy.Environment()

    def boom():
        raise RuntimeError("boom")

    env.schedule(Call(boom, ()), NORMAL, 1.0)
    with pytest.raises(RuntimeError, match="boom"):
        env.run()
