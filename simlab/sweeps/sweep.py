"""Parameter sweeps: a sweep file, its points, and runs written as tidy CSV that survives interruption.

A sweep file names a base scenario and the dotted keys to vary:

    base: ../examples/demo.yaml        # a path (relative to the sweep file) or an inline mapping
    grid:                              # full factorial
      heartbeat.interval: [10s, 20s, 30s]
    zip:                               # groups of keys that move together
      - {detector.timeout: [25s, 45s, 65s], detector.kind: [timeout, timeout, timeout]}
    sample:                            # a space-filling design, crossed with the rest
      method: lhs                      # lhs | sobol
      count: 16
      ranges:
        link.loss.p: {low: 0.001, high: 0.05, scale: log}
    replications: 4
    engine: simpy
    seed: 1
    rare: {rel_error: 0.1, max_wall: 60s}   # optional: rare-event mode (engine fast)

With ``rare`` every run is an importance-sampling estimate of the false-positive
rate (:mod:`simlab.engines.rare`) to that relative 95 % half-width, within ``max_wall``
seconds per run: the rates of one per connection-month or millennium that a
million-connection service meets every day, far below what brute force reaches.
Its columns are the estimate's (``simlab.engines.rare.METRIC_KEYS``). A run whose budget
ran out says so (``rare_event_budget_exhausted``); its figures then depend on the
machine's speed, the others only on the seed.

The points are the product of the grid, each zip group and the sample. A point is
known by its id, a hash of its parameter values, so its seeds (and results) do not
change when other points are added. Seeds come from ``SeedSequence(seed)`` keyed
by the point id and the replication.

Rows are appended as runs finish (any order, any executor); when the sweep ends the
file is rewritten atomically in point order, so the bytes do not depend on the
number of workers. ``NAME.summary.csv`` has one row per point with 95 % intervals,
``NAME.meta.json`` the provenance.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simlab.engines import registry
from simlab.engines.analytic.theory import poisson_interval
from simlab.engines.metrics import COUNT_KEYS, METRIC_KEYS, PER_RUN_ONLY, RATE_KEYS
from simlab.errors import Problem, ScenarioError, shown
from simlab.fleet.spec import is_fleet
from simlab.fleet.spec import load as load_fleet
from simlab.io import OUTPUT_LIMIT, RowAppender, read_rows, read_text, write_atomic, write_rows
from simlab.scenario.reader import Reader, load, read_yaml
from simlab.units import parse_duration
from simlab.version import __version__

SWEEP_KEYS = ["base", "grid", "zip", "sample", "replications", "engine", "seed", "name", "rare"]
RARE_KEYS = ["rel_error", "max_wall"]
SAMPLE_KEYS = ["method", "count", "ranges"]
RANGE_KEYS = ["low", "high", "scale"]
LEAD_COLUMNS = ["point_id", "replication", "seed"]
# engine: the engine that ran the row (auto picks one per point); blank in a row whose run
# failed, and in rows of files from before the column was written
TAIL_COLUMNS = ["engine", "error", "wall_s"]
# the most a sweep file may ask for, refused from its lists' lengths before any point is made
MAX_POINTS = 100_000  # each point's scenario is checked before any run (~0.2 ms each)
MAX_RUNS = 1_000_000  # points x replications
ESTIMATE_SAMPLE = 32  # points whose runs are estimated for the work budget (evenly spread)
RARE_RUN_S = 2.0  # a rare-event run's usual wall time (0.1-0.2 s in the bench), below max_wall


class SweepError(ScenarioError):
    """A bad sweep file: every problem, before any run starts."""


@dataclass(frozen=True)
class Point:
    """One setting of the varied keys."""

    id: str
    params: dict = field(hash=False)
    # (expected wall seconds of one run, what runs it), kept from the check that loaded
    # the point's scenario (:func:`point_estimate`); None: not known yet
    estimate: tuple[float, str] | None = field(default=None, hash=False, compare=False, repr=False)

    def spawn_key(self) -> tuple[int, ...]:
        digest = bytes.fromhex(self.id)
        return tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, len(digest), 4))


@dataclass(frozen=True)
class Rare:
    """Rare-event mode: each run estimates the false-positive rate to ``rel_error`` (95 %)."""

    rel_error: float
    max_wall: float  # seconds per run


@dataclass(frozen=True)
class Task:
    """One run: a point, a replication, its seed, and the base scenario it overrides."""

    point: Point
    replication: int
    seed: int
    base: dict = field(hash=False, repr=False)
    engine: str = "simpy"
    rare: Rare | None = None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict
    keys: tuple[str, ...]  # varied keys, in column order
    points: tuple[Point, ...]
    replications: int
    engine: str
    seed: int
    source: str = ""
    rare: Rare | None = None
    # impossible points (a combination of values no scenario allows), not run:
    # {"point_id", "params", "reasons"} each, in point order
    left_out: tuple[dict, ...] = ()
    # the points' scenario warnings (simlab.scenario.reader), each once, in point order
    warnings: tuple[str, ...] = ()

    def tasks(self) -> list[Task]:
        out = []
        for point in self.points:
            for rep in range(self.replications):
                seq = np.random.SeedSequence(self.seed, spawn_key=(*point.spawn_key(), rep))
                hi, lo = seq.generate_state(2, np.uint32)
                seed = (int(hi) << 32) | int(lo)
                out.append(Task(point, rep, seed, self.base, self.engine, self.rare))
        return out

    @property
    def columns(self) -> list[str]:
        return LEAD_COLUMNS + list(self.keys) + list(self.metric_keys) + TAIL_COLUMNS

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The figures a run reports: a scenario's, or a fleet's (a ``kind: fleet`` base).

        A figure that is also a varied key (a fleet's ``clients``) is its column already.
        """
        if is_fleet(self.base):
            from simlab.fleet.model import FLEET_METRIC_KEYS

            keys = FLEET_METRIC_KEYS
        elif self.rare is not None:
            from simlab.engines.rare import METRIC_KEYS as keys
        else:
            keys = METRIC_KEYS
        return tuple(k for k in keys if k not in self.keys)


def _normalize(value):
    """Durations written with units become seconds, so '30s' and 30 are the same point."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            return value
    return value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _point(params: dict) -> Point:
    # numbers hash as floats: 30, 30.0 and '30s' are one point
    same = {k: float(v) if _is_number(v) else v for k, v in params.items()}
    canonical = json.dumps(same, sort_keys=True, default=str)
    return Point(hashlib.sha256(canonical.encode()).hexdigest()[:16], params)


def _design(method: str, count: int, ranges: dict, seed: int) -> list[dict]:
    """Space-filling points in the ranges (log scale where asked)."""
    from scipy.stats import qmc

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5A3B1E,)))
    keys = list(ranges)
    if method == "lhs":
        unit = qmc.LatinHypercube(d=len(keys), seed=rng).random(count)
    else:
        unit = qmc.Sobol(d=len(keys), scramble=True, seed=rng).random_base2(int(math.log2(count)))
    rows = []
    for u in unit:
        row = {}
        for key, x in zip(keys, u, strict=True):
            low, high, scale = ranges[key]
            if scale == "log":
                row[key] = float(math.exp(math.log(low) + x * (math.log(high) - math.log(low))))
            else:
                row[key] = float(low + x * (high - low))
        rows.append(row)
    return rows


def _read_ranges(raw, problems) -> dict:
    out = {}
    if not isinstance(raw, dict) or not raw:
        problems.append(
            Problem(
                "sample.ranges",
                "expected a non-empty mapping of dotted key -> {low, high[, scale]}",
            )
        )
        return out
    for key, spec in raw.items():
        where = f"sample.ranges.{key}"
        if isinstance(spec, list) and len(spec) == 2:
            spec = {"low": spec[0], "high": spec[1]}
        if not isinstance(spec, dict):
            problems.append(
                Problem(where, f"expected [low, high] or {{low, high, scale}}, got {spec!r}")
            )
            continue
        unknown = [k for k in spec if k not in RANGE_KEYS]
        if unknown:
            problems.append(
                Problem(where, f"unknown key(s) {unknown} (allowed: {', '.join(RANGE_KEYS)})")
            )
        try:
            low, high = (_to_number(spec.get(k)) for k in ("low", "high"))
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        scale = spec.get("scale", "linear")
        if scale not in ("linear", "log"):
            problems.append(Problem(f"{where}.scale", f"{scale!r}: must be linear or log"))
        elif not low < high:
            problems.append(Problem(where, f"low ({low:g}) must be below high ({high:g})"))
        elif scale == "log" and low <= 0:
            problems.append(Problem(where, f"a log scale needs low > 0, got {low:g}"))
        else:
            out[key] = (low, high, scale)
    return out


def _to_number(value) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number or a duration, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    return parse_duration(value)


def _list(raw, where, problems) -> list | None:
    if not isinstance(raw, list) or not raw:
        problems.append(Problem(where, f"expected a non-empty list of values, got {raw!r}"))
        return None
    return raw


def parse_sweep(
    raw: dict, source: str = "sweep", base_dir: Path | None = None, *, strict: bool = False
) -> SweepSpec:
    """Check a sweep mapping and every scenario it implies; raise SweepError listing all problems.

    The problems are collected by :class:`simlab.scenario.reader.Reader` (its ``errors``),
    which also checks the top-level keys; the sweep's own values keep their own messages.

    A point whose values cannot go together (``detector.timeout`` not longer than its
    ``heartbeat.interval``) is left out (``SweepSpec.left_out``, with its reasons) while
    every value of every key still has a point that runs; a value none of whose points
    can run (a typo, a negative duration) is an error, as is a sweep with no possible
    point. ``strict``: every impossible point is an error. A sweep larger than
    ``MAX_POINTS`` points or ``MAX_RUNS`` runs is refused from its lists' lengths alone.
    """
    reader = Reader()
    problems: list[Problem] = reader.errors
    if not isinstance(raw, dict):
        raise SweepError(
            [Problem("", f"expected a mapping at the top level, got {type(raw).__name__}")], source
        )
    reader.mapping(raw, "", SWEEP_KEYS)
    base_raw = raw.get("base")
    base: dict = {}
    if isinstance(base_raw, str):
        path = Path(base_raw)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            base = read_yaml(path)
        except ScenarioError as exc:
            problems += [Problem("base", str(p)) for p in exc.problems]
    elif isinstance(base_raw, dict):
        base = copy.deepcopy(base_raw)
    else:
        problems.append(
            Problem(
                "base",
                f"expected a scenario file path or an inline scenario mapping, got {base_raw!r}",
            )
        )
    if not isinstance(base, dict):
        problems.append(Problem("base", "the base scenario is not a mapping"))
        base = {}

    axes: list[list[dict]] = []  # each axis: a list of partial parameter settings
    keys: list[str] = []
    sizes: list[tuple[str, int]] = []  # (where, length) of each axis, for the size check
    sampled: list[str] = []
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        problems.append(Problem("grid", f"expected a mapping of dotted key -> list, got {grid!r}"))
        grid = {}
    for key, values in grid.items():
        values = _list(values, f"grid.{key}", problems)
        if values is not None:
            axes.append([{key: _normalize(v)} for v in values])
            keys.append(key)
            sizes.append((f"grid.{key}", len(values)))
    zips = raw.get("zip") or []
    if not isinstance(zips, list):
        problems.append(
            Problem("zip", f"expected a list of groups {{key: [values]}}, got {zips!r}")
        )
        zips = []
    for i, group in enumerate(zips):
        where = f"zip[{i}]"
        if not isinstance(group, dict) or not group:
            problems.append(
                Problem(where, f"expected a mapping of dotted key -> list, got {group!r}")
            )
            continue
        lists = {k: _list(v, f"{where}.{k}", problems) for k, v in group.items()}
        if any(v is None for v in lists.values()):
            continue
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) > 1:
            problems.append(
                Problem(where, f"the lists of a group must have one length, got {lengths}")
            )
            continue
        n = next(iter(lengths.values()))
        axes.append([{k: _normalize(v[j]) for k, v in lists.items()} for j in range(n)])
        keys += list(lists)
        sizes.append((where, n))
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        problems.append(Problem("seed", f"{seed!r}: must be an integer >= 0"))
        seed = 0
    sample = raw.get("sample")
    if sample is not None:
        if not isinstance(sample, dict):
            problems.append(
                Problem("sample", f"expected {{method, count, ranges}}, got {sample!r}")
            )
        else:
            for key in sample:
                if key not in SAMPLE_KEYS:
                    problems.append(
                        Problem(f"sample.{key}", f"unknown key (allowed: {', '.join(SAMPLE_KEYS)})")
                    )
            method = sample.get("method", "lhs")
            count = sample.get("count")
            ranges = _read_ranges(sample.get("ranges"), problems)
            ok = True
            if method not in ("lhs", "sobol"):
                problems.append(Problem("sample.method", f"{method!r}: must be lhs or sobol"))
                ok = False
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                problems.append(Problem("sample.count", f"{count!r}: must be an integer >= 1"))
                ok = False
            elif method == "sobol" and count & (count - 1):
                problems.append(
                    Problem(
                        "sample.count",
                        f"{count}: Sobol points are balanced only in powers of 2 (e.g. {2 ** round(math.log2(count))})",
                    )
                )
                ok = False
            elif count > MAX_POINTS:  # refused before any point is drawn
                problems.append(
                    Problem("sample.count", f"{count:,}: must be at most {MAX_POINTS:,}")
                )
                ok = False
            if ok and ranges:
                axes.append(_design(method, count, ranges, seed))
                keys += list(ranges)
                sampled += list(ranges)
                sizes.append(("sample.count", count))
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        problems.append(Problem("", f"keys varied twice: {', '.join(duplicates)}"))
    reps = raw.get("replications", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        problems.append(Problem("replications", f"{reps!r}: must be an integer >= 1"))
        reps = 1
    n_points = math.prod(n for _, n in sizes)
    too_big = n_points > MAX_POINTS or n_points * reps > MAX_RUNS
    if too_big:  # from the lengths alone: the points are never made
        product = " x ".join(f"{n:,} ({where})" for where, n in sizes) or "1 point"
        problems.append(
            Problem(
                "",
                f"{product} = {n_points:,} points x {reps:,} replication(s) = "
                f"{n_points * reps:,} runs: more than a sweep may hold ({MAX_POINTS:,} points, "
                f"{MAX_RUNS:,} runs); use fewer values or replications, or split it into "
                "several sweeps",
            )
        )
    rare = _rare(raw["rare"], problems) if "rare" in raw else None
    engine = raw.get("engine", "fast" if "rare" in raw else "simpy")
    if engine not in registry.ENGINES:
        problems.append(
            Problem(
                "engine",
                f"{engine!r}: must be one of {', '.join(registry.ENGINES)}",
            )
        )
    elif "rare" in raw and engine != "fast":
        problems.append(
            Problem(
                "engine",
                f"{engine!r}: rare-event mode (rare) runs on the fast engine: "
                "write engine: fast, or leave engine out",
            )
        )
    name = raw.get("name", Path(source).stem if source != "sweep" else "sweep")

    points: list[Point] = []
    left_out: list[dict] = []
    warnings: dict[str, None] = {}  # each warning once, in the order the points gave them
    # the scenarios are checked even when the sweep's own keys have problems
    if not duplicates and not too_big:
        for combo in itertools.product(*axes) if axes else [()]:
            params: dict = {}
            for part in combo:
                params.update(part)
            points.append(_point(params))
        checked = "rare" if "rare" in raw else engine if engine in registry.ENGINES else "simpy"
        point_problems, left_out, estimates = _check_points(
            base, points, checked, sampled, strict=strict, warnings=warnings
        )
        points = [dataclasses.replace(p, estimate=estimates.get(i)) for i, p in enumerate(points)]
        problems += point_problems
        ids = [p.id for p in points]
        repeated = [p.params for i, p in enumerate(points) if p.id in ids[:i]]
        if repeated:
            example = repeated[0]
            problems.append(
                Problem(
                    "grid",
                    f"{len(repeated)} point(s) listed more than once, e.g. {example}: a value repeats in a list",
                )
            )
    if problems:
        raise SweepError(problems, source)
    gone = {entry["point_id"] for entry in left_out}
    kept = tuple(p for p in points if p.id not in gone)
    spec = SweepSpec(str(name), base, tuple(keys), kept, reps, engine, seed, source, rare)
    return dataclasses.replace(spec, left_out=tuple(left_out), warnings=tuple(warnings))


def _rare(raw, problems: list[Problem]) -> Rare | None:
    """The ``rare`` mapping: ``rel_error`` (0 < r < 1) and ``max_wall`` (a duration > 0)."""
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                "rare", f"expected a mapping like {{rel_error: 0.1, max_wall: 60s}}, got {raw!r}"
            )
        )
        return None
    n = len(problems)
    unknown = [str(k) for k in raw if k not in RARE_KEYS]
    if unknown:
        problems.append(
            Problem("rare", f"unknown key(s) {unknown} (allowed: {', '.join(RARE_KEYS)})")
        )
    rel = raw.get("rel_error")
    if isinstance(rel, bool) or not isinstance(rel, (int, float)) or not 0 < rel < 1:
        problems.append(Problem("rare.rel_error", f"{rel!r}: must be a number between 0 and 1"))
    wall = raw.get("max_wall", "60s")
    try:
        wall = _to_number(wall)
        if not 0 < wall < math.inf:
            raise ValueError(f"{raw.get('max_wall')!r}: must be a finite duration above 0")
    except ValueError as exc:
        problems.append(Problem("rare.max_wall", str(exc)))
    return Rare(float(rel), float(wall)) if len(problems) == n else None


def _check_points(
    base: dict,
    points: list[Point],
    engine: str,
    sampled: Sequence[str] = (),
    *,
    strict: bool = False,
    warnings: dict[str, None] | None = None,
) -> tuple[list[Problem], list[dict], dict[int, tuple[float, str]]]:
    """Load every point's scenario now, so a bad value (or an engine that does not cover a
    point) stops the sweep before any run. ``engine`` "rare": the rare-event estimator.

    Returns (problems that stop the sweep, the points left out, each loaded point's
    :func:`point_estimate` by index, so the progress bar need not load them again). A point whose scenario is
    invalid only for the combination of its values is left out (:func:`_bad_alone` says
    which problems are not), unless ``strict``; ``sampled``: the keys of the sample design.
    The points' scenario warnings are added to ``warnings`` (a dict used as an ordered set).
    """
    from simlab.engines import rare

    fleet = is_fleet(base)  # a fleet file runs through the fleet model, whatever the engine
    # auto (not in the registry) takes whichever engine covers each point
    covers = (
        rare.unsupported
        if engine == "rare"
        else getattr(registry.REGISTRY.get(engine), "unsupported", None)
    )
    if fleet:
        covers = None
    engine_key = "rare" if engine == "rare" else f"engine {engine}"
    seen: dict[str, Problem] = {}
    if fleet and (
        engine == "rare" or (engine in registry.REGISTRY and not registry.REGISTRY[engine].fleets)
    ):
        use = "leave rare out" if engine == "rare" else "use engine simpy or auto"
        text = f"does not cover fleet files (kind: fleet): {use}"
        seen["engine"] = Problem(engine_key, text)
    loader = load_fleet if fleet else load
    impossible: dict[int, tuple[list[Problem], list[Problem]]] = {}  # index: (as found, as told)
    estimates: dict[int, tuple[float, str]] = {}
    for i, point in enumerate(points):
        try:
            scenario, found = loader(base, point.params)
            if engine != "rare" and (fleet or engine in registry.ENGINES):
                estimates[i] = _scenario_estimate(scenario, engine, fleet)
            if warnings is not None:
                warnings.update(dict.fromkeys(str(w) for w in found))
            missing = covers(scenario) if covers else []
            if missing:
                text = f"does not cover the point {point.params}: {'; '.join(missing)}"
                seen.setdefault(f"{engine_key} {text}", Problem(engine_key, text))
        except ScenarioError as exc:
            told = []
            for p in exc.problems:
                where = p.path or "base"
                value = {
                    k: v
                    for k, v in point.params.items()
                    if where.startswith(k) or k.startswith(where)
                }
                at = f" (at {value})" if value else ""
                told.append(Problem(where, p.message + at))
            impossible[i] = (list(exc.problems), told)
    fatal = (
        set(impossible)
        if strict or len(impossible) == len(points)
        else _bad_alone(base, points, impossible, sampled, loader)
    )
    for i in sorted(fatal):
        for p in impossible[i][1]:
            seen.setdefault(f"{p.path}: {p.message}", p)
    left_out = [
        {
            "point_id": points[i].id,
            "params": points[i].params,
            "reasons": [str(p) for p in impossible[i][0]],
        }
        for i in sorted(set(impossible) - fatal)
    ]
    return list(seen.values()), left_out, estimates


def _value_key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _bad_alone(
    base: dict,
    points: list[Point],
    impossible: dict[int, tuple[list[Problem], list[Problem]]],
    sampled: Sequence[str],
    loader,
) -> set[int]:
    """The impossible points whose problem is not the combination of their values.

    A listed value (grid, zip) none of whose points can run is bad on its own (a typo, a
    negative duration, a key that belongs to another kind): every point with it is. A
    sampled value is bad on its own when the base with that value alone has the same
    problem (a sampled value never repeats, so its points cannot tell).
    """
    fatal: set[int] = set()
    keys = {k for point in points for k in point.params}
    for key in sorted(keys - set(sampled)):
        slices: dict[str, list[int]] = {}
        for i, point in enumerate(points):
            if key in point.params:
                slices.setdefault(_value_key(point.params[key]), []).append(i)
        for members in slices.values():
            if all(i in impossible for i in members):
                fatal.update(members)
    alone: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for i, (found, _) in impossible.items():
        if i in fatal:
            continue
        for key in sampled:
            if key not in points[i].params:
                continue
            value = points[i].params[key]
            cached = (key, _value_key(value))
            if cached not in alone:
                try:
                    loader(base, {key: value})
                    alone[cached] = set()
                except ScenarioError as exc:
                    alone[cached] = {(p.path, p.message) for p in exc.problems}
            if alone[cached] & {(p.path, p.message) for p in found}:
                fatal.add(i)
                break
    return fatal


def left_out_text(spec: SweepSpec, meta: str = "the meta file") -> str | None:
    """'N of M points left out: ...', their reasons grouped (the values taken out), or None."""
    if not spec.left_out:
        return None
    groups: dict[str, list[dict]] = {}
    for entry in spec.left_out:
        shape = "; ".join(re.sub(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", "#", r) for r in entry["reasons"])
        groups.setdefault(shape, []).append(entry)
    total = len(spec.left_out) + len(spec.points)
    lines = [
        f"{len(spec.left_out)} of {total} points left out (impossible combinations, not run; "
        f"listed under left_out in {meta}):"
    ]
    for entries in sorted(groups.values(), key=len, reverse=True):
        first = entries[0]
        params = ", ".join(f"{k}={v}" for k, v in first["params"].items())
        count = f"{len(entries)} points, e.g." if len(entries) > 1 else "1 point:"
        lines.append(f"  {count} {params}: {'; '.join(first['reasons'])}")
    return "\n".join(lines)


def load_sweep(
    path: str | Path,
    *,
    preset: str | None = None,
    networks: Sequence[str] = (),
    spelling: str = "cli",
    strict: bool = False,
) -> SweepSpec:
    """A sweep file, its base scenario layered with ``preset`` and ``networks`` if given
    (defaults < base file < preset < networks < the sweep's own points: the order of
    :func:`simlab.scenario.presets.load_layered`). ``strict``: see :func:`parse_sweep`."""
    from simlab.scenario import presets

    path = Path(path)
    if preset or networks:  # unknown names fail here, before any file is read
        presets.layered(preset, networks, spelling=spelling)
    raw = read_yaml(path)
    return _parse_layered(raw, str(path), path.parent, preset, networks, spelling, strict)


def _parse_layered(
    raw: object,
    source: str,
    base_dir: Path | None,
    preset: str | None,
    networks: Sequence[str],
    spelling: str,
    strict: bool = False,
) -> SweepSpec:
    """:func:`parse_sweep` of ``raw`` with its base layered by
    :func:`simlab.scenario.presets.apply` (the mapping given is not changed)."""
    from simlab.scenario import presets

    if not preset and not networks:
        return parse_sweep(raw, source, base_dir, strict=strict)
    if isinstance(raw, dict):
        raw = dict(raw)
        base = raw.get("base")
        if isinstance(base, str):
            path = Path(base)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            try:
                base = read_yaml(path)
            except ScenarioError:
                base = None  # left as the path: parse_sweep reports it with the sweep's problems
        if isinstance(base, dict):
            raw["base"] = presets.apply(base, preset, networks, spelling=spelling)
    try:
        return parse_sweep(raw, source, base_dir, strict=strict)
    except ScenarioError as exc:  # say that the base got presets
        where = presets.describe(source, preset, networks, spelling=spelling)
        raise type(exc)(exc.problems, where) from None


@dataclass(frozen=True)
class Estimate:
    """How long a sweep would take: ``runs`` of about ``per_run`` seconds on ``workers``."""

    seconds: float  # wall time
    runs: int  # runs still to do
    per_run: float  # mean wall seconds of one run
    workers: int
    engines: tuple[str, ...]  # the engines that would run them (auto: the ones it picks)

    def __str__(self) -> str:
        on = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        return (
            f"about {registry.format_wall(self.seconds)}: {self.runs:,} runs of "
            f"~{registry.format_wall(self.per_run)} ({', '.join(self.engines)}) on {on}"
        )


def runs_done(out: str | Path) -> int:
    """The runs an interrupted sweep's CSV already holds (rows without an error)."""
    out = Path(out)
    if not out.is_file():
        return 0
    try:
        _, rows = read_rows(out)
    except (OSError, ValueError):
        return 0
    return sum(1 for r in rows if len(r) > 1 and not r[-2])


def point_estimate(spec: SweepSpec, point: Point) -> tuple[float, str]:
    """(expected wall seconds of one run of ``point``, what runs it): the fleet model, rare
    events (``RARE_RUN_S``, at most ``max_wall``), or the engine (``auto``: its pick)."""
    if spec.rare is not None:
        return min(spec.rare.max_wall, RARE_RUN_S), "rare events"
    if point.estimate is not None:  # kept by parse_sweep, which loaded the scenario
        return point.estimate
    fleet = is_fleet(spec.base)
    scenario, _ = (load_fleet if fleet else load)(spec.base, point.params)
    return _scenario_estimate(scenario, spec.engine, fleet)


def _scenario_estimate(scenario, engine: str, fleet: bool) -> tuple[float, str]:
    if fleet:
        return registry.estimate(scenario), "fleet model"
    engine = registry.choose(scenario)[0] if engine == registry.AUTO else engine
    return registry.estimate(scenario, engine), engine


def estimate_sweep(spec: SweepSpec, workers: int | None = None, done: int = 0) -> Estimate:
    """The work of ``spec``'s runs (less ``done`` already in its CSV) from the engines'
    calibrated speeds (:func:`simlab.engines.registry.estimate`), on ``workers`` processes
    (default: the number of cores). Up to ``ESTIMATE_SAMPLE`` points, evenly spread, are
    estimated; a rare-event run counts as ``RARE_RUN_S`` (at most its ``max_wall``)."""
    points = spec.points
    runs = max(0, len(points) * spec.replications - done)
    workers = max(1, min(workers or os.cpu_count() or 1, runs or 1))
    m = min(len(points), ESTIMATE_SAMPLE)
    picked = sorted({round(j * (len(points) - 1) / max(1, m - 1)) for j in range(m)})
    seconds, engines = [], set()
    for j in picked:
        run_s, engine = point_estimate(spec, points[j])
        seconds.append(run_s), engines.add(engine)
    per_run = sum(seconds) / len(seconds) if seconds else 0.0
    return Estimate(per_run * runs / workers, runs, per_run, workers, tuple(sorted(engines)))


# -- running ------------------------------------------------------------------------------


def run_task(task: Task) -> dict:
    """Run one replication of one point; never raises (an error becomes the row's error text)."""
    from simlab.engines import registry as engines
    from simlab.engines import runner

    started = time.perf_counter()
    try:
        if is_fleet(task.base):
            from simlab.fleet.model import simulate_fleet

            fleet, _ = load_fleet(task.base, {**task.point.params, "seed": task.seed})
            return {
                "summary": simulate_fleet(fleet).summary,
                "error": None,
                "wall_s": time.perf_counter() - started,
            }
        scenario, _ = load(task.base, {**task.point.params, "seed": task.seed})
        if task.rare is not None:
            from simlab.engines import rare

            summary = rare.estimate(scenario, task.rare.rel_error, task.rare.max_wall)
        elif task.engine == "simpy":
            summary = runner.simulate(scenario).summary
        else:
            summary = engines.run(scenario, task.engine)
        error = None
    except Exception as exc:  # noqa: BLE001 - a failing run must not kill the sweep
        summary = {}
        error = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever it held
        if not str(exc):
            error += " " + traceback.format_exc(limit=1).splitlines()[-1]
    return {"summary": summary, "error": error, "wall_s": time.perf_counter() - started}


def _cell(value) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value


def task_row(spec: SweepSpec, task: Task, result: dict) -> list:
    s = result["summary"]
    return (
        [task.point.id, task.replication, task.seed]
        + [_cell(task.point.params[k]) for k in spec.keys]
        + [_cell(s.get(k)) for k in spec.metric_keys]
        + [_cell(s.get("engine")), result["error"] or "", f"{result['wall_s']:.3f}"]
    )


class _Serial:
    name = "serial"

    def run(self, fn, tasks):
        for task in tasks:
            yield task, fn(task)

    def close(self):
        pass


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops handing out work and keeps what is done."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """End this worker when its coordinator ``parent`` dies, also of ``kill -9`` (which
    leaves it no chance to stop its pool): on Linux the kernel sends SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread checks the parent every
    second. A worker re-parented before the prctl took hold ends at once."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc to ask: the thread below still watches
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="simlab-watch-parent", daemon=True).start()


def _start_worker(parent: int) -> None:
    """A pool worker: Ctrl-C is the parent's (:func:`_ignore_sigint`); it dies with the parent."""
    _ignore_sigint()
    _die_with(parent)


def _map(fn, tasks: list) -> list:
    return [fn(t) for t in tasks]


def _chunks(tasks: list, workers: int) -> list[list]:
    """Runs grouped so each worker gets several chunks (balance) of up to 16 runs (overhead)."""
    size = max(1, min(16, len(tasks) // (4 * workers)))
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]


class _Pool:
    name = "processes"

    def __init__(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers, initializer=_start_worker, initargs=(os.getpid(),)
        )

    def run(self, fn, tasks):
        from concurrent.futures import as_completed

        futures = {self.pool.submit(_map, fn, c): c for c in _chunks(tasks, self.workers)}
        for future in as_completed(futures):
            yield from zip(futures[future], future.result(), strict=True)

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)


class _Dask:
    name = "dask"

    def __init__(self, scheduler: str | None, workers: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SweepError(
                [
                    Problem(
                        "",
                        "Dask is not installed: pip install 'simlab[dask]' (or dask[distributed])",
                    )
                ],
                "--dask",
            ) from None
        self.cluster = None
        self.workers = workers
        if scheduler is None:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            scheduler = self.cluster.scheduler_address
        try:
            self.client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            problem = Problem("--dask-scheduler", f"cannot reach {scheduler}: {exc}")
            raise SweepError([problem], "--dask-scheduler") from None

    def run(self, fn, tasks):
        from distributed import as_completed

        chunks = _chunks(tasks, self.workers)
        futures = {self.client.submit(_map, fn, c, pure=False): i for i, c in enumerate(chunks)}
        for future in as_completed(futures):
            yield from zip(chunks[futures[future]], future.result(), strict=True)

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@dataclass
class SweepOutcome:
    rows: pd.DataFrame
    summary: pd.DataFrame
    failed: list[str]
    interrupted: bool = False
    path: Path | None = None


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _making(spec: SweepSpec) -> dict:
    """How a sweep's rows are made beyond their points and seeds (rows of two makings don't mix)."""
    return {"engine": spec.engine, "rare": dataclasses.asdict(spec.rare) if spec.rare else None}


def _known_engine(spec: SweepSpec) -> str:
    """The engine every run of ``spec`` uses, or "" when auto picks one per point."""
    if is_fleet(spec.base):
        return "fleet"
    if spec.rare is not None:
        return "fast"
    return "" if spec.engine == registry.AUTO else spec.engine


def _with_engine_column(spec: SweepSpec, out: Path, header: list, rows: list) -> list:
    """The rows of a file written before the engine column, with it: the sweep's engine when
    it names one, blank (unknown) under auto. Any other difference of columns is refused."""
    old = [c for c in spec.columns if c != "engine"]
    if header != old:
        problem = Problem(
            "--out", f"{out} has other columns than this sweep: another sweep wrote it"
        )
        raise SweepError([problem], str(out))
    at = spec.columns.index("engine")
    engine = _known_engine(spec)
    print(
        f"note: {out} was written before the engine column; its {len(rows)} row(s) get "
        + (f"engine {engine}" if engine else "a blank engine (auto: not recorded)"),
        file=sys.stderr,
    )
    return [r[:at] + [engine] + r[at:] for r in rows]


def engines_ran(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Which engines ran a sweep's rows (its tidy frame): {engine: {"points", "runs"}}, each
    point counted once per engine that ran one of its replications; failed runs left out."""
    if "engine" not in frame or "point_id" not in frame:
        return {}
    ok = frame[frame["error"].isna()] if "error" in frame else frame
    engine = ok["engine"].where(ok["engine"].notna(), "").astype(str).str.strip()
    engine = engine.where(engine != "", "unknown")
    out = {}
    for name in sorted(set(engine)):
        runs = ok[engine == name]
        out[name] = {"points": int(runs["point_id"].nunique()), "runs": len(runs)}
    return out


def point_engine(values) -> str:
    """One point's engine from its replications': the one name, or each with its count when
    they disagree ("fast (3), simpy (1)"); "" when no replication recorded one."""
    names = [str(v).strip() for v in values if isinstance(v, str) and str(v).strip()]
    counts = {n: names.count(n) for n in sorted(set(names))}
    if len(counts) <= 1:
        return next(iter(counts), "")
    return ", ".join(f"{n} ({k})" for n, k in counts.items())


def _check_same_making(spec: SweepSpec, out: Path) -> None:
    """Refuse to resume a file whose rows were made otherwise (another engine, another rare)."""
    meta = out.with_suffix(".meta.json")
    hint = "fix it, or remove it to resume without this check"
    if not meta.exists() and not meta.is_symlink():
        return  # no provenance to compare (a file from before it was written)
    try:
        old = json.loads(read_text(meta, limit=OUTPUT_LIMIT, what="sweep meta file"))
    except ValueError as exc:  # unreadable (a ScenarioError is one), not UTF-8, not JSON
        reason = " ".join(str(exc).split())
        problem = Problem(str(meta), f"not readable JSON ({reason}): {hint}")
        raise SweepError([problem], str(out)) from None
    problems = [
        Problem(p.path, f"{p.message}: {hint}")
        for p in check_output(pd.DataFrame(columns=spec.columns), str(out), old, str(meta))
    ]
    if problems:
        raise SweepError(problems, str(out))
    problems = [
        Problem(
            key,
            f"{out} was made with {key} {old[key]!r}, this sweep has {value!r}: its rows would "
            f"mix the two; restore {key}, or write to another --out",
        )
        for key, value in _making(spec).items()
        if key in old and old[key] != value
    ]
    if problems:
        raise SweepError(problems, str(out))


# -- reading outputs back ----------------------------------------------------------------
# A sweep's CSV, .summary.csv and .meta.json are read back by simlab choose and simlab report
# (simlab.sweeps.data.read) and by --resume: files anyone may have edited or a disk may have
# damaged, so they are checked before any figure is computed from them. check_output is the
# one check all three use (here, below data.py, which imports this module).

# the .meta.json's keys that simlab reads or shows, and what each must be when present
_META_TEXT = ("sweep", "sweep_text", "name", "simlab", "git_revision", "engine", "executor")
_META_TEXT += ("started", "ended", "host", "python")
_META_COUNTS = ("seed", "points", "replications", "runs", "runs_this_time", "workers")
_META_FLAGS = ("complete", "interrupted")
# what pandas reads as a blank cell, so rows read back as text (--resume) agree with it
_BLANK = frozenset({"", "nan", "NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>"})


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_meta(meta, where: str) -> list[Problem]:
    """The parsed .meta.json: an object whose known keys have their types (unknown keys pass)."""
    if not isinstance(meta, dict):
        kind = "null" if meta is None else type(meta).__name__
        return [Problem(where, f"expected a JSON object (the one simlab sweep writes), got {kind}")]
    problems = []
    for key, value in meta.items():
        if key in _META_TEXT and value is not None and not isinstance(value, str):
            problem = f"expected a string or null, got {shown(value)}"
        elif key in _META_COUNTS and not _is_count(value):
            problem = f"expected an integer >= 0, got {shown(value)}"
        elif key in _META_FLAGS and not isinstance(value, bool):
            problem = f"expected true or false, got {shown(value)}"
        elif key == "wall_s" and not (_is_number(value) and math.isfinite(value) and value >= 0):
            problem = f"expected a finite number of seconds >= 0, got {shown(value)}"
        elif key == "rare" and value is not None and not isinstance(value, dict):
            problem = f"expected an object or null, got {shown(value)}"
        elif key == "engines" and not (
            isinstance(value, dict)
            and all(
                isinstance(v, dict) and all(_is_count(n) for n in v.values())
                for v in value.values()
            )
        ):
            problem = f"expected an object of engines' counts, got {shown(value)}"
        elif key == "failed_points" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            problem = f"expected a list of point ids, got {shown(value)}"
        else:
            continue
        problems.append(Problem(where, f"key {key}: {problem}"))
    text = meta.get("sweep_text")
    if isinstance(text, str) and varied_keys(meta) is None:
        problems.append(Problem(where, "key sweep_text: not the text of a sweep file (YAML)"))
    return problems


def varied_keys(meta: dict | None) -> list[str] | None:
    """The keys the sweep that wrote ``meta`` varied (its grid, zip groups and sample ranges,
    read from its sweep_text); None if the meta holds no readable sweep file."""
    text = (meta or {}).get("sweep_text")
    if not isinstance(text, str):
        return None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(raw, dict):
        return None
    keys: list[str] = []
    grid, zips, sample = raw.get("grid"), raw.get("zip"), raw.get("sample")
    if isinstance(grid, dict):
        keys += list(grid)
    for group in zips if isinstance(zips, list) else []:
        keys += list(group) if isinstance(group, dict) else []
    ranges = sample.get("ranges") if isinstance(sample, dict) else None
    keys += list(ranges) if isinstance(ranges, dict) else []
    return [str(k) for k in dict.fromkeys(keys)]


def _numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column as floats (NaN where blank), and where it holds something that is not a number."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype(float), pd.Series(False, index=column.index)
    text = column.astype(str).str.strip()
    blank = column.isna() | text.isin(_BLANK)
    text = text.replace({"True": "1", "False": "0"})  # a flag (rare_event_budget_exhausted)
    values = pd.to_numeric(text.where(~blank), errors="coerce").astype(float)
    return values, values.isna() & ~blank


def _column_problem(frame: pd.DataFrame, column: str, bad: pd.Series, what: str) -> str:
    rows = [i for i, b in enumerate(bad.tolist()) if b]
    value = frame[column].iloc[rows[0]]
    value = value.item() if isinstance(value, np.generic) else value  # inf, not np.float64(inf)
    more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
    return f"column {column}: {shown(value)} in row {rows[0] + 1}{more} is not {what}"


def check_output(
    frame: pd.DataFrame, source: str, meta=None, meta_source: str | None = None
) -> list[Problem]:
    """Every problem of a sweep's output read back: its tidy rows or its summary (``frame``,
    read from ``source``) and, if given, its parsed .meta.json (``meta``, from ``meta_source``).

    The meta must be a JSON object with its known keys' types; every key the sweep varied
    (its sweep_text says which) must be a column, or its points' settings are unknown; figures
    must be finite numbers or blank; counts (and replication, replications, errors, seed)
    whole numbers >= 0; exposures (connected hours) >= 0. Rows are numbered from 1 after the
    header.
    """
    from simlab.engines import rare
    from simlab.fleet.model import FLEET_METRIC_KEYS

    problems: list[Problem] = []
    if meta is not None or meta_source is not None:
        problems += _check_meta(meta, meta_source or "meta")
    columns = [str(c) for c in frame.columns]
    varied = (varied_keys(meta) if isinstance(meta, dict) else None) or []
    for key in varied:
        if key not in columns:
            problems.append(
                Problem(
                    source,
                    f"column {key} is missing: the sweep varied it (its .meta.json says so), so"
                    " without it the points' settings are unknown",
                )
            )
    figures = {*METRIC_KEYS, *FLEET_METRIC_KEYS, *rare.METRIC_KEYS}
    exposures = {exposure for _, exposure in RATE_KEYS.values()}
    summary = "replication" not in columns
    if summary:
        counts = {c for c in ("replications", "errors") if c in columns}
        numbers = {c for c in columns if c.endswith(("_mean", "_ci_low", "_ci_high"))}
        positive = {f"{k}_mean" for k in (*COUNT_KEYS, *exposures)} & numbers
    else:
        counts = {c for c in ("replication", "seed", *COUNT_KEYS) if c in columns}
        numbers = {c for c in (*figures, "wall_s") if c in columns}
        positive = exposures & numbers
    for column in columns:
        if column in varied or (column not in counts and column not in numbers):
            continue
        values, text = _numbers(frame[column])
        if text.any():
            problems.append(Problem(source, _column_problem(frame, column, text, "a number")))
            continue
        if column in counts:
            bad = values.notna() & ~(np.isfinite(values) & (values >= 0) & (values % 1 == 0))
            what = "a whole number >= 0"
        else:
            bad = values.notna() & ~np.isfinite(values)
            what = "a finite number"
            if column in positive:
                bad |= values < 0
                what = "a finite number >= 0"
        if bad.any():
            problems.append(Problem(source, _column_problem(frame, column, bad, what)))
    return problems


class _Progress:
    """The sweep's progress bar (tqdm), counting work: each run's expected seconds from the
    engines' calibrated speeds (:func:`point_estimate`, as :func:`estimate_sweep` uses
    it), so that its percentage and ETA follow the work
    done, not the count of runs (one sweep's runs can differ 100-fold). The pools hand back
    a chunk of runs at once: the bar is redrawn when the next chunk arrives, with the whole
    chunk counted, and its rate is the average since the start (``smoothing=0``), so that
    the first run of the first chunk does not set the ETA."""

    CHUNK_GAP_S = 0.005  # results closer than this came back together, as one chunk

    def __init__(self, spec: SweepSpec, tasks: list[Task], todo: list[Task], serial: bool):
        from tqdm.auto import tqdm

        self.work = {
            p.id: self.run_work(spec, p) for p in {t.point.id: t.point for t in tasks}.values()
        }
        total = sum(self.work[t.point.id] for t in tasks)
        self.runs, self.of, self.serial = len(tasks) - len(todo), len(tasks), serial
        self.bar = tqdm(
            total=total,
            initial=total - sum(self.work[t.point.id] for t in todo),
            desc=spec.name,
            unit="ms",  # of work, as estimated: the runs are counted after the ETA
            unit_scale=True,
            smoothing=0,
            miniters=0,
            bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]",
            postfix=self._runs(),
        )

    @staticmethod
    def run_work(spec: SweepSpec, point: Point) -> int:
        """Expected milliseconds of one run of ``point`` (at least 1): whole numbers, so the
        work done adds up to the total exactly, in any order (float sums in another order
        overshot it: tqdm clamped the bar and showed a negative time left)."""
        return max(round(point_estimate(spec, point)[0] * 1000), 1)

    def _runs(self) -> str:
        return f"{self.runs}/{self.of} runs"

    def _show(self) -> None:
        self.bar.postfix = self._runs()
        self.bar.update(0)  # redrawn if mininterval has passed, with the work counted so far

    def follow(self, results):
        """``results`` as they come, each counted once the caller has written its row."""
        ready = time.perf_counter()
        for task, result in results:
            if time.perf_counter() - ready > self.CHUNK_GAP_S:  # waited: a new chunk
                self._show()
            yield task, result
            self.bar.n += self.work[task.point.id]
            self.runs += 1
            if self.serial:  # one run at a time: each is shown as it ends
                self._show()
            ready = time.perf_counter()

    def close(self) -> None:
        self.bar.postfix = self._runs()
        self.bar.close()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    workers: int | None = None,
    dask_scheduler: str | None = None,
    dask_local: bool = False,
    resume: bool = False,
    progress: bool = True,
    sweep_text: str | None = None,
) -> SweepOutcome:
    """Run every (point, replication) not yet in ``out``; write the rows, the summary and the meta."""
    out = Path(out)
    columns = spec.columns
    tasks = spec.tasks()
    done: dict[tuple[str, str], list] = {}
    if out.exists() and not resume:
        problem = Problem("--out", f"{out} exists: use --resume to complete it, or remove it")
        raise SweepError([problem], str(out))
    header, rows = read_rows(out) if out.exists() else (columns, [])
    if header != columns and "engine" not in header:  # written before the engine column
        rows, header = _with_engine_column(spec, out, header, rows), columns
    if header != columns:
        problem = Problem(
            "--out", f"{out} has other columns than this sweep: another sweep wrote it"
        )
        raise SweepError([problem], str(out))
    if out.exists():
        _check_same_making(spec, out)
    done = {(r[0], r[1]): r for r in rows if not r[-2]}  # rows with an error are run again
    problems = check_output(pd.DataFrame(list(done.values()), columns=header), str(out))
    if problems:  # rows edited or damaged: no figure is computed from them
        fix = "fix or delete those rows: --resume runs the deleted ones again"
        raise SweepError([*problems, Problem("--resume", fix)], str(out))
    todo = [t for t in tasks if (t.point.id, str(t.replication)) not in done]
    workers = workers or os.cpu_count() or 1
    # the executor first: if it cannot start, no file has been touched
    if dask_scheduler or dask_local:
        executor = _Dask(dask_scheduler, workers)
    elif workers > 1 and len(todo) > 1:
        executor = _Pool(min(workers, len(todo)))
    else:
        executor = _Serial()
    write_rows(out, columns, list(done.values()))  # drops torn or superseded rows
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    notice = left_out_text(spec, str(out.with_suffix(".meta.json")))
    if notice:
        print(notice, file=sys.stderr)
    started_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    meta = {
        "sweep": spec.source,
        "sweep_text": sweep_text,
        "name": spec.name,
        "simlab": __version__,
        "git_revision": _git_revision(),
        **_making(spec),
        "seed": spec.seed,
        "points": len(spec.points),
        "points_left_out": len(spec.left_out),
        "left_out": list(spec.left_out),
        "replications": spec.replications,
        "runs": len(tasks),
        "runs_this_time": len(todo),
        "executor": executor.name,
        "workers": workers,
        "started": started_at.isoformat(),
        "ended": None,  # a run killed outright leaves it so
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "complete": False,
    }
    # written now too, so that a --resume after a kill -9 can check how the rows were made
    write_atomic(out.with_suffix(".meta.json"), json.dumps(meta, indent=2) + "\n")
    interrupted = False
    bar = _Progress(spec, tasks, todo, executor.name == "serial") if progress else None
    try:
        with RowAppender(out) as appender:
            results = executor.run(run_task, todo)
            for task, result in results if bar is None else bar.follow(results):
                appender.append(task_row(spec, task, result))
    except KeyboardInterrupt:
        interrupted = True
    except BrokenExecutor as exc:  # a worker died (killed, out of memory): keep what is done
        interrupted = True
        print(f"sweep stopped: {exc}", file=sys.stderr)
    finally:
        executor.close()
        if bar is not None:
            bar.close()
    # rewrite in point order: the bytes do not depend on the executor or the completion order
    order = {(t.point.id, str(t.replication)): i for i, t in enumerate(tasks)}
    _, rows = read_rows(out)
    latest = {(r[0], r[1]): r for r in rows}
    rows = sorted((r for k, r in latest.items() if k in order), key=lambda r: order[(r[0], r[1])])
    write_rows(out, columns, rows)
    frame = pd.read_csv(out, keep_default_na=True)
    failed = sorted(set(frame.loc[frame.error.notna(), "point_id"]))
    summary = summarize_sweep(frame, spec)
    write_atomic(out.with_suffix(".summary.csv"), summary.to_csv(index=False))
    meta |= {
        "ended": dt.datetime.now(dt.UTC).isoformat(),
        "wall_s": time.perf_counter() - started,
        "interrupted": interrupted,
        "failed_points": failed,
        "complete": len(rows) == len(tasks),
        "engines": engines_ran(frame),  # which engine ran how many points and runs
    }
    write_atomic(out.with_suffix(".meta.json"), json.dumps(meta, indent=2) + "\n")
    return SweepOutcome(frame, summary, failed, interrupted, out)


def _bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float]:
    if len(values) < 2:
        return math.nan, math.nan
    means = rng.choice(values, size=(n, len(values)), replace=True).mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


# Rare-event mode's estimates: each run's standard error is mistake_rate_per_s_se in
# the estimate's own unit (per second, per connection-hour, per round). A run's own SE
# is not the pooled one (the intervals are): the summary leaves it out.
_RARE_RATES = frozenset({"fp_per_conn_hour", "mistake_rate_per_s", "fp_per_round"})
_RARE_PER_RUN = frozenset({"mistake_rate_per_s_se"})


def _pooled_estimate(runs: pd.DataFrame, key: str) -> tuple[float, float]:
    """95 % interval of the mean of independent estimates, from their SEs.

    Each run's SE is its own importance-sampling estimate (its stopping rule makes
    the estimate unbiased only to order rel_error**2). A run that saw no event at
    all has no SE to speak of: the upper bound is then unknown (NaN), not zero.
    """
    rate = runs["mistake_rate_per_s"].to_numpy(float)
    if not (rate > 0).all():
        return 0.0, math.nan
    se = runs["mistake_rate_per_s_se"].to_numpy(float)
    values = runs[key].to_numpy(float)
    unit = np.divide(values, rate, out=np.zeros_like(values), where=rate > 0)
    n = len(values)
    half = 1.96 * math.sqrt(float(np.sum((se * unit) ** 2))) / n
    mean = float(values.mean())
    return max(0.0, mean - half), mean + half


def _whole(count) -> int | None:
    """A pooled count as an int; None if it is not a finite whole number >= 0 (a summary then
    says NaN rather than fail: check_output refuses such files before they get here)."""
    count = float(count)
    return int(count) if math.isfinite(count) and count >= 0 and count % 1 == 0 else None


def summarize_sweep(frame: pd.DataFrame, spec: SweepSpec) -> pd.DataFrame:
    """One row per point: means over replications with 95 % intervals.

    Counts of rare events are pooled with exact Poisson intervals (a mean count per
    replication); rates are pooled count over pooled exposure; everything else gets a
    bootstrap interval of the mean over replications (fixed seed). In rare-event mode
    the rates are the mean of the replications' independent estimates, with the
    normal interval of their pooled standard errors.
    """
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(0xB007,)))
    rows = []
    ok = frame[frame.error.isna()]
    for point in spec.points:
        runs = ok[ok.point_id == point.id]
        row = {"point_id": point.id, **{k: point.params[k] for k in spec.keys}}
        row["replications"] = len(runs)
        row["errors"] = int((frame.point_id == point.id).sum() - len(runs))
        row["engine"] = point_engine(runs["engine"]) if "engine" in runs else ""
        for key in spec.metric_keys:
            if key in PER_RUN_ONLY or (spec.rare is not None and key in _RARE_PER_RUN):
                continue
            values = runs[key].dropna().to_numpy(dtype=float) if key in runs else np.array([])
            if len(values) == 0:
                row |= {
                    f"{key}_mean": math.nan,
                    f"{key}_ci_low": math.nan,
                    f"{key}_ci_high": math.nan,
                }
                continue
            mean = float(values.mean())
            if spec.rare is not None and key in _RARE_RATES:
                low, high = _pooled_estimate(runs, key)
            elif key in RATE_KEYS:
                count_key, exposure_key = RATE_KEYS[key]
                count, exposure = runs[count_key].sum(), runs[exposure_key].sum()
                whole = _whole(count) is not None and 0 < exposure < math.inf
                mean = count / exposure if whole else math.nan
                low, high = (
                    poisson_interval(_whole(count), exposure) if whole else (math.nan, math.nan)
                )
            elif key in COUNT_KEYS:
                total = _whole(values.sum())
                low, high = (
                    (math.nan, math.nan) if total is None else poisson_interval(total, len(values))
                )
            else:
                low, high = _bootstrap_ci(values, rng)
            row |= {f"{key}_mean": mean, f"{key}_ci_low": low, f"{key}_ci_high": high}
        rows.append(row)
    return pd.DataFrame(rows)


def sweep(
    source: str | Path | dict,
    out: str | Path,
    *,
    workers: int | None = None,
    dask_scheduler: str | None = None,
    dask_local: bool = False,
    resume: bool = False,
    progress: bool = True,
    preset: str | None = None,
    networks: Sequence[str] = (),
    strict: bool = False,
) -> pd.DataFrame:
    """Run a sweep (file path or mapping) into ``out``; return the tidy rows as a DataFrame.

    ``preset`` and ``networks`` layer the base scenario as ``simlab sweep --preset
    --network`` do (:func:`load_sweep`); a mapping's base path is relative to the
    working directory. The summary is written beside ``out`` (``.summary.csv``) and in
    ``result.attrs['summary']``; the points left out as impossible combinations in
    ``result.attrs['left_out']`` (``strict``: refuse them instead, see :func:`parse_sweep`).
    """
    from simlab.scenario import presets

    if isinstance(source, dict):
        if preset or networks:
            presets.layered(preset, networks, spelling="python")
        spec = _parse_layered(source, "sweep", None, preset, networks, "python", strict)
        text = yaml.safe_dump(source)
    else:
        spec = load_sweep(
            source, preset=preset, networks=networks, spelling="python", strict=strict
        )
        text = read_text(source, what="sweep file")
    if preset or networks:  # the meta file says what the base scenario got, as the CLI does
        text += f"\n# {presets.describe('base scenario', preset, networks)}\n"
    outcome = run_sweep(
        spec,
        out,
        workers=workers,
        dask_scheduler=dask_scheduler,
        dask_local=dask_local,
        resume=resume,
        progress=progress,
        sweep_text=text,
    )
    frame = outcome.rows
    frame.attrs["summary"] = outcome.summary
    frame.attrs["failed_points"] = outcome.failed
    frame.attrs["left_out"] = list(spec.left_out)
    return frame
