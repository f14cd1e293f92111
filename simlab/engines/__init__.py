"""Engines: what a scenario does. The SimPy model, the vectorized fast engine, rare-event
estimation and the closed forms (:mod:`.analytic`), the metrics they report, and the registry
that the CLI, sweeps, ``auto`` and the panel read (:mod:`.registry`).

Layer 3: imports the ground, :mod:`simlab.rules` and :mod:`simlab.scenario`.
"""
