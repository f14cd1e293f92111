"""Benchmark: a 100,000-client reconnect storm, and what one SimPy process per client would cost.

    python -m simlab.bench.fleet [FLEET] [--clients N] [--policy NAME] [--repeat R]

Prints JSON: the storm's wall time, its attempts and reconnections, and both per
wall second; beside it ``process_per_client_s``, the wall time of the naive design
doing only its timeouts: one SimPy process per client, sleeping through the same
delays, attempt after attempt, with no admission logic at all (a floor for that
design). The best of ``repeat`` runs is kept. Not a test: machines differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import simpy

from simlab.fleet.model import simulate_fleet
from simlab.fleet.spec import load
from simlab.rules.backoff import PRESETS
from simlab.version import __version__

DEFAULT = Path(__file__).resolve().parents[2] / "examples" / "fleet-restart.yaml"


def process_per_client(delays: list[list[float]]) -> float:
    """Wall time of one SimPy process per client sleeping through its delays."""

    def client(env, waits):
        for wait in waits:
            yield env.timeout(wait)

    started = time.perf_counter()
    env = simpy.Environment()
    for waits in delays:
        env.process(client(env, waits))
    env.run()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simlab.bench.fleet", description=__doc__)
    p.add_argument("fleet", nargs="?", default=str(DEFAULT))
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--policy", choices=list(PRESETS), help="override the fleet's policy")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    fleet, _ = load(args.fleet, {"clients": args.clients})
    if args.policy:
        fleet = dataclasses.replace(fleet, policy=PRESETS[args.policy])
    best, result = float("inf"), None
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = simulate_fleet(fleet)
        best = min(best, time.perf_counter() - started)
    attempts = result.attempts
    # each client's waits between its attempts, as the naive design would sleep them
    order = attempts.sort_values(["client", "t"], kind="stable")
    gaps = np.diff(order["t"].to_numpy(), prepend=0.0)
    first = np.r_[True, order["client"].to_numpy()[1:] != order["client"].to_numpy()[:-1]]
    gaps[first] = order["t"].to_numpy()[first]
    waits = [g.tolist() for g in np.split(gaps, np.flatnonzero(first)[1:])]
    naive = process_per_client(waits)
    s = result.summary
    out = {
        "fleet": fleet.name,
        "policy": fleet.policy.name,
        "clients": fleet.clients,
        "horizon_s": fleet.horizon,
        "wall_s": best,
        "attempts": s["attempts_total"],
        "attempts_per_wall_s": s["attempts_total"] / best,
        "reconnections": s["attempts_connected"],
        "reconnections_per_wall_s": s["attempts_connected"] / best,
        "process_per_client_s": naive,
        "process_per_client_over_model": naive / best,
        "simlab": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
