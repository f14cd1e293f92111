"""A finished sweep as data: its summary per point, which keys are settings and which are
conditions, the false-disconnect figures, and the worst case of each setting over the conditions.

The chooser, the plots and the report all read sweeps through :func:`read`, so they agree
on what a sweep says. A sweep's varied keys split in two: *settings* (``heartbeat.*`` and
``detector.*``: what the user picks) and *conditions* (everything else: loss, outages, NAT
timeouts, network names: what the user lives with). A setting is judged by its worst
condition, so a recommendation holds on every network the sweep covers.

Derived figures (pooled over replications, exact Poisson 95 % intervals):

- ``false_disconnects_per_conn_hour``: false positives (declarations on live connections)
  plus NAT/load-balancer idle expiries: disconnects the heartbeat settings caused, of
  connections whose peer was fine;
- ``nat_breaks_per_conn_hour``: the idle expiries alone.

A sweep whose base is a fleet file (``kind: fleet``) has the reconnect storm's figures
instead (:data:`simlab.fleet.model.FLEET_METRIC_KEYS`: attempts, time to reconnect, messages
lost); :attr:`SweepData.has_fleet` and :attr:`SweepData.has_heartbeat` say which a sweep holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simlab.engines.analytic.theory import poisson_interval
from simlab.engines.metrics import METRIC_KEYS
from simlab.engines.rare import METRIC_KEYS as RARE_METRIC_KEYS
from simlab.errors import Problem, ScenarioError
from simlab.fleet.model import FLEET_METRIC_KEYS
from simlab.io import OUTPUT_LIMIT, read_text
from simlab.scenario.reader import safe_yaml

SETTING_PREFIXES = ("heartbeat.", "detector.")
LEAD = ("point_id", "replication", "seed")
TAIL = ("engine", "error", "wall_s")  # engine: which engine ran the row (simlab.sweeps.sweep)
SUMMARY_EXTRA = ("point_id", "replications", "errors", "engine")
SUFFIXES = ("_mean", "_ci_low", "_ci_high")
HEARTBEAT_NEEDED = ("connected_hours_mean", "false_positives_mean")
FLEET_NEEDED = ("attempts_total_mean", "time_to_50pct_reconnected_s_mean")
# derived rates: name -> the count keys they add up (over connected_hours)
DERIVED = {
    "false_disconnects_per_conn_hour": ("false_positives", "breaks_nat"),
    "nat_breaks_per_conn_hour": ("breaks_nat",),
}


class SweepDataError(ScenarioError):
    """A file that is not a sweep's output (or one the reader cannot use): every problem."""


@dataclass(frozen=True)
class SweepData:
    """One sweep's results: ``summary`` has one row per point, each metric as
    ``<key>_mean``, ``<key>_ci_low``, ``<key>_ci_high`` (95 %), plus the varied keys."""

    summary: pd.DataFrame = field(repr=False)
    settings: tuple[str, ...]
    conditions: tuple[str, ...]
    source: str = "sweep"
    meta: dict | None = field(default=None, repr=False)
    base: dict | None = field(default=None, repr=False)  # the base scenario mapping, if found
    base_source: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return self.settings + self.conditions

    @property
    def replications(self) -> int:
        return int(self.summary["replications"].max()) if len(self.summary) else 0

    @property
    def has_heartbeat(self) -> bool:
        """Whether the sweep has heartbeat figures (false disconnects, detection, cost)."""
        return has_heartbeat(self.summary)

    @property
    def has_fleet(self) -> bool:
        """Whether the sweep has reconnect-storm figures (its base was a fleet file)."""
        return has_fleet(self.summary)

    def worst_case(self) -> pd.DataFrame:
        """One row per setting: each figure (mean and both bounds) the worst, i.e. the highest,
        over the conditions, and ``worst_condition``: where its false disconnects peak."""
        return worst_case(self.summary, self.settings, self.conditions)


def has_heartbeat(frame: pd.DataFrame) -> bool:
    return all(c in frame for c in HEARTBEAT_NEEDED)


def has_fleet(frame: pd.DataFrame) -> bool:
    return all(c in frame for c in FLEET_NEEDED)


def is_setting(key: str) -> bool:
    return key.startswith(SETTING_PREFIXES)


def _metric_columns(columns) -> set[str]:
    out = set()
    for key in (*METRIC_KEYS, *FLEET_METRIC_KEYS, *RARE_METRIC_KEYS, *DERIVED):
        out |= {key + s for s in SUFFIXES}
    return out & set(columns)


def _summary_keys(frame: pd.DataFrame) -> list[str]:
    skip = _metric_columns(frame.columns) | set(SUMMARY_EXTRA)
    return [c for c in frame.columns if c not in skip and not c.endswith(SUFFIXES)]


def _tidy_keys(frame: pd.DataFrame) -> list[str]:
    fleet = all(k in frame for k in ("attempts_total", "time_to_50pct_reconnected_s"))
    skip = set(FLEET_METRIC_KEYS if fleet else (*METRIC_KEYS, *RARE_METRIC_KEYS))
    skip |= set(LEAD) | set(TAIL)
    return [c for c in frame.columns if c not in skip and not _duplicate(c, frame.columns)]


def _duplicate(column: str, columns) -> bool:
    """pandas' name for a repeated CSV column (``clients.1``: a varied key that is also a figure)."""
    stem, _, tail = column.rpartition(".")
    return tail.isdigit() and stem in columns


def is_summary(frame: pd.DataFrame) -> bool:
    return any(c.endswith("_mean") for c in frame.columns) and "replication" not in frame.columns


def summarize(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A tidy frame (one row per point and replication) summarized as the sweep runner does."""
    from simlab.sweeps.sweep import Point, SweepSpec, summarize_sweep

    rows = rows.copy()
    keys = _tidy_keys(rows)
    if "error" not in rows:
        rows["error"] = np.nan
    rows["error"] = rows["error"].where(rows["error"].astype(str).str.strip() != "", np.nan)
    if "point_id" not in rows:  # hand-made rows: a point is a combination of the varied keys
        labels = rows[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", rows.index)
        rows["point_id"] = pd.factorize(labels)[0].astype(str)
    points = []
    for pid, group in rows.groupby("point_id", sort=False):
        points.append(Point(str(pid), {k: group[k].iloc[0] for k in keys}))
    rows["point_id"] = rows["point_id"].astype(str)
    fleet = all(k in rows for k in ("attempts_total", "time_to_50pct_reconnected_s"))
    base = {"kind": "fleet"} if fleet else {}  # which figures a run reports
    spec = SweepSpec("sweep", base, tuple(keys), tuple(points), 1, "simpy", seed)
    return summarize_sweep(rows, spec)


def add_derived(summary: pd.DataFrame) -> pd.DataFrame:
    """Add the derived rates (pooled counts over pooled exposure, Poisson intervals)."""
    out = summary.copy()
    reps = out["replications"] if "replications" in out else pd.Series(1, index=out.index)
    hours = out.get("connected_hours_mean")
    for name, counts in DERIVED.items():
        mean, low, high = [], [], []
        for i in out.index:
            exposure = float(hours[i] * reps[i]) if hours is not None else math.nan
            parts = [out.at[i, f"{c}_mean"] if f"{c}_mean" in out else math.nan for c in counts]
            if counts[0] == "false_positives" and len(parts) > 1 and pd.isna(parts[1]):
                parts[1] = 0.0  # an engine without NAT figures: its false positives alone
            known = not any(pd.isna(p) for p in parts)
            total = sum(float(p) for p in parts) * float(reps[i]) if known else math.nan
            if not (0 < exposure < math.inf and 0 <= total < math.inf):  # NaN: no figure
                mean.append(math.nan), low.append(math.nan), high.append(math.nan)
                continue
            count = int(round(total))
            lo, hi = poisson_interval(count, exposure)
            mean.append(count / exposure), low.append(lo), high.append(hi)
        out[f"{name}_mean"], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = mean, low, high
    return out


def worst_case(summary: pd.DataFrame, settings, conditions) -> pd.DataFrame:
    """Per setting, every metric column's maximum over the conditions (the worst case)."""
    settings = list(settings)
    conditions = [c for c in conditions if summary[c].nunique(dropna=False) > 1]  # varied
    metric_cols = [c for c in summary.columns if c.endswith(SUFFIXES)]
    if not settings:
        frame = summary.assign(_setting=0)
        group_keys = ["_setting"]
    else:
        frame, group_keys = summary, settings
    rows = []
    for _, group in frame.groupby(group_keys, sort=False, dropna=False):
        row = {k: group[k].iloc[0] for k in settings}
        row["points"] = len(group)
        row["replications"] = int(group["replications"].min()) if "replications" in group else 1
        for c in metric_cols:
            values = pd.to_numeric(group[c], errors="coerce")
            row[c] = float(values.max()) if values.notna().any() else math.nan
        fd = "false_disconnects_per_conn_hour_ci_high"
        if conditions and fd in group and group[fd].notna().any():
            row["worst_condition"] = condition_label(group.loc[group[fd].idxmax()], conditions)
        else:
            row["worst_condition"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def condition_label(row, conditions) -> str:
    """A point's conditions in short: its scenario name when the sweep varies it (networks
    are named that way), else ``key=value`` for each varied condition."""
    if "name" in conditions:
        return str(row["name"])
    return ", ".join(f"{k}={row[k]}" for k in conditions)


def _read_csv(path: Path, where: str) -> pd.DataFrame:
    # read_text raises SweepDataError itself for a missing, oversized or non-UTF-8 file
    text = read_text(path, limit=OUTPUT_LIMIT, what="sweep CSV", error=SweepDataError, where=where)
    try:
        return pd.read_csv(StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        problem = Problem(where, f"{path}: not a readable CSV ({' '.join(str(exc).split())})")
        raise SweepDataError([problem], str(path)) from None


def _paths(path: Path) -> tuple[Path, Path, Path]:
    """(tidy rows, summary, meta) for a path to either CSV."""
    name = path.name
    stem = name[: -len(".summary.csv")] if name.endswith(".summary.csv") else path.stem
    return (
        path.with_name(stem + ".csv"),
        path.with_name(stem + ".summary.csv"),
        path.with_name(stem + ".meta.json"),
    )


def _find_base(meta: dict | None, near: Path | None) -> tuple[dict | None, str | None]:
    """The base scenario of the sweep that wrote ``meta``: inline, or the file it named
    (relative to the sweep file, looked for from here and from the CSV's directory)."""
    if not meta or not meta.get("sweep_text"):
        return None, None
    try:
        raw = safe_yaml(meta["sweep_text"])
    except yaml.YAMLError:
        return None, None
    base = raw.get("base") if isinstance(raw, dict) else None
    if isinstance(base, dict):
        return base, "inline in the sweep file"
    if not isinstance(base, str):
        return None, None
    sweep_file = Path(meta.get("sweep") or "")
    candidates = [sweep_file.parent / base]
    if near is not None:
        candidates += [near / sweep_file.parent / base, near / base]
    for candidate in candidates:
        if candidate.is_file():
            try:
                loaded = safe_yaml(read_text(candidate, what="YAML file"))
            except (OSError, ValueError, yaml.YAMLError):  # ValueError: read_text's ScenarioError
                continue
            if isinstance(loaded, dict):
                return loaded, str(candidate)
    return None, None


def _check(summary: pd.DataFrame, source: str) -> None:
    needed = list(HEARTBEAT_NEEDED)
    missing = [c for c in needed if c not in summary]
    if missing and has_fleet(summary):  # a fleet sweep: the storm's figures instead
        missing = []
    if missing:
        _check_rare(summary, source)
    if missing or "replications" not in summary:
        problem = Problem(
            "",
            f"not a sweep's output: missing the column(s) {', '.join(missing or ['replications'])}"
            " (expected the CSV written by simlab sweep --out, or its .summary.csv)",
        )
        raise SweepDataError([problem], source)
    if summary.empty:
        raise SweepDataError([Problem("", "the sweep has no points")], source)


def _check_rare(frame: pd.DataFrame, source: str) -> None:
    """A rare-event sweep's rows or summary: say why they are not enough here."""
    if {"rare_event_windows", "rare_event_windows_mean"} & set(frame.columns):
        problem = Problem(
            "",
            "a rare-event sweep (rare:) has false-positive rates only, not the detection "
            "latency and costs this needs: plot its rates (simlab.lab.plots.metric_vs_param), or "
            "sweep the same settings without rare (engine auto) for the other figures",
        )
        raise SweepDataError([problem], source)


def validate(frame: pd.DataFrame, source: str, meta=None, meta_source: str | None = None) -> None:
    """Raise SweepDataError naming every problem of a sweep's output read back (its rows or
    summary, and its parsed .meta.json if given): the check simlab choose, simlab report and
    ``--resume`` share (:func:`simlab.sweeps.sweep.check_output`), and tidy rows must hold a row."""
    from simlab.sweeps.sweep import check_output

    problems = check_output(frame, source, meta, meta_source)
    if frame.empty and len(frame.columns):
        what = "rows" if "replication" in frame.columns else "points"
        problems.append(
            Problem(source, f"no {what}: no run of the sweep finished (complete it with --resume)")
        )
    if problems:
        raise SweepDataError(problems, source)


def _check_keys(summary: pd.DataFrame, keys: list[str], source: str) -> None:
    """Two points with the same value in every varied key's column: a varied key's column was
    lost (a sweep's points differ in at least one), so no point's setting can be told."""
    if "point_id" not in summary or has_fleet(summary) or len(summary) < 2:
        return  # a fleet's varied clients reads as a figure of its rows
    same = summary.duplicated(subset=keys, keep=False) if keys else summary.index == summary.index
    if same.any():
        ids = ", ".join(map(str, summary.loc[same, "point_id"].head(3)))
        shown = ", ".join(keys) if keys else "none"
        problem = Problem(
            source,
            f"points {ids} have the same value in every varied key's column ({shown}): "
            "a varied key's column is missing, so their settings are unknown",
        )
        raise SweepDataError([problem], source)


def read(source, *, meta: dict | None = None) -> SweepData:
    """A sweep's results from a path (its tidy CSV or its ``.summary.csv``) or a DataFrame
    (tidy rows, such as :func:`simlab.sweep` returns, or a summary).

    Next to a file it also reads the ``.meta.json`` and, through it, the base scenario.
    Raises SweepDataError (a ScenarioError) for anything that is not a sweep's output.
    """
    base_dir = None
    meta_source = None if meta is None else "meta"
    if isinstance(source, pd.DataFrame):
        name = "sweep"
        frame = source.attrs.get("summary", source)
        validate(frame, name, meta, meta_source)
        if not is_summary(frame):
            _check_rare(frame, name)
        summary = frame if is_summary(frame) else summarize(frame)
    else:
        path = Path(source)
        name = str(path)
        rows_path, summary_path, meta_path = _paths(path)
        if meta is None and meta_path.is_file():
            try:
                meta = json.loads(read_text(meta_path, limit=OUTPUT_LIMIT, what="sweep meta file"))
            except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
                reason = " ".join(str(exc).split())
                problem = Problem(str(meta_path), f"not a readable JSON file ({reason})")
                raise SweepDataError([problem], str(meta_path)) from None
            meta_source = str(meta_path)
        if path == summary_path or (summary_path.is_file() and _newer(summary_path, rows_path)):
            summary = _read_csv(summary_path, "sweep")
            validate(summary, str(summary_path), meta, meta_source)
        else:
            rows = _read_csv(path, "sweep")
            validate(rows, name, meta, meta_source)
            if is_summary(rows):
                summary = rows
            else:
                fleet = "attempts_total" in rows and "time_to_50pct_reconnected_s" in rows
                if "connected_hours" not in rows and not fleet:
                    _check(rows, name)
                summary = summarize(rows, seed=int((meta or {}).get("seed") or 0))
        base_dir = path.parent
    _check(summary, name)
    keys = _summary_keys(summary)
    _check_keys(summary, keys, name)
    settings = tuple(k for k in keys if is_setting(k))
    conditions = tuple(k for k in keys if not is_setting(k))
    base, base_source = _find_base(meta, base_dir)
    return SweepData(add_derived(summary), settings, conditions, name, meta, base, base_source)


def _newer(a: Path, b: Path) -> bool:
    """The summary is usable if the rows are absent or not newer than it."""
    return not b.is_file() or a.stat().st_mtime >= b.stat().st_mtime
