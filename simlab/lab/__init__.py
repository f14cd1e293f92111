"""Lab: what a person reads. The chooser and its question, the self-contained HTML report, plots
(functions that take data and return a matplotlib Figure) and the notebooks' helpers.

Layer 6: imports everything below it, never the checks, harness or CLI.
"""
