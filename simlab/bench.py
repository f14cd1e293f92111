"""Benchmark: the full model's speed against bare SimPy, measured side by side in one run.

    python -m simlab.bench [SCENARIO] [--connections N] [--repeat R]

Prints JSON: ``model_rounds_per_s`` (heartbeat rounds simulated per wall second
by the full model), ``bare_simpy_rounds_per_s`` (the same connections as bare
SimPy processes doing one ``yield env.timeout(interval)`` per round, each in its
own environment like the model's slots) and ``ratio``; for scale, also the
``lean_pingpong`` floor: three bare callback events per round and no logic. The runs are interleaved
and the best of ``repeat`` runs is kept, so a noisy shared machine disturbs the
ratio as little as possible. Not a test: machines differ, ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import simpy

from . import __version__
from .model import SlotModel
from .validate import load

DEFAULT = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


def run_model(scenario) -> tuple[int, float]:
    started = time.perf_counter()
    rounds = sum(SlotModel(scenario, i).run().stats.rounds for i in range(scenario.connections))
    return rounds, time.perf_counter() - started


def run_bare(connections: int, interval: float, horizon: float) -> tuple[int, float]:
    counter = [0]

    def beat(env):
        while True:
            yield env.timeout(interval)
            counter[0] += 1

    started = time.perf_counter()
    for _ in range(connections):
        env = simpy.Environment()
        env.process(beat(env))
        env.run(until=horizon)
    return counter[0], time.perf_counter() - started


def run_lean(connections: int, interval: float, horizon: float, delay: float) -> tuple[int, float]:
    """The floor for any callback model: ping, delivery, pong delivery, nothing else."""
    counter = [0]
    started = time.perf_counter()
    for _ in range(connections):
        env = simpy.Environment()

        def ping(_ev, env=env):
            counter[0] += 1
            env.timeout(delay).callbacks.append(arrive)
            env.timeout(interval).callbacks.append(ping)

        def arrive(_ev, env=env):
            env.timeout(delay).callbacks.append(pong)

        def pong(_ev):
            pass

        env.timeout(interval).callbacks.append(ping)
        env.run(until=horizon)
    return counter[0], time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m simlab.bench", description=__doc__.split("\n")[0])
    p.add_argument("scenario", nargs="?", default=str(DEFAULT))
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    scenario, _ = load(args.scenario, {"connections": args.connections})
    best_model = best_bare = best_lean = 0.0
    rounds = 0
    n, interval, horizon = scenario.connections, scenario.heartbeat.interval, scenario.horizon
    for _ in range(args.repeat):
        rounds, wall = run_model(scenario)
        best_model = max(best_model, rounds / wall)
        bare_rounds, bare_wall = run_bare(n, interval, horizon)
        best_bare = max(best_bare, bare_rounds / bare_wall)
        lean_rounds, lean_wall = run_lean(n, interval, horizon, scenario.link.up.delay.mean)
        best_lean = max(best_lean, lean_rounds / lean_wall)
    out = {
        "scenario": scenario.name,
        "connections": scenario.connections,
        "rounds_per_run": rounds,
        "model_rounds_per_s": round(best_model),
        "bare_simpy_rounds_per_s": round(best_bare),
        "ratio": round(best_model / best_bare, 3),
        "lean_pingpong_rounds_per_s": round(best_lean),
        "lean_ratio": round(best_lean / best_bare, 3),
        "repeat": args.repeat,
        "python": platform.python_version(),
        "simpy": simpy.__version__ if hasattr(simpy, "__version__") else None,
        "simlab": __version__,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
