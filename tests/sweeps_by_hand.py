"""Hand-built sweep results for the chooser, report and plot tests: every figure set by hand, so
each test knows its answer without running a simulation.

A point's replications all carry the same figures, so bootstrap intervals collapse onto the
value, and rates get exact Poisson intervals from the pooled counts: with ``hours`` per
replication and ``reps`` replications, ``fp`` false positives per replication give a rate
of fp / hours with the Garwood interval of fp x reps events in hours x reps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def point(
    interval: float,
    timeout: float,
    *,
    fp: int = 0,
    nat: int = 0,
    hours: float = 1000.0,
    p95: float | None = None,
    latency_mean: float | None = None,
    cost: float | None = None,
    reps: int = 2,
    **conditions,
) -> list[dict]:
    """The rows of one point: the setting (interval, timeout in s), its figures, conditions."""
    p95 = timeout - 1.0 if p95 is None else p95
    rows = []
    for rep in range(reps):
        rows.append(
            {
                "replication": rep,
                "seed": 1000 + rep,
                "heartbeat.interval": float(interval),
                "detector.timeout": float(timeout),
                **conditions,
                "connected_hours": hours,
                "false_positives": fp,
                "fp_per_conn_hour": fp / hours,
                "breaks": 10 + nat,
                "breaks_crash": 10,
                "breaks_nat": nat,
                "detections": 10 + nat,
                "detection_latency_mean_s": latency_mean if latency_mean is not None else p95 * 0.7,
                "detection_latency_p50_s": p95 * 0.7,
                "detection_latency_p95_s": p95,
                "detection_latency_p99_s": p95 + 0.5,
                "detection_latency_max_s": p95 + 1.0,
                "heartbeats_sent": 7200 / interval * hours,
                "overhead_msgs_per_conn_hour": 7200 / interval,
                "overhead_bytes_per_conn_hour": (
                    cost if cost is not None else 7200 / interval * 58 * 1.0
                ),
                "wakeups_per_conn_hour": 3600 / interval,
                "error": "",
                "wall_s": 0.1,
            }
        )
    return rows


def policy_point(kind: str, interval: float, timeout: float, **figures) -> list[dict]:
    """A point whose setting includes ``heartbeat.policy.kind`` (fixed or an adaptive kind)."""
    return point(interval, timeout, **figures, **{"heartbeat.policy.kind": kind})


def frame(*points: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for rows in points for row in rows])


def write(folder: Path, *points: list[dict], name: str = "sweep", meta: dict | None = None) -> Path:
    """The tidy CSV (and a .meta.json if given) as ``simlab sweep`` would leave them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame(*points).to_csv(path, index=False)
    if meta is not None:
        (folder / f"{name}.meta.json").write_text(json.dumps(meta))
    return path


BASE = {
    "name": "by-hand",
    "horizon": "1h",
    "connections": 10,
    "heartbeat": {"style": "pingpong", "initiator": "server"},
    "detector": {"kind": "timeout"},
    "link": {"transport": "tcp", "loss": 0.01},
    "peer": {"crash": {"mtbf": "12h"}},
}


def meta(base: dict | None = None, **extra) -> dict:
    """A .meta.json whose sweep file holds its base scenario inline."""
    import yaml

    text = yaml.safe_dump({"base": base or BASE, "replications": 2, "seed": 1})
    return {
        "sweep": "by-hand.yaml",
        "sweep_text": text,
        "name": "by-hand",
        "simlab": "0.1.0",
        "engine": "simpy",
        "seed": 1,
        "wall_s": 1.0,
        **extra,
    }
