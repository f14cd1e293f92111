"""Tests for simlab.sweeps.sweep (simlab.sweep) and ``simlab sweep``: points and seeds, bad files, determinism across
executors, resume after a kill or Ctrl-C, failing points, the summary, and a real Dask cluster.

Every sweep is tiny (inline base scenarios, 1-2 connections, minutes of simulated time);
process pools and Dask clusters are started only where the test is about them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import simlab
import simlab.engines.runner
from simlab.cli.main import main
from simlab.engines.analytic.theory import poisson_interval
from simlab.engines.metrics import COUNT_KEYS, METRIC_KEYS, PER_RUN_ONLY, RATE_KEYS
from simlab.io import read_rows
from simlab.sweeps.sweep import SweepError, parse_sweep, run_sweep, summarize_sweep
from simlab.sweeps.sweep import sweep as sweep_api

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SIMLAB = BIN / "simlab"
DASK = BIN / "dask"

BASE = {
    "name": "tiny",
    "horizon": "10m",
    "connections": 2,
    "seed": 0,
    "heartbeat": {"interval": "10s"},
    "detector": {"kind": "timeout", "timeout": "25s"},
    "link": {"loss": 0.05, "delay": "40ms"},
    "peer": {"crash": {"mtbf": "10m"}, "stall": {"mtbf": "5m", "duration": "3s"}},
}


def tiny(**extra) -> dict:
    """A small sweep mapping: 3 intervals x 2 replications unless overridden."""
    sweep = {
        "base": BASE,
        "grid": {"heartbeat.interval": ["5s", "10s", "20s"]},
        "replications": 2,
        "seed": 3,
    }
    sweep.update(extra)
    return sweep


def write_sweep(directory: Path, mapping: dict, name: str = "sweep.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def without_timing(path: Path) -> list[list[str]]:
    """The CSV's rows (header first) with the wall_s column removed."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    drop = rows[0].index("wall_s")
    return [r[:drop] + r[drop + 1 :] for r in rows]


def keys_of(path: Path) -> list[tuple[str, str]]:
    _, rows = read_rows(path)
    return [(r[0], r[1]) for r in rows]


def data_rows(path: Path) -> int:
    if not path.exists():
        return 0
    return len(read_rows(path)[1])


# -- points, designs and seeds ------------------------------------------------------------


def test_grid_is_the_full_product_in_key_order():
    spec = parse_sweep(
        tiny(grid={"heartbeat.interval": ["5s", "10s", "20s"], "link.loss.p": [0.01, 0.1]})
    )
    assert spec.keys == ("heartbeat.interval", "link.loss.p")
    assert len(spec.points) == 6
    assert [tuple(p.params.values()) for p in spec.points] == [
        (5.0, 0.01),
        (5.0, 0.1),
        (10.0, 0.01),
        (10.0, 0.1),
        (20.0, 0.01),
        (20.0, 0.1),
    ]
    assert len({p.id for p in spec.points}) == 6
    assert len(spec.tasks()) == 12
    assert spec.columns[:3] == ["point_id", "replication", "seed"]
    assert spec.columns[3:5] == ["heartbeat.interval", "link.loss.p"]
    assert spec.columns[-2:] == ["error", "wall_s"]


def test_zip_groups_move_together_and_cross_the_grid():
    spec = parse_sweep(
        tiny(
            grid={"link.loss.p": [0.01, 0.05]},
            zip=[{"heartbeat.interval": ["5s", "10s", "20s"], "detector.timeout": [12, 25, 45]}],
        )
    )
    assert spec.keys == ("link.loss.p", "heartbeat.interval", "detector.timeout")
    assert len(spec.points) == 6  # 2 x 3, not 2 x 3 x 3
    pairs = {(p.params["heartbeat.interval"], p.params["detector.timeout"]) for p in spec.points}
    assert pairs == {(5.0, 12), (10.0, 25), (20.0, 45)}
    for loss in (0.01, 0.05):
        assert sum(p.params["link.loss.p"] == loss for p in spec.points) == 3


def test_two_zip_groups_are_crossed():
    spec = parse_sweep(
        tiny(
            grid={},
            zip=[
                {"heartbeat.interval": ["5s", "10s"], "detector.timeout": ["12s", "25s"]},
                {"link.loss.p": [0.0, 0.1], "link.delay": ["10ms", "50ms"]},
            ],
        )
    )
    assert len(spec.points) == 4
    for p in spec.points:
        assert (
            p.params["detector.timeout"] == {5.0: 12.0, 10.0: 25.0}[p.params["heartbeat.interval"]]
        )
        assert p.params["link.delay"] == {0.0: 0.01, 0.1: 0.05}[p.params["link.loss.p"]]


def test_no_varied_keys_is_one_point():
    spec = parse_sweep({"base": BASE, "replications": 3})
    assert len(spec.points) == 1 and spec.points[0].params == {}
    assert len(spec.tasks()) == 3


RANGES = {
    "link.loss.p": {"low": 0.001, "high": 0.1, "scale": "log"},
    "heartbeat.interval": {"low": "5s", "high": "20s"},
}


@pytest.mark.parametrize("method", ["lhs", "sobol"])
def test_sample_designs_are_in_range_and_deterministic(method):
    raw = tiny(grid={}, sample={"method": method, "count": 8, "ranges": RANGES})
    spec = parse_sweep(raw)
    assert spec.keys == ("link.loss.p", "heartbeat.interval")
    assert len(spec.points) == 8
    loss = np.array([p.params["link.loss.p"] for p in spec.points])
    interval = np.array([p.params["heartbeat.interval"] for p in spec.points])
    assert np.all((loss >= 0.001) & (loss <= 0.1))
    assert np.all((interval >= 5) & (interval <= 20))
    # both designs fill each eighth of each axis once (log axis measured in log space)
    u_loss = (np.log(loss) - math.log(0.001)) / (math.log(0.1) - math.log(0.001))
    u_interval = (interval - 5) / 15
    for u in (u_loss, u_interval):
        assert sorted(np.floor(u * 8).astype(int)) == list(range(8))
    # deterministic for a seed, different for another
    again = parse_sweep(raw)
    assert [p.id for p in again.points] == [p.id for p in spec.points]
    assert [p.params for p in again.points] == [p.params for p in spec.points]
    other = parse_sweep({**raw, "seed": 4})
    assert [p.params for p in other.points] != [p.params for p in spec.points]


def test_log_scale_covers_decades_evenly():
    raw = tiny(
        grid={},
        sample={"method": "lhs", "count": 30, "ranges": {"link.loss.p": [0.0001, 0.1]}},
    )
    linear = [p.params["link.loss.p"] for p in parse_sweep(raw).points]
    raw["sample"]["ranges"] = {"link.loss.p": {"low": 0.0001, "high": 0.1, "scale": "log"}}
    log = [p.params["link.loss.p"] for p in parse_sweep(raw).points]
    assert min(log) >= 0.0001 and max(log) <= 0.1
    assert sum(v < 0.001 for v in log) == 10  # a third of the points in the first decade
    assert sum(v < 0.001 for v in linear) <= 1


def test_sample_is_crossed_with_the_grid():
    spec = parse_sweep(
        tiny(
            grid={"detector.timeout": ["25s", "40s"]},
            sample={"method": "sobol", "count": 4, "ranges": {"link.loss.p": [0.01, 0.1]}},
        )
    )
    assert len(spec.points) == 8
    assert len({p.params["link.loss.p"] for p in spec.points}) == 4


LONG_TIMEOUT = {**BASE, "detector": {"kind": "timeout", "timeout": "70s"}}


def test_durations_are_normalized_in_point_ids():
    ids = set()
    for value in ["30s", "30000ms", "0.5m", 30.0]:
        spec = parse_sweep(tiny(base=LONG_TIMEOUT, grid={"heartbeat.interval": [value]}))
        assert spec.points[0].params == {"heartbeat.interval": 30.0}
        ids.add(spec.points[0].id)
    assert len(ids) == 1


def test_an_integer_and_a_duration_string_are_the_same_point():
    a = parse_sweep(tiny(base=LONG_TIMEOUT, grid={"heartbeat.interval": ["30s"]}))
    b = parse_sweep(tiny(base=LONG_TIMEOUT, grid={"heartbeat.interval": [30]}))
    assert a.points[0].id == b.points[0].id
    assert [t.seed for t in a.tasks()] == [t.seed for t in b.tasks()]


def test_a_repeated_grid_value_is_rejected_or_merged():
    try:
        spec = parse_sweep(tiny(grid={"heartbeat.interval": ["10s", "10s", 10.0]}))
    except SweepError as exc:
        assert "heartbeat.interval" in str(exc)
    else:
        assert len({p.id for p in spec.points}) == len(spec.points)


def test_point_ids_and_seeds_are_stable_when_points_are_added():
    small = parse_sweep(tiny(grid={"heartbeat.interval": ["5s", "10s"]}))
    large = parse_sweep(tiny(grid={"heartbeat.interval": ["20s", "5s", "7s", "10s"]}))
    small_ids = {p.params["heartbeat.interval"]: p.id for p in small.points}
    large_ids = {p.params["heartbeat.interval"]: p.id for p in large.points}
    assert {k: large_ids[k] for k in small_ids} == small_ids
    seeds_small = {(t.point.id, t.replication): t.seed for t in small.tasks()}
    seeds_large = {(t.point.id, t.replication): t.seed for t in large.tasks()}
    assert {k: seeds_large[k] for k in seeds_small} == seeds_small
    # more replications leave the first ones' seeds alone too
    more = parse_sweep(tiny(grid={"heartbeat.interval": ["5s", "10s"]}, replications=5))
    seeds_more = {(t.point.id, t.replication): t.seed for t in more.tasks()}
    assert {k: seeds_more[k] for k in seeds_small} == seeds_small


def test_seeds_differ_between_replications_and_points_and_follow_the_sweep_seed():
    spec = parse_sweep(tiny(replications=4))
    seeds = [t.seed for t in spec.tasks()]
    assert len(seeds) == 12 and len(set(seeds)) == 12
    assert all(0 <= s < 2**64 for s in seeds)
    assert [t.seed for t in parse_sweep(tiny(replications=4)).tasks()] == seeds
    other = [t.seed for t in parse_sweep(tiny(replications=4, seed=4)).tasks()]
    assert not set(other) & set(seeds)


def test_the_example_sweep_file_parses():
    from simlab.sweeps.sweep import load_sweep

    spec = load_sweep(ROOT / "examples" / "sweeps" / "interval-vs-nat.yaml")
    assert len(spec.points) == 5 * 2  # five (interval, timeout) pairs x two loss rates
    assert spec.replications == 2 and spec.seed == 1 and spec.engine == "simpy"
    assert spec.name == "interval-vs-nat"


# -- bad sweep files ----------------------------------------------------------------------

SAMPLE_OK = {"method": "lhs", "count": 4, "ranges": {"link.loss.p": [0.01, 0.1]}}

BAD = [
    (
        "unknown top-level key",
        {"gird": {"heartbeat.interval": [5]}},
        ["gird", "did you mean 'grid'"],
    ),
    ("empty grid list", {"grid": {"heartbeat.interval": []}}, ["grid.heartbeat.interval"]),
    ("grid value not a list", {"grid": {"heartbeat.interval": "10s"}}, ["grid.heartbeat.interval"]),
    ("grid not a mapping", {"grid": ["heartbeat.interval"]}, ["grid"]),
    (
        "zip lists of unequal length",
        {"grid": {}, "zip": [{"heartbeat.interval": [5, 10], "detector.timeout": [25]}]},
        ["zip[0]", "heartbeat.interval", "detector.timeout"],
    ),
    (
        "grid key not in the scenario",
        {"grid": {"heartbeat.intervall": [5]}},
        ["heartbeat.intervall", "did you mean 'interval'"],
    ),
    (
        "sample key not in the scenario",
        {"grid": {}, "sample": {**SAMPLE_OK, "ranges": {"link.los.p": [0.01, 0.1]}}},
        ["link.los", "did you mean 'loss'"],
    ),
    (
        "wrong type for its key",
        {"grid": {"heartbeat.interval": ["abc"]}},
        ["heartbeat.interval", "abc", "duration"],
    ),
    (
        "value not allowed for its key",
        {"grid": {"detector.kind": ["timeout", "psychic"]}},
        ["detector.kind", "psychic"],
    ),
    ("unknown engine", {"engine": "ns3"}, ["engine", "ns3", "simpy"]),
    ("zero replications", {"replications": 0}, ["replications"]),
    ("replications not an integer", {"replications": "many"}, ["replications"]),
    ("negative seed", {"seed": -1}, ["seed"]),
    ("unknown sample method", {"sample": {**SAMPLE_OK, "method": "halton"}}, ["sample.method"]),
    (
        "sobol count not a power of two",
        {"sample": {**SAMPLE_OK, "method": "sobol", "count": 6}},
        ["sample.count", "6"],
    ),
    ("sample count zero", {"sample": {**SAMPLE_OK, "count": 0}}, ["sample.count"]),
    ("unknown sample key", {"sample": {**SAMPLE_OK, "cont": 4}}, ["sample.cont"]),
    (
        "range low >= high",
        {"sample": {**SAMPLE_OK, "ranges": {"link.loss.p": {"low": 0.1, "high": 0.1}}}},
        ["sample.ranges.link.loss.p", "below"],
    ),
    (
        "log scale with low <= 0",
        {
            "sample": {
                **SAMPLE_OK,
                "ranges": {"link.loss.p": {"low": 0, "high": 0.1, "scale": "log"}},
            }
        },
        ["sample.ranges.link.loss.p", "log"],
    ),
    (
        "unknown range scale",
        {
            "sample": {
                **SAMPLE_OK,
                "ranges": {"link.loss.p": {"low": 0.01, "high": 0.1, "scale": "ln"}},
            }
        },
        ["sample.ranges.link.loss.p.scale"],
    ),
    ("missing base file", {"base": "no-such-base.yaml"}, ["base", "no-such-base.yaml"]),
    ("base neither path nor mapping", {"base": 5}, ["base"]),
    ("bad base scenario", {"base": {**BASE, "horizon": "forever"}}, ["horizon", "forever"]),
    (
        "key varied twice",
        {"zip": [{"heartbeat.interval": [5, 10], "detector.timeout": [25, 40]}]},
        ["varied twice", "heartbeat.interval"],
    ),
]


@pytest.mark.parametrize("changes, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_sweep_files_are_rejected_before_any_run(tmp_path, capsys, changes, expected):
    raw = {**tiny(), **changes}
    with pytest.raises(SweepError) as info:
        parse_sweep(raw, base_dir=tmp_path)
    for text in expected:
        assert text in str(info.value)

    path = write_sweep(tmp_path, raw)
    out = tmp_path / "out" / "result.csv"
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error:")
    for text in expected:
        assert text in err
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_many_problems_in_one_file_are_all_reported():
    raw = {
        **tiny(),
        "gird": {},
        "grid": {"heartbeat.interval": []},
        "zip": [{"detector.timeout": [25, 40], "detector.kind": ["timeout"]}],
        "replications": 0,
        "engine": "ns3",
        "sample": {"method": "sobol", "count": 6, "ranges": {"link.loss.p": [0.1, 0.01]}},
    }
    with pytest.raises(SweepError) as info:
        parse_sweep(raw)
    paths = {p.path for p in info.value.problems}
    assert {
        "gird",
        "grid.heartbeat.interval",
        "zip[0]",
        "replications",
        "engine",
        "sample.count",
        "sample.ranges.link.loss.p",
    } <= paths


def test_scenario_problems_of_several_points_are_all_reported():
    raw = tiny(
        grid={"heartbeat.intervall": [5], "detector.kind": ["timeout", "psychic"]},
    )
    with pytest.raises(SweepError) as info:
        parse_sweep(raw)
    text = str(info.value)
    assert "heartbeat.intervall" in text and "psychic" in text


def test_sweep_and_scenario_problems_are_reported_together():
    raw = tiny(grid={"heartbeat.intervall": [5]}, replications=0)
    with pytest.raises(SweepError) as info:
        parse_sweep(raw)
    text = str(info.value)
    assert "replications" in text and "heartbeat.intervall" in text


def test_a_missing_sweep_file_exits_2(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err
    assert not out.exists()


def test_workers_below_one_exits_2(tmp_path, capsys):
    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "0", "--quiet"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert not out.exists()


def test_missing_dask_gives_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "--out", str(out), "--dask-local", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Dask is not installed" in err and "pip install" in err and "Traceback" not in err


def test_missing_dask_leaves_no_output_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "--out", str(out), "--dask-local", "--quiet"]) == 2
    assert not out.exists()


def test_an_unreachable_scheduler_is_reported_without_traceback(tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")

    def refuse(address, **kwargs):  # what Client does after its 20 s connect timeout
        raise OSError(f"Timed out trying to connect to {address} after 20 s")

    monkeypatch.setattr(distributed, "Client", refuse)
    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "r.csv"
    address = "tcp://127.0.0.1:9"
    code = main(["sweep", str(path), "--out", str(out), "--dask-scheduler", address, "--quiet"])
    assert code != 0
    assert address in capsys.readouterr().err
    assert not out.exists()


# -- running: determinism across executors ------------------------------------------------


def test_the_same_bytes_from_every_executor(tmp_path):
    spec = parse_sweep(tiny())
    outs = {}
    for name, kwargs in [
        ("serial", {"workers": 1}),
        ("processes", {"workers": 2}),
        ("dask", {"workers": 2, "dask_local": True}),
    ]:
        if name == "dask":
            pytest.importorskip("distributed", reason="dask[distributed] is not installed")
        out = tmp_path / f"{name}.csv"
        outcome = run_sweep(spec, out, progress=False, **kwargs)
        assert not outcome.failed and not outcome.interrupted
        meta = json.loads(out.with_suffix(".meta.json").read_text())
        assert meta["executor"] == name and meta["complete"]
        outs[name] = out
    reference = without_timing(outs["serial"])
    assert len(reference) == 1 + 6
    assert keys_of(outs["serial"]) == [(t.point.id, str(t.replication)) for t in spec.tasks()]
    summary = outs["serial"].with_suffix(".summary.csv").read_bytes()
    for name in ("processes", "dask"):
        assert without_timing(outs[name]) == reference, name
        assert outs[name].with_suffix(".summary.csv").read_bytes() == summary, name


def test_wall_s_is_the_only_timing_column(tmp_path):
    out = tmp_path / "r.csv"
    run_sweep(parse_sweep(tiny(replications=1)), out, workers=1, progress=False)
    header = without_timing(out)[0]
    assert "wall_s" not in header
    summary_header = out.with_suffix(".summary.csv").read_text().splitlines()[0].split(",")
    assert not [c for c in summary_header if "wall" in c]


def test_the_progress_bar_counts_work_and_leaves_the_results_alone(tmp_path, monkeypatch):
    """The bar's total is the runs' expected seconds (the engines' calibrated speeds), not the
    count of runs: a 5 s interval has four times the rounds of a 20 s one, so the first task
    alone no longer sets the ETA (issue 18). Drawing it changes no row: the same bytes as
    without a bar, on one process and on a pool (whose chunks come back at once)."""
    import io

    import tqdm.auto

    from simlab.engines import registry
    from simlab.scenario.reader import load

    bars = []

    class Recorded(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), **kwargs)
            bars.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    spec = parse_sweep(tiny())
    work = [registry.estimate(load(BASE, t.point.params)[0], spec.engine) for t in spec.tasks()]
    assert len(set(work)) == 3  # more rounds, more work: one figure per interval
    reference = tmp_path / "plain.csv"
    run_sweep(spec, reference, workers=1, progress=False)
    for workers in (1, 2):
        out = tmp_path / f"bar{workers}.csv"
        run_sweep(spec, out, workers=workers, progress=True)
        bar = bars[-1]
        ms = sum(max(round(w * 1000), 1) for w in work)  # whole milliseconds of work
        assert bar.total == ms and bar.n == ms  # exactly: no overshoot, whatever the order
        assert bar.smoothing == 0 and bar.postfix == "6/6 runs"
        assert without_timing(out) == without_timing(reference)
        summary = out.with_suffix(".summary.csv").read_bytes()
        assert summary == reference.with_suffix(".summary.csv").read_bytes()


def test_the_progress_bar_uses_the_estimates_the_parse_kept(tmp_path, monkeypatch):
    """parse_sweep loads every point's scenario to check it and keeps its estimate; the
    progress bar no longer loads them all again (about 0.2 ms a point: some 20 s on a
    100,000-point sweep before the first run)."""
    from simlab.sweeps import sweep as sw

    spec = parse_sweep(tiny())
    assert all(p.estimate is not None for p in spec.points)
    kept = [sw.point_estimate(spec, p) for p in spec.points]
    fresh = [sw.point_estimate(spec, sw._point(p.params)) for p in spec.points]  # loads again
    assert kept == fresh

    def no_loading(*args, **kwargs):
        raise AssertionError("a scenario loaded again for the progress bar")

    monkeypatch.setattr(sw, "load", no_loading)
    bar = sw._Progress(spec, spec.tasks(), spec.tasks(), serial=True)
    bar.close()
    assert bar.bar.total == sum(max(round(k[0] * 1000), 1) for k in kept) * 2


def test_a_run_matches_simulate_with_the_row_seed(tmp_path):
    out = tmp_path / "r.csv"
    frame = sweep_api(tiny(replications=1), out, workers=1, progress=False)
    row = frame.iloc[1]
    scenario = simlab.load_scenario(BASE, {"heartbeat.interval": 10.0, "seed": int(row.seed)})
    summary = simlab.simulate(scenario).summary
    for key in ("false_positives", "connected_hours", "heartbeats_sent", "breaks"):
        assert row[key] == pytest.approx(summary[key], rel=1e-12), key


# -- resume after a kill, Ctrl-C, refusing to overwrite -----------------------------------

SLOW = {
    "base": {**BASE, "name": "slow", "horizon": "4h"},
    "grid": {"heartbeat.interval": ["5s", "6s", "8s", "10s"]},
    "replications": 8,
    "seed": 11,
}
SLOW_RUNS = 32


@pytest.fixture(scope="module")
def slow_sweep(tmp_path_factory):
    """A sweep of a few seconds, and its uninterrupted CSV."""
    directory = tmp_path_factory.mktemp("slow")
    path = write_sweep(directory, SLOW)
    reference = directory / "reference.csv"
    outcome = run_sweep(parse_sweep(SLOW), reference, workers=1, progress=False)
    assert len(outcome.rows) == SLOW_RUNS and not outcome.failed
    return path, reference


def start_sweep(path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SIMLAB), "sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=path.parent,
    )


def wait_for_rows(proc: subprocess.Popen, out: Path, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while data_rows(out) < n:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (code {proc.returncode}) before it had {n} rows")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no {n} rows in {out} after {timeout} s")
        time.sleep(0.01)


def assert_valid_partial(out: Path, columns: list[str]) -> list[tuple[str, str]]:
    header, rows = read_rows(out)
    assert header == columns
    text = out.read_text()
    assert text.endswith("\n")
    assert len(list(csv.reader(text.splitlines()))) == 1 + len(rows)  # nothing torn or dropped
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys))
    assert all(r[-2] == "" for r in rows)
    return keys


def test_resume_after_kill_9_gives_the_uninterrupted_file(slow_sweep, tmp_path, capsys):
    path, reference = slow_sweep
    spec = parse_sweep(SLOW)
    out = tmp_path / "killed.csv"
    proc = start_sweep(path, out)
    try:
        wait_for_rows(proc, out, 2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    keys = assert_valid_partial(out, spec.columns)
    assert 2 <= len(keys) < SLOW_RUNS
    survivors = {(r[0], r[1]): r for r in read_rows(out)[1]}

    # without --resume: refused, the file untouched
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err
    assert out.read_bytes() == before

    # --resume (with another worker count) completes it: the uninterrupted bytes
    code = main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet", "--resume"])
    assert code == 0
    assert without_timing(out) == without_timing(reference)
    final = keys_of(out)
    assert len(final) == len(set(final)) == SLOW_RUNS
    # the rows that survived the kill were kept as they were (same wall_s), not run again
    kept = {(r[0], r[1]): r for r in read_rows(out)[1]}
    assert {k: kept[k] for k in survivors} == survivors
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["complete"] and meta["runs_this_time"] == SLOW_RUNS - len(keys)
    assert out.with_suffix(".summary.csv").read_bytes() == (
        reference.with_suffix(".summary.csv").read_bytes()
    )


def test_ctrl_c_leaves_a_valid_csv_and_names_resume(slow_sweep, tmp_path):
    path, reference = slow_sweep
    spec = parse_sweep(SLOW)
    out = tmp_path / "interrupted.csv"
    proc = start_sweep(path, out)
    try:
        wait_for_rows(proc, out, 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in err and str(out) in err
    keys = assert_valid_partial(out, spec.columns)
    assert 2 <= len(keys) < SLOW_RUNS
    order = [(t.point.id, str(t.replication)) for t in spec.tasks()]
    assert keys == sorted(keys, key=order.index)  # rewritten in point order
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["interrupted"] and not meta["complete"]
    summary = pd.read_csv(out.with_suffix(".summary.csv"))
    assert len(summary) == 4

    code = main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet", "--resume"])
    assert code == 0
    assert without_timing(out) == without_timing(reference)


def test_resume_of_a_complete_file_runs_nothing(tmp_path):
    spec = parse_sweep(tiny())
    out = tmp_path / "r.csv"
    run_sweep(spec, out, workers=1, progress=False)
    before = without_timing(out)
    outcome = run_sweep(spec, out, workers=1, progress=False, resume=True)
    assert without_timing(out) == before and not outcome.failed
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["runs_this_time"] == 0 and meta["complete"]


def test_resume_drops_torn_and_duplicated_rows(tmp_path):
    spec = parse_sweep(tiny())
    out = tmp_path / "r.csv"
    reference = tmp_path / "ref.csv"
    run_sweep(spec, reference, workers=1, progress=False)
    header, rows = read_rows(reference)
    # a file as a crash could leave it: two rows (one twice, as a second run might) and a tear
    with open(out, "w", newline="") as f:
        f.write(",".join(header) + "\n")
        lines = reference.read_text().splitlines(keepends=True)
        f.writelines([lines[2], lines[1], lines[2]])
        f.write(lines[3][:25])
    run_sweep(spec, out, workers=1, progress=False, resume=True)
    assert without_timing(out) == without_timing(reference)


def test_resume_refuses_a_file_from_another_sweep(tmp_path, capsys):
    out = tmp_path / "r.csv"
    run_sweep(parse_sweep(tiny(replications=1)), out, workers=1, progress=False)
    before = out.read_bytes()
    other = write_sweep(tmp_path, tiny(grid={"link.loss.p": [0.01]}))
    assert main(["sweep", str(other), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "another sweep" in capsys.readouterr().err
    assert out.read_bytes() == before


# -- a failing point ----------------------------------------------------------------------


def fail_at_interval(monkeypatch, interval: float, message: str = "injected failure"):
    real = simlab.engines.runner.simulate

    def flaky(scenario, *args, **kwargs):
        if scenario.heartbeat.interval == interval:
            raise RuntimeError(message)
        return real(scenario, *args, **kwargs)

    monkeypatch.setattr(simlab.engines.runner, "simulate", flaky)


def test_a_failing_point_gives_error_rows_a_nonzero_exit_and_resumes(tmp_path, capsys, monkeypatch):
    path = write_sweep(tmp_path, tiny())
    spec = parse_sweep(tiny())
    bad_id = next(p.id for p in spec.points if p.params["heartbeat.interval"] == 10.0)
    out = tmp_path / "r.csv"
    fail_at_interval(monkeypatch, 10.0)
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert bad_id in err and "failed" in err and "Traceback" not in err

    frame = pd.read_csv(out)
    assert len(frame) == 6
    bad = frame[frame.point_id == bad_id]
    assert len(bad) == 2
    assert (bad.error == "RuntimeError: injected failure").all()
    assert bad[list(METRIC_KEYS)].isna().all().all()
    good = frame[frame.point_id != bad_id]
    assert good.error.isna().all() and good.connected_hours.gt(0).all()
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["failed_points"] == [bad_id]
    summary = pd.read_csv(out.with_suffix(".summary.csv")).set_index("point_id")
    assert summary.loc[bad_id, "errors"] == 2 and summary.loc[bad_id, "replications"] == 0
    assert math.isnan(summary.loc[bad_id, "connected_hours_mean"])

    monkeypatch.undo()
    code = main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet", "--resume"])
    assert code == 0
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["runs_this_time"] == 2 and meta["failed_points"] == [] and meta["complete"]
    frame = pd.read_csv(out)
    assert frame.error.isna().all()
    assert not frame.duplicated(["point_id", "replication"]).any()
    reference = tmp_path / "ref.csv"
    run_sweep(spec, reference, workers=1, progress=False)
    assert without_timing(out) == without_timing(reference)


def test_a_failing_point_in_a_process_pool(tmp_path, monkeypatch):
    """Workers are forked from this process, so they inherit the patched simulate."""
    fail_at_interval(monkeypatch, 20.0)
    outcome = run_sweep(parse_sweep(tiny()), tmp_path / "r.csv", workers=2, progress=False)
    assert len(outcome.failed) == 1
    assert outcome.rows.error.notna().sum() == 2


def test_an_error_text_with_a_carriage_return_keeps_its_row(tmp_path, capsys, monkeypatch):
    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "r.csv"
    fail_at_interval(monkeypatch, 10.0, "first part\rsecond part")
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 1
    frame = pd.read_csv(out)
    assert len(frame) == 6 and frame.error.notna().sum() == 2


# -- the summary and the meta -------------------------------------------------------------

LOSSY = {
    **BASE,
    "name": "lossy",
    "horizon": "30m",
    "heartbeat": {"interval": "5s"},
    "detector": {"kind": "timeout", "timeout": "8s"},
    "link": {"loss": 0.3, "delay": "40ms"},
}


def test_summary_has_one_row_per_point_with_the_right_intervals(tmp_path):
    raw = {
        "base": LOSSY,
        "grid": {"detector.timeout": ["8s", "20s"]},
        "replications": 3,
        "seed": 5,
    }
    spec = parse_sweep(raw)
    out = tmp_path / "r.csv"
    frame = sweep_api(raw, out, workers=1, progress=False)
    summary = pd.read_csv(out.with_suffix(".summary.csv"))
    assert list(summary.point_id) == [p.id for p in spec.points]
    assert list(summary["detector.timeout"]) == [8.0, 20.0]
    assert (summary.replications == 3).all() and (summary.errors == 0).all()
    # per-run bounds are not averaged: the pooled interval replaces them
    assert not [c for c in summary.columns if any(c.startswith(f"{k}_") for k in PER_RUN_ONLY)]
    assert frame.false_positives.sum() > 0  # the intervals below are not all about zero

    for _, row in summary.iterrows():
        runs = frame[frame.point_id == row.point_id]
        # the rate: pooled count over pooled exposure, Garwood interval
        count = int(runs.false_positives.sum())
        exposure = float(runs.connected_hours.sum())
        assert row.fp_per_conn_hour_mean == pytest.approx(count / exposure, rel=1e-12)
        low, high = poisson_interval(count, exposure)
        assert row.fp_per_conn_hour_ci_low == pytest.approx(low, rel=1e-12, abs=0)
        assert row.fp_per_conn_hour_ci_high == pytest.approx(high, rel=1e-12)
        for key in sorted(COUNT_KEYS):
            values = runs[key]
            if values.isna().all():  # a key these runs do not produce (an adaptive policy's)
                assert math.isnan(row[f"{key}_mean"]), key
                continue
            low, high = poisson_interval(int(values.sum()), len(values))
            assert row[f"{key}_mean"] == pytest.approx(values.mean(), rel=1e-12), key
            assert row[f"{key}_ci_low"] == pytest.approx(low, rel=1e-12, abs=0), key
            assert row[f"{key}_ci_high"] == pytest.approx(high, rel=1e-12), key
            assert low <= values.mean() <= high
        continuous = [k for k in METRIC_KEYS if k not in COUNT_KEYS and k not in RATE_KEYS]
        continuous = [k for k in continuous if k not in PER_RUN_ONLY]
        checked = 0
        for key in continuous:
            values = runs[key].dropna()
            mean, low, high = (row[f"{key}_{s}"] for s in ("mean", "ci_low", "ci_high"))
            if values.empty:
                assert math.isnan(mean) and math.isnan(low) and math.isnan(high), key
                continue
            assert mean == pytest.approx(values.mean(), rel=1e-12), key
            if len(values) >= 2:
                slack = 1e-12 * max(1.0, abs(mean))
                assert values.min() - slack <= low <= mean + slack, key
                assert mean - slack <= high <= values.max() + slack, key
                checked += 1
        assert checked >= 10


def test_meta_records_the_provenance(tmp_path):
    raw = tiny()
    path = write_sweep(tmp_path, raw)
    out = tmp_path / "data" / "r.csv"
    before = time.time()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    for key in [
        "sweep",
        "sweep_text",
        "simlab",
        "engine",
        "seed",
        "started",
        "ended",
        "host",
        "wall_s",
        "executor",
        "failed_points",
        "complete",
        "git_revision",
        "points",
        "replications",
        "runs",
    ]:
        assert key in meta, key
    assert meta["sweep"] == str(path)
    assert meta["sweep_text"] == path.read_text()
    assert meta["simlab"] == simlab.__version__
    assert meta["engine"] == "simpy" and meta["seed"] == 3
    assert meta["points"] == 3 and meta["replications"] == 2 and meta["runs"] == 6
    assert meta["host"] == socket.gethostname()
    assert meta["executor"] == "serial"
    assert meta["failed_points"] == [] and meta["complete"] is True
    assert meta["interrupted"] is False
    started = pd.Timestamp(meta["started"])
    ended = pd.Timestamp(meta["ended"])
    assert started.tzinfo is not None
    assert before - 1 <= started.timestamp() <= ended.timestamp() <= time.time() + 1
    assert 0 <= meta["wall_s"] <= (ended - started).total_seconds() + 1


def test_simlab_sweep_returns_the_tidy_frame_with_its_summary(tmp_path):
    out = tmp_path / "r.csv"
    frame = sweep_api(tiny(), out, workers=1, progress=False)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == parse_sweep(tiny()).columns
    assert len(frame) == 6
    assert list(frame.replication) == [0, 1] * 3
    assert frame.seed.dtype.kind in "ui" and frame["heartbeat.interval"].tolist() == [
        5.0,
        5.0,
        10.0,
        10.0,
        20.0,
        20.0,
    ]
    summary = frame.attrs["summary"]
    assert isinstance(summary, pd.DataFrame) and len(summary) == 3
    assert frame.attrs["failed_points"] == []
    on_disk = pd.read_csv(out.with_suffix(".summary.csv"))
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), on_disk, check_dtype=False)
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert yaml.safe_load(meta["sweep_text"]) == tiny()


def test_simlab_sweep_from_a_fresh_interpreter(tmp_path):
    """The public entry point, as a notebook would call it first."""
    script = (
        "import json, sys, simlab\n"
        "frame = simlab.sweep(json.loads(sys.argv[1]), sys.argv[2], workers=1, progress=False)\n"
        "print(json.dumps([type(frame).__name__, len(frame), len(frame.attrs['summary'])]))\n"
    )
    out = tmp_path / "r.csv"
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(tiny()), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["DataFrame", 6, 3]
    assert out.with_suffix(".summary.csv").exists()


def test_simlab_sweep_stays_callable_after_the_module_is_imported(tmp_path):
    import simlab.sweeps.sweep  # noqa: F401 - what the first simlab.sweep(...) call does

    frame = simlab.sweep(tiny(replications=1), tmp_path / "r.csv", workers=1, progress=False)
    assert len(frame) == 3


def test_simlab_sweep_accepts_a_file_and_resolves_the_base_beside_it(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = write_sweep(tmp_path / "sweeps", tiny(base="../base.yaml", replications=1))
    frame = sweep_api(path, tmp_path / "r.csv", workers=1, progress=False)
    assert len(frame) == 3 and frame.error.isna().all()


# -- a real Dask cluster on loopback ------------------------------------------------------


def _stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM the process (its nanny takes its worker down), then SIGKILL its whole group."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # anything left in the group we created (a worker the nanny forked)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=timeout)


def test_a_real_dask_scheduler_and_worker_on_loopback(tmp_path, capsys):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    if not DASK.exists() and shutil.which("dask") is None:
        pytest.skip("no dask command beside the Python interpreter")
    dask = str(DASK if DASK.exists() else shutil.which("dask"))
    raw = tiny()
    path = write_sweep(tmp_path, raw)
    reference = tmp_path / "serial.csv"
    run_sweep(parse_sweep(raw), reference, workers=1, progress=False)

    scheduler_file = tmp_path / "scheduler.json"
    with (
        open(tmp_path / "scheduler.log", "w") as scheduler_log,
        open(tmp_path / "worker.log", "w") as worker_log,
    ):
        scheduler = worker = None
        try:
            scheduler = subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                stdout=scheduler_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=tmp_path,
            )
            deadline = time.monotonic() + 30
            address = None
            while address is None:
                if scheduler.poll() is not None:
                    pytest.fail(
                        f"dask scheduler exited: {(tmp_path / 'scheduler.log').read_text()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail("dask scheduler did not write its scheduler file within 30 s")
                try:
                    address = json.loads(scheduler_file.read_text())["address"]
                except (OSError, ValueError, KeyError):
                    time.sleep(0.1)
            assert address.startswith("tcp://127.0.0.1:")

            worker = subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=tmp_path,
            )
            from distributed import Client

            with Client(address, timeout="30s") as client:
                client.wait_for_workers(1, timeout=30)
                workers = client.scheduler_info()["workers"]
                assert all(w.startswith("tcp://127.0.0.1:") for w in workers)

            out = tmp_path / "dask.csv"
            capsys.readouterr()
            code = main(
                ["sweep", str(path), "--out", str(out), "--dask-scheduler", address, "--quiet"]
            )
            assert code == 0, capsys.readouterr().err
            assert without_timing(out) == without_timing(reference)
            assert (
                out.with_suffix(".summary.csv").read_bytes()
                == reference.with_suffix(".summary.csv").read_bytes()
            )
            meta = json.loads(out.with_suffix(".meta.json").read_text())
            assert meta["executor"] == "dask" and meta["complete"]
        finally:
            _stop(worker)
            _stop(scheduler)
    for proc in (worker, scheduler):
        assert proc.poll() is not None
        assert _group_gone(proc.pid), f"processes of group {proc.pid} are left behind"


def _group_gone(pgid: int, timeout: float = 10) -> bool:
    """True once no process of the group is left (orphans are reaped by init, not at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# -- rare-event mode ------------------------------------------------------------------------

# k = 3 missed pongs over datagrams: 1e-7 to 1e-6 false positives per round, where the
# analytic engine is exact
RARE_BASE = {
    "name": "rare",
    "seed": 0,
    "heartbeat": {"interval": "30s"},
    "detector": {
        "kind": "missed",
        "missed": {"k": 3, "ack_timeout": "10s"},
        "on_declare": "monitor",
    },
    "link": {"transport": "datagram", "loss": 0.005, "delay": "40ms"},
}


def rare_sweep(**extra) -> dict:
    sweep = {
        "base": RARE_BASE,
        "grid": {"link.loss.p": [0.003, 0.005]},
        "replications": 2,
        "seed": 7,
        "rare": {"rel_error": 0.1, "max_wall": "30s"},
    }
    sweep.update(extra)
    return sweep


def test_rare_mode_estimates_every_point_and_pools_the_replications(tmp_path, capsys):
    from simlab.engines import rare
    from simlab.engines.analytic import chain as analytic
    from simlab.scenario.reader import load

    raw = rare_sweep()
    spec = parse_sweep(raw)
    assert spec.engine == "fast" and spec.rare.rel_error == 0.1 and spec.rare.max_wall == 30
    out = tmp_path / "r.csv"
    frame = sweep_api(raw, out, workers=1, progress=False)
    header, _ = read_rows(out)
    assert header == [
        "point_id",
        "replication",
        "seed",
        "link.loss.p",
        *rare.METRIC_KEYS,
        "engine",  # which engine ran the row (issue 18): the fast one, in rare-event mode
        "error",
        "wall_s",
    ]
    assert (frame.engine == "fast").all()
    assert frame.error.isna().all() and not frame.rare_event_budget_exhausted.any()
    assert (frame.rare_event_rel_half_width <= 0.1).all()
    summary = pd.read_csv(out.with_suffix(".summary.csv"))
    for _, row in summary.iterrows():
        runs = frame[frame.point_id == row.point_id]
        assert row.fp_per_conn_hour_mean == pytest.approx(runs.fp_per_conn_hour.mean(), rel=1e-12)
        # independent unbiased estimates: the mean's standard error from theirs
        se_hour = 3600 * np.sqrt((runs.mistake_rate_per_s_se**2).sum()) / len(runs)
        assert row.fp_per_conn_hour_ci_high - row.fp_per_conn_hour_mean == pytest.approx(
            1.96 * se_hour, rel=1e-9
        )
        assert row.fp_per_round_ci_high / row.fp_per_round_mean == pytest.approx(
            row.fp_per_conn_hour_ci_high / row.fp_per_conn_hour_mean, rel=1e-9
        )
        scenario, _ = load(RARE_BASE, {"link.loss.p": row["link.loss.p"]})
        exact = analytic.run(scenario)["fp_per_conn_hour"]
        assert 1e-7 < exact * 30 / 3600 < 1e-5  # per round: rare
        assert abs(row.fp_per_conn_hour_mean - exact) <= 4 * se_hour, (
            row.fp_per_conn_hour_mean,
            exact,
        )
    # the same seed, the same figures (no run exhausted its budget)
    again = tmp_path / "again.csv"
    sweep_api(raw, again, workers=1, progress=False)
    assert without_timing(again) == without_timing(out)
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["rare"] == {"rel_error": 0.1, "max_wall": 30.0} and meta["engine"] == "fast"
    # the chooser needs detection latency and costs, which a rare sweep has not: it says so
    bounds = ["--max-detection", "60s", "--max-false-disconnects", "1/conn-month"]
    assert main(["choose", str(out), *bounds]) == 2
    assert "rare-event sweep (rare:) has false-positive rates only" in capsys.readouterr().err


RARE_BAD = [
    ("rare not a mapping", {"rare": 0.1}, ["rare", "mapping"]),
    ("rel_error out of range", {"rare": {"rel_error": 1.5}}, ["rare.rel_error", "1.5"]),
    ("rel_error missing", {"rare": {"max_wall": "10s"}}, ["rare.rel_error", "None"]),
    (
        "bad max_wall and unknown key",
        {"rare": {"rel_error": 0.1, "max_wall": "soon", "budget": 3}},
        ["rare.max_wall", "soon", "budget"],
    ),
    ("max_wall not above 0", {"rare": {"rel_error": 0.1, "max_wall": 0}}, ["rare.max_wall"]),
    ("another engine", {"engine": "simpy"}, ["engine", "fast"]),
    (
        "a point the estimator does not cover",
        {
            "grid": {
                "link.transport": ["datagram", "tcp"],
                "link.delay": [{"dist": "exponential", "mean": "40ms"}],
            }
        },
        ["rare", "'link.transport': 'tcp'", "random delays"],
    ),
    ("crashes", {"base": {**RARE_BASE, "peer": {"crash": {"mtbf": "1h"}}}}, ["rare", "peer.crash"]),
    ("an infinite budget", {"rare": {"rel_error": 0.1, "max_wall": ".inf"}}, ["rare.max_wall"]),
    (
        "a bad value and an uncovered point, each under its own key",
        {
            "grid": {
                "link.loss.p": [2, 0.01],
                "link.transport": ["tcp"],
                "link.delay": [{"dist": "exponential", "mean": "40ms"}],
            }
        },
        ["- link.loss.p: ", "- rare: does not cover the point", "random delays"],
    ),
    ("a fleet file", {"base": {"kind": "fleet", "clients": 5}, "grid": {}}, ["rare", "fleet"]),
]


@pytest.mark.parametrize(
    "changes, expected", [b[1:] for b in RARE_BAD], ids=[b[0] for b in RARE_BAD]
)
def test_bad_rare_sweeps_are_rejected_before_any_run(changes, expected):
    with pytest.raises(SweepError) as info:
        parse_sweep(rare_sweep(**changes))
    text = str(info.value)
    for part in expected:
        assert part in text, (part, text)


def test_a_bad_rare_sweep_exits_2_with_every_problem(tmp_path, capsys):
    path = write_sweep(tmp_path, rare_sweep(engine="analytic", rare={"rel_error": 0}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "rare.rel_error" in err and "engine" in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_resume_refuses_rows_made_otherwise(tmp_path):
    """Same columns, same points: only the provenance tells a 30 % estimate from a 10 % one."""
    out = tmp_path / "r.csv"
    loose = rare_sweep(replications=1, rare={"rel_error": 0.3, "max_wall": "30s"})
    run_sweep(parse_sweep(loose), out, workers=1, progress=False)
    before = out.read_bytes()
    tight = parse_sweep(rare_sweep(replications=1))
    with pytest.raises(SweepError) as info:
        run_sweep(tight, out, workers=1, progress=False, resume=True)
    assert "rare" in str(info.value) and "0.3" in str(info.value)
    assert out.read_bytes() == before
    # the plain engines too: rows of the model and of another engine do not mix
    plain = tmp_path / "plain.csv"
    run_sweep(parse_sweep(tiny(replications=1)), plain, workers=1, progress=False)
    with pytest.raises(SweepError, match="engine 'simpy', this sweep has 'auto'"):
        run_sweep(parse_sweep(tiny(replications=1, engine="auto")), plain, resume=True)


def test_a_rare_sweeps_rows_read_as_a_frame_get_the_rare_message(tmp_path):
    from simlab.sweeps import data as sweepdata

    frame = sweep_api(rare_sweep(replications=1), tmp_path / "r.csv", workers=1, progress=False)
    with pytest.raises(sweepdata.SweepDataError, match="rare-event sweep"):
        sweepdata.read(pd.DataFrame(frame))  # the rows alone, without attrs["summary"]


# -- a damaged output given to --resume, SIGTERM ------------------------------------------


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (b"[1, 2]", "expected a JSON object"),
        (b'\xff{"engine": "simpy"}', "not readable JSON"),
        (b'{"engine": ["simpy"], "seed": 1e400}', "key engine"),
    ],
)
def test_resume_with_a_damaged_meta_exits_2_and_keeps_the_rows(tmp_path, capsys, meta, expected):
    path = write_sweep(tmp_path, tiny(replications=1))
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    out.with_suffix(".meta.json").write_bytes(meta)
    before = out.read_bytes()
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "r.meta.json" in err and expected in err and "Traceback" not in err
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e400", "whole number"), ("plenty", "not a number"), ("-2", "whole number >= 0")],
)
def test_resume_with_a_damaged_row_exits_2_naming_the_column(tmp_path, capsys, value, expected):
    path = write_sweep(tmp_path, tiny(replications=1))
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    header, rows = read_rows(out)
    rows[1][header.index("false_positives")] = value
    out.write_text("".join(",".join(r) + "\n" for r in [header, *rows]))
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "column false_positives" in err and expected in err and "row 2" in err
    assert "Traceback" not in err and "--resume" in err


def test_the_summary_of_an_overflowing_count_is_nan_not_a_crash():
    spec = parse_sweep(tiny(replications=2))
    rows = pd.DataFrame(
        [
            {"point_id": p.id, "replication": r, "error": math.nan, "false_positives": 1e308}
            | {"connected_hours": 1.0, "breaks": 1e308 if r else math.inf}
            for p in spec.points
            for r in range(2)
        ]
    )
    summary = summarize_sweep(rows, spec)
    assert summary["breaks_ci_high"].isna().all()
    assert summary["fp_per_conn_hour_mean"].isna().all()


def test_sigterm_ends_a_sweep_as_ctrl_c_does(slow_sweep, tmp_path):
    path, reference = slow_sweep
    out = tmp_path / "terminated.csv"
    proc = start_sweep(path, out)
    try:
        wait_for_rows(proc, out, 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    keys = assert_valid_partial(out, parse_sweep(SLOW).columns)
    assert 2 <= len(keys) < SLOW_RUNS
    assert json.loads(out.with_suffix(".meta.json").read_text())["interrupted"]
    code = main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet", "--resume"])
    assert code == 0
    assert without_timing(out) == without_timing(reference)


# -- impossible points, the size cap, the work budget, workers that die with the sweep ------

# intervals crossed with timeouts: (50 s, 30 s), (70 s, 30 s) and (70 s, 60 s) cannot work
CROSSED = tiny(
    grid={"heartbeat.interval": ["10s", "25s", "50s", "70s"], "detector.timeout": [30, 60, 120]},
    replications=1,
)
IMPOSSIBLE = {(50.0, 30), (70.0, 30), (70.0, 60)}


def pairs(points) -> set[tuple]:
    return {(p["heartbeat.interval"], p["detector.timeout"]) for p in points}


def test_impossible_combinations_are_left_out_listed_and_the_rest_run(tmp_path, capsys):
    spec = parse_sweep(CROSSED)
    assert (
        pairs(p.params for p in spec.points)
        == {(i, t) for i in (10.0, 25.0, 50.0, 70.0) for t in (30, 60, 120)} - IMPOSSIBLE
    )
    assert pairs(e["params"] for e in spec.left_out) == IMPOSSIBLE
    assert all("not longer than heartbeat.interval" in e["reasons"][0] for e in spec.left_out)

    path = write_sweep(tmp_path, CROSSED)
    out = tmp_path / "crossed.csv"
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "3 of 12 points left out" in err and "3 points, e.g." in err
    assert str(out.with_suffix(".meta.json")) in err
    frame = pd.read_csv(out)
    assert len(frame) == 9 and frame.error.isna().all()
    ran = set(zip(frame["heartbeat.interval"], frame["detector.timeout"], strict=True))
    assert not ran & IMPOSSIBLE
    assert len(pd.read_csv(out.with_suffix(".summary.csv"))) == 9
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["points"] == 9 and meta["points_left_out"] == 3 and meta["runs"] == 9
    assert pairs(e["params"] for e in meta["left_out"]) == IMPOSSIBLE
    assert {e["point_id"] for e in meta["left_out"]} == {e["point_id"] for e in spec.left_out}

    # --resume leaves out the same points and completes the file to the same bytes
    reference = without_timing(out)
    header, rows = read_rows(out)
    with open(out, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows[:4]])
    code = main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet", "--resume"])
    assert code == 0
    assert without_timing(out) == reference
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["runs_this_time"] == 5 and meta["points_left_out"] == 3
    assert "3 of 12 points left out" in capsys.readouterr().err

    # --strict: today's refusal, before any file is written
    strict = tmp_path / "strict.csv"
    assert main(["sweep", str(path), "--out", str(strict), "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("not longer than heartbeat.interval") == 3
    assert not strict.exists()


def test_the_python_sweep_leaves_out_or_refuses_with_strict(tmp_path):
    frame = sweep_api(CROSSED, tmp_path / "a.csv", workers=1, progress=False)
    assert len(frame) == 9
    assert pairs(e["params"] for e in frame.attrs["left_out"]) == IMPOSSIBLE
    with pytest.raises(SweepError, match="not longer than heartbeat.interval"):
        sweep_api(CROSSED, tmp_path / "b.csv", workers=1, progress=False, strict=True)
    assert not (tmp_path / "b.csv").exists()
    nothing = sweep_api(tiny(replications=1), tmp_path / "c.csv", workers=1, progress=False)
    assert nothing.attrs["left_out"] == []
    meta = json.loads((tmp_path / "c.meta.json").read_text())
    assert meta["points_left_out"] == 0 and meta["left_out"] == []


@pytest.mark.parametrize(
    "grid, named",
    [
        # 200 s is longer than every timeout: no point with it could run
        ({"heartbeat.interval": ["10s", "200s"], "detector.timeout": [30, 60]}, "(200s)"),
        # every point impossible
        ({"heartbeat.interval": ["50s", "70s"], "detector.timeout": [30, 40]}, "(50s)"),
        # a value bad on its own, and one that only some partners allow
        (
            {"heartbeat.interval": ["10s", "-5s", "50s"], "detector.timeout": [30, 60]},
            "-5.0 is not allowed: must be a positive duration",
        ),
    ],
    ids=["a value with no possible partner", "every point", "a bad value"],
)
def test_what_is_not_a_combination_stays_an_error(grid, named):
    with pytest.raises(SweepError) as info:
        parse_sweep(tiny(grid=grid))
    assert named in str(info.value)
    if "-5.0" in named:  # the error is the bad value: (50 s, 30 s) alone would be left out
        assert len(info.value.problems) == 1


def test_sampled_values_are_left_out_in_combination_and_refused_alone():
    both = {"heartbeat.interval": [5, 40], "detector.timeout": [20, 60]}
    spec = parse_sweep(tiny(grid={}, sample={"method": "lhs", "count": 16, "ranges": both}))
    assert spec.left_out and spec.points
    assert all(
        p["heartbeat.interval"] < p["detector.timeout"] for p in (q.params for q in spec.points)
    )
    assert all(
        e["params"]["heartbeat.interval"] >= e["params"]["detector.timeout"] for e in spec.left_out
    )
    assert len(spec.points) + len(spec.left_out) == 16
    # a loss probability above 1 is bad whatever it is paired with
    loss = {"link.loss.p": [0.5, 1.5]}
    with pytest.raises(SweepError, match="link.loss.p"):
        parse_sweep(tiny(grid={}, sample={"method": "lhs", "count": 8, "ranges": loss}))


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"grid": {"heartbeat.interval": list(range(1, 2501)), "link.loss.p": [0.001] * 2500}},
            "6,250,000 points",
        ),
        ({"replications": 10**9}, "3,000,000,000 runs"),
        ({"sample": {**SAMPLE_OK, "count": 10**7}}, "sample.count"),
    ],
    ids=["a 6.25 M-point grid", "1e9 replications", "1e7 samples"],
)
def test_huge_sweeps_are_refused_from_the_lengths_alone(tmp_path, capsys, changes, expected):
    raw = {**tiny(), **changes}
    started = time.perf_counter()
    with pytest.raises(SweepError) as info:
        parse_sweep(raw)
    assert time.perf_counter() - started < 10  # the points were never made
    assert expected in str(info.value)
    path = write_sweep(tmp_path, raw)
    out = tmp_path / "huge.csv"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
    assert expected in capsys.readouterr().err and not out.exists()


def test_the_sweep_budget_refuses_before_any_run_and_force_overrides(tmp_path, capsys):
    from simlab.sweeps.sweep import estimate_sweep

    spec = parse_sweep(SLOW)
    one, two = estimate_sweep(spec, 1), estimate_sweep(spec, 2)
    assert one.runs == two.runs == SLOW_RUNS and one.engines == ("simpy",)
    assert two.seconds == pytest.approx(one.seconds / 2)
    assert estimate_sweep(spec, 1, done=SLOW_RUNS - 4).seconds == pytest.approx(one.seconds / 8)
    assert estimate_sweep(spec, 64).workers == SLOW_RUNS  # no more workers than runs

    path = write_sweep(tmp_path, tiny())
    out = tmp_path / "b.csv"
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--budget", "1ms"]) == 2
    err = capsys.readouterr().err
    assert "the sweep takes about" in err and "6 runs" in err and "over the 0.001s budget" in err
    assert "fewer points or replications" in err and "--force" in err
    assert not out.exists()
    args = ["sweep", str(path), "--out", str(out), "--quiet", "--budget", "1ms", "--force"]
    assert main([*args, "--workers", "1"]) == 0 and len(pd.read_csv(out)) == 6


def test_the_demo_sweep_is_within_the_budget_on_two_cores():
    from simlab.engines import registry
    from simlab.sweeps.sweep import estimate_sweep, load_sweep

    spec = load_sweep(ROOT / "examples" / "sweeps" / "default-question.yaml")
    work = estimate_sweep(spec, 2)
    # the fast engine covers it (outages, crashes, TCP bytes): seconds on 2 cores, not worth
    # announcing (on the model it took 1-2 minutes)
    assert work.seconds < registry.NOTICE_S
    assert work.runs == 192 and work.engines == ("fast",)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie, dead and waiting to be reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_pool_workers_die_with_a_coordinator_killed_by_sigkill(tmp_path):
    raw = {**SLOW, "base": {**SLOW["base"], "horizon": "2d"}, "replications": 16}
    path = write_sweep(tmp_path, raw)
    out = tmp_path / "orphans.csv"
    proc = subprocess.Popen(
        [str(SIMLAB), "sweep", str(path), "--out", str(out), "--workers", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(workers) < 2:
            assert proc.poll() is None, f"the sweep ended (code {proc.returncode})"
            assert time.monotonic() < deadline, "no 2 workers after 30 s"
            time.sleep(0.05)
            workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], "workers outlived their coordinator"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # only the workers of the sweep started here, by PID
            if _alive(w):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w, signal.SIGKILL)


def test_a_worker_whose_coordinator_is_already_gone_ends_at_once():
    import multiprocessing

    from simlab.sweeps.sweep import _die_with

    worker = multiprocessing.get_context("fork").Process(target=_die_with, args=(-1,))
    worker.start()
    worker.join(timeout=10)
    assert worker.exitcode == 1


def test_the_points_scenario_warnings_are_printed_once_each(tmp_path, capsys):
    """A sweep says what `simlab check` would warn about its points, each warning once."""
    base = tmp_path / "base.yaml"
    base.write_text("connections: 1\nhorizon: 2m\nlink: {loss: {p: 0.6}}\n")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"base: {base}\ngrid:\n  heartbeat.interval: [10s, 20s]\nengine: fast\n")
    assert main(["sweep", str(sweep_file), "--out", str(tmp_path / "s.csv"), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: link.loss: a mean loss of 0.6 is over 50 %") == 1


# -- which engine ran each point -----------------------------------------------------------


def test_rows_summary_and_meta_say_which_engine_ran(tmp_path):
    out = tmp_path / "r.csv"
    run_sweep(parse_sweep(tiny(replications=2, engine="auto")), out, workers=1, progress=False)
    rows = pd.read_csv(out)
    assert "engine" in rows.columns and rows["engine"].notna().all()
    ran = set(rows["engine"])
    assert ran <= {"analytic", "fast", "simpy"}
    summary = pd.read_csv(out.with_suffix(".summary.csv"))
    assert set(summary["engine"]) == ran  # one engine per point: its replications agree
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["engine"] == "auto"
    assert sum(v["points"] for v in meta["engines"].values()) == 3
    assert sum(v["runs"] for v in meta["engines"].values()) == 6


def test_a_points_engines_are_listed_when_its_replications_differ():
    from simlab.sweeps.sweep import point_engine

    assert point_engine(["fast", "fast"]) == "fast"
    assert point_engine(["fast", "simpy", "fast", float("nan")]) == "fast (2), simpy (1)"
    assert point_engine([float("nan")]) == ""


@pytest.mark.parametrize("engine", ["simpy", "auto"])
def test_resume_of_a_file_from_before_the_engine_column(tmp_path, capsys, engine):
    """A file written before the engine column resumes: its rows get the sweep's engine
    (blank under auto, where it was not recorded) and the new rows their own."""
    spec = parse_sweep(tiny(replications=1, engine=engine))
    out = tmp_path / "r.csv"
    run_sweep(spec, out, workers=1, progress=False)
    header, rows = read_rows(out)
    at = header.index("engine")
    old = [r[:at] + r[at + 1 :] for r in rows[:2]]  # the first two points, without the column
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows([header[:at] + header[at + 1 :], *old])
    run_sweep(spec, out, workers=1, progress=False, resume=True)
    assert "written before the engine column" in capsys.readouterr().err
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == spec.columns and len(frame) == 3
    assert frame["engine"].iloc[2] in {"analytic", "fast", "simpy"}  # run now: recorded
    assert list(frame["engine"].iloc[:2]) == (["simpy"] * 2 if engine == "simpy" else ["", ""])
