"""The lightest event SimPy's ``Environment.step`` processes: a call of ``fn(*args)``.

A ``Timeout`` plus a closure costs about twice as much, and the heartbeat model schedules
three or four events per round, so the model and the fleet schedule :class:`Call` objects
with ``env.schedule(Call(fn, args), NORMAL, delay)``.

This relies on SimPy internals, not its documented API: ``Environment.step`` pops an event,
calls each of its ``callbacks`` with the event, then raises if ``event._ok`` is false (reading
``event._value``). That is the code of SimPy 4.1.x, so pyproject.toml pins ``simpy>=4.1,<4.2``;
tests/engines/test_calls.py checks the pin and the protocol, so a SimPy upgrade that changes
either fails there first, not inside a simulation.
"""

from __future__ import annotations

SIMPY_VERSIONS = ">=4.1,<4.2"  # the versions whose Environment.step this was written against


class Call:
    """A SimPy event that calls ``fn(*args)`` when processed."""

    __slots__ = ("callbacks", "_ok", "_value", "fn", "args")

    def __init__(self, fn, args):
        self.callbacks = _FIRE  # SimPy calls each callback with the event: _fire(self)
        self._ok = True  # step() raises for an event whose _ok is false
        self._value = None
        self.fn, self.args = fn, args

    def _fire(self) -> None:
        self.fn(*self.args)


_FIRE = (Call._fire,)
