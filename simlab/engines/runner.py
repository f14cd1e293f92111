"""Run a scenario: every connection slot through the model, then the figures.

``simulate(scenario)`` is the Python entry point behind ``simlab run``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from simlab.engines.figures import summarize
from simlab.engines.model import SLOT_COLUMNS, SlotModel, slot_row
from simlab.scenario.schema import Scenario

RECORD_COLUMNS = ["slot", "connection", "time", "event", "detail", "value"]
TRACE_COLUMNS = ["slot", "connection", "time", "event", "kind", "src", "seq", "attempts", "value"]


@dataclass
class Result:
    """What a run produced: the figures (``summary``, the JSON of ``simlab run``) and the records.

    ``records`` has one row per connection-life event (open, break, detection,
    false_positive, trust, close) with the slot and connection number; ``slots``
    one row of counters per connection slot (for intervals across connections); ``trace``
    (only with ``trace=True``) one row per message event.
    """

    summary: dict
    records: pd.DataFrame
    slots: pd.DataFrame | None = None
    trace: pd.DataFrame | None = None

    def __getitem__(self, key):
        return self.summary[key]


def simulate(
    scenario: Scenario, *, trace: bool = False, slots: range | None = None, progress: bool = False
) -> Result:
    """Simulate every connection slot of ``scenario`` with the SimPy model."""
    started = time.perf_counter()
    slots = range(scenario.connections) if slots is None else slots
    iterator = slots
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(slots, desc=scenario.name, unit="conn")
    done = [SlotModel(scenario, i, trace).run() for i in iterator]
    summary = summarize(scenario, done)
    summary["engine"] = "simpy"
    summary["seed"] = scenario.seed
    summary["wall_s"] = time.perf_counter() - started
    records = pd.DataFrame([r for m in done for r in m.records], columns=RECORD_COLUMNS)
    trace_df = None
    if trace:
        trace_df = pd.DataFrame([r for m in done for r in m.trace], columns=TRACE_COLUMNS)
    slot_df = pd.DataFrame([slot_row(m) for m in done], columns=SLOT_COLUMNS)
    return Result(summary, records, slot_df, trace_df)


# -- the engine protocol (simlab.engines.registry) --------------------------------------------


def unsupported(scenario: Scenario) -> list[str]:
    """The model covers the whole scenario format."""
    return []


def run(scenario: Scenario, *, progress: bool = False) -> dict:
    """The model's figures: :func:`simulate`'s summary."""
    return simulate(scenario, progress=progress).summary
