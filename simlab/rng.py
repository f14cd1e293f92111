"""Random streams: one numpy Generator per (connection slot, purpose), from SeedSequence.

A stream is keyed by the scenario seed, the slot number and the stream's name,
never by how many slots there are or in which order they run. So connection 7
draws the same numbers whether the run has 10 or 10,000 connections, on one
core or many. New streams go at the end of ``STREAMS`` so old ones keep their keys.
"""

from __future__ import annotations

import numpy as np

STREAMS = (
    "loss.up",
    "loss.down",
    "delay.up",
    "delay.down",
    "jitter",
    "crash",
    "nat",
    "outages",
    "stalls",
    "app.up",
    "app.down",
)


def stream(seed: int, slot: int, name: str) -> np.random.Generator:
    """The generator for one purpose of one connection slot."""
    seq = np.random.SeedSequence(seed, spawn_key=(slot, STREAMS.index(name)))
    return np.random.Generator(np.random.PCG64(seq))
