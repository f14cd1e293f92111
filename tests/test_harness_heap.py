"""Tests for simlab.harness.heap: the heap a real run inherits is frozen, then handed back."""

from __future__ import annotations

import gc

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
