"""The lightest event SimPy's ``Environment.step`` processes: a call of ``fn(*args)``.

A ``Timeout`` plus a closure costs about twice as much, and the heartbeat model schedules
three or four events per round, so the model and the fleet schedule :class:`Call` objects
with ``env.schedule(Call(fn, args), NORMAL, delay)``.

This relies on SimPy internals, not its documented API: ``Environment.step`` pops an event,
calls each of its ``callbacks`` with the event, then raises if ``event._ok`` is false (reading
``event._value``). That is the code of SimPy 4.1.x, so pyproject.toml pins ``simpy>=4.1,<4.2``;
tests/engines/test_calls.py checks the pin and the protocol, so a SimPy upgrade that changes
either fails there first, not inside a simulation.

The same protocol gives an even lighter event: any object with a ``callbacks`` slot holding
a tuple of functions that take the event, and ``_ok``/``_value`` as class attributes (a
:class:`Fire` subclass). The model's hot events (heartbeat timers, detector timers, message
deliveries) are such objects, whose one callback is a bound method reading the event's own
fields: no argument tuple, no extra call. ``push`` is ``Environment.schedule`` without the
method call (the same heap entry: time ``now + delay``, priority, the next event id).
"""

from __future__ import annotations

SIMPY_VERSIONS = ">=4.1,<4.2"  # the versions whose Environment.step this was written against


class Fire:
    """Base of the light events: ``step`` reads ``_ok`` (never false) from the class."""

    __slots__ = ("callbacks",)
    _ok = True  # step() raises for an event whose _ok is false
    _value = None


class Call(Fire):
    """A SimPy event that calls ``fn(*args)`` when processed."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.callbacks = _FIRE  # SimPy calls each callback with the event: _fire(self)
        self.fn, self.args = fn, args

    def _fire(self) -> None:
        self.fn(*self.args)


_FIRE = (Call._fire,)
