"""Keep the garbage collector's full passes over older objects out of a real run's clock.

A full (generation 2) collection walks every tracked object of the process. In a
test session or a notebook that has already built models and DataFrames it takes
50-90 ms on the machines here, and one that falls inside a real run stalls the
event loop for all connections at once: a fleet's restart is noticed 88 ms late,
which the measured clock resolution must then absorb. Freezing the heap the run
inherits (``gc.freeze``, as servers that fork do) keeps collection on for what the
run itself allocates, at a cost proportional to the run.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def frozen_heap():
    """Collect once, then move every object alive now out of the collector's sight.

    They are handed back on exit. A caller that froze the heap itself keeps its
    own freeze: this then does nothing.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
