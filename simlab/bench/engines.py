"""Benchmark: the full model's speed against bare SimPy, measured side by side in one run.

    python -m simlab.bench [SCENARIO] [--connections N] [--repeat R] [--horizon 7d]

Prints JSON: ``model_rounds_per_s`` (heartbeat rounds simulated per wall second
by the full model), ``bare_simpy_rounds_per_s`` (the same connections as bare
SimPy processes doing one ``yield env.timeout(interval)`` per round, each in its
own environment like the model's slots) and ``ratio``; for scale, also the
``lean_pingpong`` floor: three bare callback events per round and no logic. The runs are interleaved
and the best of ``repeat`` runs is kept, so a noisy shared machine disturbs the
ratio as little as possible. The fast engine against the model on the same scenario
(``fast_over_model``, from the best of each; ``fast_over_model_each_repeat``: each
repeat's own ratio, to show the spread): one timing covers ten fast runs back to
back. Not a test: machines differ, ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import simpy

from simlab.engines.model import SlotModel
from simlab.scenario.reader import load
from simlab.version import __version__

DEFAULT = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def run_model(scenario) -> tuple[int, float]:
    started = time.perf_counter()
    rounds = sum(SlotModel(scenario, i).run().stats.rounds for i in range(scenario.connections))
    return rounds, time.perf_counter() - started


def run_fast(scenario, times: int = 10) -> tuple[int, float]:
    """The fast engine, ``times`` runs back to back (one run takes a few milliseconds: timed
    alone, it would be at the mercy of the timer and of every hiccup of a shared machine)."""
    from simlab.engines.fast import FastRun

    started = time.perf_counter()
    rounds = sum(sl.stats.rounds for _ in range(times) for sl in FastRun(scenario).run())
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


SWEEP_BASE = {
    "name": "bench-sweep",
    "horizon": "1h",
    "connections": 2,
    "heartbeat": {"interval": "10s"},
    "detector": {"timeout": "25s"},
    "link": {"transport": "tcp", "loss": 0.01, "delay": "40ms"},
    "nat": {"idle_timeout": "60s"},
    "peer": {"stall": {"mtbf": "10m", "duration": "3s"}},
}


def _noop(task) -> dict:
    return {"summary": {}, "error": None, "wall_s": 0.0}


def bench_sweep(points: int = 64, replications: int = 8, workers: int = 2) -> dict:
    """A sweep of short SimPy runs: serial vs a process pool vs a Dask LocalCluster.

    Each executor's fixed start-up cost is measured apart: starting it, running one
    no-op task per worker, and shutting it down.
    """
    import tempfile

    from simlab.sweeps.sweep import _Dask, _Pool, _Serial, parse_sweep, run_sweep

    side = int(round(points**0.5))
    raw = {
        "base": SWEEP_BASE,
        "grid": {
            "heartbeat.interval": [f"{5 + 2 * i}s" for i in range(side)],
            "link.loss.p": [0.001 * (i + 1) for i in range(points // side)],
        },
        "replications": replications,
        "seed": 1,
    }
    spec = parse_sweep(raw)
    runs = len(spec.tasks())
    out: dict = {
        "sweep_points": len(spec.points),
        "sweep_replications": replications,
        "sweep_runs": runs,
    }
    executors = {
        "serial": lambda: _Serial(),
        "processes": lambda: _Pool(workers),
        "dask_local": lambda: _Dask(None, workers),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in executors.items():
            try:
                started = time.perf_counter()
                executor = make()
                list(executor.run(_noop, spec.tasks()[:workers]))
                executor.close()
                startup = time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - e.g. dask not installed: report, go on
                out[f"{name}_error"] = str(exc)
                continue
            kwargs = {"workers": 1} if name == "serial" else {"workers": workers}
            if name == "dask_local":
                kwargs["dask_local"] = True
            started = time.perf_counter()
            run_sweep(spec, Path(tmp) / f"{name}.csv", progress=False, **kwargs)
            out[f"{name}_wall_s"] = round(time.perf_counter() - started, 2)
            out[f"{name}_startup_s"] = round(startup, 2)
    for name in ("processes", "dask_local"):
        if f"{name}_wall_s" in out:
            out[f"{name}_speedup"] = round(out["serial_wall_s"] / out[f"{name}_wall_s"], 2)
            warm = out[f"{name}_wall_s"] - out[f"{name}_startup_s"]
            out[f"{name}_speedup_after_startup"] = round(out["serial_wall_s"] / warm, 2)
    out["workers"] = workers
    return out


def bench_rare() -> dict:
    """Rare false positives by importance sampling, against the exact value (datagram, k = 3).

    Bernoulli loss at 1e-6 and 1e-9 false positives per round, and Gilbert-Elliott
    (bursty) loss at about 1e-6: rare bad periods (p_gb 1e-5 per packet) that each
    last 2.5 packets on average and lose 40 % there, 0.01 % loss otherwise.

    Over TCP (``tcp_*``): oneway heartbeats every 30 s, a 65 s timeout and 1 % loss, where a
    false positive needs one segment to lose 7 transmissions in a row (the ladder from the
    settled 0.28 s RTO runs 35.56 s): about 1e-14 per round, against the exact value
    (head-of-line blocking included, see ``tcp_exact``); and the k = 3 missed-pongs detector
    above over TCP at 10 % loss (no exact value: a ping's or its pong's ladder), with the
    reported head-of-line truncation bound.
    """
    import numpy as np

    from simlab.engines.analytic.chain import run as exact
    from simlab.engines.network import RtoEstimator, backoff
    from simlab.engines.rare import estimate

    def tcp_exact(s) -> float:
        """Oneway timeout over TCP, per round: P(S_k >= timeout - T + H), H = max_i (S_{k-1-i} - i T)."""
        tcp, T, p = s.link.tcp, s.heartbeat.interval, s.link.up.loss.p
        est = RtoEstimator(tcp)
        for _ in range(100):
            est.sample(s.link.up.delay.value + s.link.down.delay.value)
        ladder = np.cumsum([0.0] + [backoff(est.rto, i, tcp) for i in range(tcp.max_retries)])
        prob = p ** np.arange(len(ladder)) * (1 - p)  # not doomed: p^16 left out

        def h_at_most(y: float) -> float:
            out, i = float(y >= 0), 0
            while y >= 0 and y + i * T <= ladder[-1]:
                out *= prob[ladder <= y + i * T].sum() / prob.sum()
                i += 1
            return out

        x = s.detector.timeout - T
        return float(sum(prob[j] * h_at_most(ladder[j] - x) for j in range(len(ladder))))

    gilbert = {"model": "gilbert", "p_gb": 1e-5, "p_bg": 0.4, "loss_good": 1e-4, "loss_bad": 0.4}
    missed = {"kind": "missed", "missed": {"k": 3, "ack_timeout": "10s"}, "on_declare": "monitor"}
    cases = (
        ("1e-6", "datagram", 0.005, {}, missed),
        ("1e-9", "datagram", 0.0005, {}, missed),
        ("gilbert_1e-6", "datagram", gilbert, {}, missed),
        (
            "tcp_1e-14",
            "tcp",
            0.01,
            {"style": "oneway"},
            {"kind": "timeout", "timeout": "65s", "on_declare": "monitor"},
        ),
        ("tcp_missed", "tcp", 0.1, {}, missed),
    )
    out = {}
    for label, transport, loss, style, detector in cases:
        s, _ = load(
            {
                "name": f"rare-{label}",
                "heartbeat": {"interval": "30s", **style},
                "detector": detector,
                "link": {"transport": transport, "loss": loss, "delay": "40ms"},
            }
        )
        if transport == "datagram":
            truth = exact(s)["fp_per_conn_hour"]
        elif label == "tcp_1e-14":
            truth = tcp_exact(s) * 3600 / 30
        else:
            truth = None
        r = estimate(s, 0.1, max_wall=60)
        if truth is not None:
            out[f"rare_{label}_per_round_exact"] = truth * 30 / 3600
        out[f"rare_{label}_per_round_estimate"] = r["fp_per_round"]
        out[f"rare_{label}_rel_half_width"] = round(r["rare_event_rel_half_width"], 4)
        if truth is not None:
            out[f"rare_{label}_exact_inside_interval"] = (
                r["fp_per_conn_hour_ci_low"] <= truth <= r["fp_per_conn_hour_ci_high"]
            )
        out[f"rare_{label}_wall_s"] = round(r["wall_s"], 2)
        out[f"rare_{label}_windows"] = r["rare_event_windows"]
        out[f"rare_{label}_effective_sample_size"] = round(r["rare_event_effective_sample_size"])
        if "rare_event_truncation_bound" in r:
            out[f"rare_{label}_truncation_bound"] = float(f"{r['rare_event_truncation_bound']:.2g}")
        out[f"rare_{label}_brute_force_rounds_needed"] = float(
            f"{(1.96 / 0.1) ** 2 / r['fp_per_round']:.2g}"
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m simlab.bench", description=__doc__.split("\n")[0])
    p.add_argument("scenario", nargs="?", default=str(DEFAULT))
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--horizon", help="override the scenario's horizon (e.g. 7d)")
    p.add_argument("--sweep", action="store_true", help="benchmark sweep executors instead")
    p.add_argument("--rare", action="store_true", help="benchmark rare-event estimation instead")
    args = p.parse_args(argv)
    if args.rare:
        result = bench_rare()
        print(json.dumps(result, indent=2))
        return result
    if args.sweep:
        result = bench_sweep()
        print(json.dumps(result, indent=2))
        return result
    span = {"horizon": args.horizon} if args.horizon else {}
    scenario, _ = load(args.scenario, {"connections": args.connections, **span})
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
    # the fast engine against the model on the same scenario: the whole demo (NAT, outages,
    # stalls, crashes over TCP), which the fast engine covers
    covered, _ = load(args.scenario, {"connections": args.connections, **span})
    best_fast = best_same = 0.0
    each = []  # each repeat's own ratio (its fast runs over its model run)
    for _ in range(args.repeat):
        fast_rounds, fast_wall = run_fast(covered)
        best_fast = max(best_fast, fast_rounds / fast_wall)
        same_rounds, same_wall = run_model(covered)
        best_same = max(best_same, same_rounds / same_wall)
        each.append(round((fast_rounds / fast_wall) / (same_rounds / same_wall), 1))
    out = {
        "scenario": scenario.name,
        "connections": scenario.connections,
        "rounds_per_run": rounds,
        "model_rounds_per_s": round(best_model),
        "bare_simpy_rounds_per_s": round(best_bare),
        "ratio": round(best_model / best_bare, 3),
        "lean_pingpong_rounds_per_s": round(best_lean),
        "lean_ratio": round(best_lean / best_bare, 3),
        "fast_scenario": "the same (NAT, outages, stalls, crashes, TCP)",
        "fast_rounds_per_s": round(best_fast),
        "model_rounds_per_s_same_scenario": round(best_same),
        "fast_over_model": round(best_fast / best_same, 1),
        "fast_over_model_each_repeat": each,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "simpy": simpy.__version__ if hasattr(simpy, "__version__") else None,
        "simlab": __version__,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
