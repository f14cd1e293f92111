"""``simlab storm FLEET.yaml``: run a fleet file's reconnect storm, print its figures, write them.

Kept apart from :mod:`simlab.cli.main` so the command's one entry there stays small:
loading (with ``--set``, ``--seed``, ``--clients``), the run, a readable table or
one JSON object, and ``--out`` (the JSON with every parameter, and the timeline
beside it as ``.timeline.csv``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from simlab.engines.metrics import sections
from simlab.fleet.model import FLEET_EXTRAS, FLEET_METRICS, FLEET_SECTIONS, simulate_fleet
from simlab.fleet.spec import load, to_dict
from simlab.io import write_atomic
from simlab.scenario.reader import parse_sets
from simlab.scenario.schema import flatten

# (heading, keys) of the table, from the fleet's metric registry (simlab.fleet.model)
SECTIONS = sections((*FLEET_METRICS, *FLEET_EXTRAS), FLEET_SECTIONS)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def format_table(summary: dict) -> str:
    """The summary as sections of aligned ``key value`` lines."""
    lines = [f"fleet: {summary.get('scenario')}"]
    width = max(len(k) for _, keys in SECTIONS for k in keys)
    for title, keys in SECTIONS:
        lines.append(f"\n{title}")
        lines += [f"  {k:<{width}}  {_fmt(summary.get(k))}" for k in keys if k in summary]
    return "\n".join(lines)


def _clean(summary: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def run_command(args) -> int:
    """The body of ``simlab storm`` (bad input raises ScenarioError: the CLI exits 2)."""
    overrides = parse_sets(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.clients is not None:
        overrides["clients"] = args.clients
    fleet, warnings = load(args.fleet, overrides)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    result = simulate_fleet(fleet)
    summary = _clean(result.summary)
    if args.out:
        out = Path(args.out)
        full = summary | {"parameters": flatten(to_dict(fleet))}
        write_atomic(out, json.dumps(full, indent=2, default=str) + "\n")
        write_atomic(out.with_suffix(".timeline.csv"), result.timeline.to_csv(index=False))
    print(json.dumps(summary) if args.json else format_table(summary))
    return 0
