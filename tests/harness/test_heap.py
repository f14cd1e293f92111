"""Tests for simlab.harness.heap: the heap a real run inherits is frozen, then handed back."""

from __future__ import annotations

import gc
import threading

from simlab.harness.heap import frozen_heap


def _tracked(obj) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_older_objects_are_out_of_the_collectors_sight_during_the_run_and_back_after():
    older = [[]]  # a tracked container
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0 and not _tracked(older)
        newer = [[]]
        assert _tracked(newer)  # what the run allocates is still collected
        gc.collect()
    assert gc.get_freeze_count() == 0 and _tracked(older) and _tracked(newer)


def test_the_heap_is_handed_back_when_the_run_raises():
    try:
        with frozen_heap():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_freeze_count() == 0


def test_a_callers_own_freeze_is_left_alone():
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == count
        assert gc.get_freeze_count() == count  # not unfrozen by us
    finally:
        gc.unfreeze()


def test_overlapping_runs_in_threads_keep_the_freeze_until_the_last_one_leaves():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with frozen_heap():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with frozen_heap():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.get_freeze_count())  # the first run left: still frozen

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0
