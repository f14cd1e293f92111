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
from simlab.errors import Problem, ScenarioError
from simlab.fleet.spec import is_fleet
from simlab.fleet.spec import load as load_fleet
from simlab.io import RowAppender, read_rows, write_atomic, write_rows
from simlab.scenario.reader import Reader, load, read_yaml
from simlab.units import parse_duration
from simlab.version import __version__

SWEEP_KEYS = ["base", "grid", "zip", "sample", "replications", "engine", "seed", "name", "rare"]
RARE_KEYS = ["rel_error", "max_wall"]
SAMPLE_KEYS = ["method", "count", "ranges"]
RANGE_KEYS = ["low", "high", "scale"]
LEAD_COLUMNS = ["point_id", "replication", "seed"]
TAIL_COLUMNS = ["error", "wall_s"]


class SweepError(ScenarioError):
    """A bad sweep file: every problem, before any run starts."""


@dataclass(frozen=True)
class Point:
    """One setting of the varied keys."""

    id: str
    params: dict = field(hash=False)

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


def parse_sweep(raw: dict, source: str = "sweep", base_dir: Path | None = None) -> SweepSpec:
    """Check a sweep mapping and every scenario it implies; raise SweepError listing all problems.

    The problems are collected by :class:`simlab.scenario.reader.Reader` (its ``errors``),
    which also checks the top-level keys; the sweep's own values keep their own messages.
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
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        problems.append(Problem("grid", f"expected a mapping of dotted key -> list, got {grid!r}"))
        grid = {}
    for key, values in grid.items():
        values = _list(values, f"grid.{key}", problems)
        if values is not None:
            axes.append([{key: _normalize(v)} for v in values])
            keys.append(key)
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
            if ok and ranges:
                axes.append(_design(method, count, ranges, seed))
                keys += list(ranges)
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        problems.append(Problem("", f"keys varied twice: {', '.join(duplicates)}"))
    reps = raw.get("replications", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        problems.append(Problem("replications", f"{reps!r}: must be an integer >= 1"))
        reps = 1
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
    if not duplicates:  # the scenarios are checked even when the sweep's own keys have problems
        for combo in itertools.product(*axes) if axes else [()]:
            params: dict = {}
            for part in combo:
                params.update(part)
            points.append(_point(params))
        checked = "rare" if "rare" in raw else engine if engine in registry.ENGINES else "simpy"
        problems += _check_points(base, points, checked)
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
    return SweepSpec(str(name), base, tuple(keys), tuple(points), reps, engine, seed, source, rare)


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


def _check_points(base: dict, points: list[Point], engine: str) -> list[Problem]:
    """Load every point's scenario now, so a bad value (or an engine that does not cover a
    point) stops the sweep before any run. ``engine`` "rare": the rare-event estimator."""
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
    for point in points:
        try:
            scenario, _ = (load_fleet if fleet else load)(base, point.params)
            missing = covers(scenario) if covers else []
            if missing:
                text = f"does not cover the point {point.params}: {'; '.join(missing)}"
                seen.setdefault(f"{engine_key} {text}", Problem(engine_key, text))
        except ScenarioError as exc:
            for p in exc.problems:
                where = p.path or "base"
                value = {
                    k: v
                    for k, v in point.params.items()
                    if where.startswith(k) or k.startswith(where)
                }
                shown = f" (at {value})" if value else ""
                seen.setdefault(f"{where}: {p.message}", Problem(where, p.message + shown))
    return list(seen.values())


def load_sweep(
    path: str | Path,
    *,
    preset: str | None = None,
    networks: Sequence[str] = (),
    spelling: str = "cli",
) -> SweepSpec:
    """A sweep file, its base scenario layered with ``preset`` and ``networks`` if given
    (defaults < base file < preset < networks < the sweep's own points: the order of
    :func:`simlab.scenario.presets.load_layered`)."""
    from simlab.scenario import presets

    path = Path(path)
    if preset or networks:  # unknown names fail here, before any file is read
        presets.layered(preset, networks, spelling=spelling)
    return _parse_layered(read_yaml(path), str(path), path.parent, preset, networks, spelling)


def _parse_layered(
    raw: object,
    source: str,
    base_dir: Path | None,
    preset: str | None,
    networks: Sequence[str],
    spelling: str,
) -> SweepSpec:
    """:func:`parse_sweep` of ``raw`` with its base layered by
    :func:`simlab.scenario.presets.apply` (the mapping given is not changed)."""
    from simlab.scenario import presets

    if not preset and not networks:
        return parse_sweep(raw, source, base_dir)
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
        return parse_sweep(raw, source, base_dir)
    except ScenarioError as exc:  # say that the base got presets
        where = presets.describe(source, preset, networks, spelling=spelling)
        raise type(exc)(exc.problems, where) from None


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
        + [result["error"] or "", f"{result['wall_s']:.3f}"]
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
        self.pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)

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


def _check_same_making(spec: SweepSpec, out: Path) -> None:
    """Refuse to resume a file whose rows were made otherwise (another engine, another rare)."""
    try:
        old = json.loads(out.with_suffix(".meta.json").read_text())
    except (OSError, ValueError):
        return  # no provenance to compare (a file from before it was written)
    if not isinstance(old, dict):
        return
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
    if header != columns:
        problem = Problem(
            "--out", f"{out} has other columns than this sweep: another sweep wrote it"
        )
        raise SweepError([problem], str(out))
    if out.exists():
        _check_same_making(spec, out)
    done = {(r[0], r[1]): r for r in rows if not r[-2]}  # rows with an error are run again
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
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=spec.name, unit="run")
    try:
        with RowAppender(out) as appender:
            for task, result in executor.run(run_task, todo):
                appender.append(task_row(spec, task, result))
                if bar is not None:
                    bar.update(1)
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
                mean = count / exposure if exposure > 0 else math.nan
                low, high = (
                    poisson_interval(int(count), exposure) if exposure > 0 else (math.nan, math.nan)
                )
            elif key in COUNT_KEYS:
                low, high = poisson_interval(int(values.sum()), len(values))
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
) -> pd.DataFrame:
    """Run a sweep (file path or mapping) into ``out``; return the tidy rows as a DataFrame.

    ``preset`` and ``networks`` layer the base scenario as ``simlab sweep --preset
    --network`` do (:func:`load_sweep`); a mapping's base path is relative to the
    working directory. The summary is written beside ``out`` (``.summary.csv``) and in
    ``result.attrs['summary']``.
    """
    from simlab.scenario import presets

    if isinstance(source, dict):
        if preset or networks:
            presets.layered(preset, networks, spelling="python")
        spec = _parse_layered(source, "sweep", None, preset, networks, "python")
        text = yaml.safe_dump(source)
    else:
        spec = load_sweep(source, preset=preset, networks=networks, spelling="python")
        text = Path(source).read_text()
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
    return frame
