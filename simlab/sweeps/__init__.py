"""Sweeps: grids and samples of dotted keys over a base scenario or fleet, run locally or on Dask
into crash-safe CSV rows, and the reader of their outputs (:mod:`.data`).

Layer 5: imports everything below it (ground, rules, scenario, engines, fleet).
"""
