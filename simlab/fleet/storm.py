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

from simlab.fleet.model import simulate_fleet
from simlab.fleet.spec import load, to_dict
from simlab.io import write_atomic
from simlab.scenario.reader import parse_sets
from simlab.scenario.schema import flatten

SECTIONS = [
    ("storm", ["policy", "trigger", "clients", "clients_affected", "disconnections"]),
    (
        "attempts",
        [
            "attempts_total",
            "attempts_per_disconnection",
            "peak_attempts_per_s",
            "peak_attempts_at_s",
            "attempts_connected",
            "attempts_refused",
            "attempts_timed_out",
        ],
    ),
    (
        "recovery (seconds from the trigger)",
        [
            "notice_delay_mean_s",
            "time_to_50pct_reconnected_s",
            "time_to_95pct_reconnected_s",
            "time_to_99pct_reconnected_s",
            "time_to_100pct_reconnected_s",
            "reconnected",
            "gave_up",
            "still_reconnecting",
        ],
    ),
    (
        "server",
        [
            "server_utilisation_peak",
            "server_utilisation_mean",
            "backlog_peak",
            "handshakes",
            "handshakes_tls_resumed",
            "handshakes_wasted",
        ],
    ),
    (
        "messages (session resume)",
        [
            "messages_published",
            "messages_delivered",
            "messages_replayed",
            "messages_lost",
            "messages_pending",
            "messages_duplicated",
            "buffer_peak_messages",
            "buffer_peak_bytes",
        ],
    ),
    ("provenance", ["engine", "seed", "wall_s"]),
]


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
