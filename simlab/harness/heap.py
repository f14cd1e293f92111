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
import threading

_lock = threading.Lock()
_runs = 0  # real runs inside frozen_heap now (a notebook may run them in threads)
_ours = False  # whether the freeze in force is ours to undo


@contextlib.contextmanager
def frozen_heap():
    """Collect once, then move every object alive now out of the collector's sight.

    They are handed back when the last run inside leaves. A caller that froze the
    heap itself keeps its own freeze: this then does nothing.
    """
    global _runs, _ours
    with _lock:
        if _runs == 0:
            _ours = not gc.get_freeze_count()
            if _ours:
                gc.collect()
                gc.freeze()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _ours:
                gc.unfreeze()
                _ours = False
