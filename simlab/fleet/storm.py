"""What ``simlab storm FLEET.yaml`` prints: a storm's figures as a readable table (the
sections of the fleet's metric registry) and as JSON without NaN. The command itself
(loading, the work budget, ``--out``) is in :mod:`simlab.cli.main`.
"""

from __future__ import annotations

import math

from simlab.engines.metrics import sections
from simlab.fleet.model import FLEET_EXTRAS, FLEET_METRICS, FLEET_SECTIONS

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


def clean(summary: dict) -> dict:
    """JSON has no NaN: None instead."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
