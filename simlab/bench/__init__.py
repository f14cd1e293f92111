"""Benchmarks, as ratios taken side by side in one run: ``python -m simlab.bench`` (engines) and
``python -m simlab.bench.fleet`` (storms).

Layer 10.
"""
