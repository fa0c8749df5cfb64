"""A controllable clock for asyncio: an event loop whose time moves only when it is idle.

`VirtualTimeLoop` is a standard selector loop except for its clock. Whenever nothing is
ready to run and the next thing due is a timer, time jumps straight to that timer
instead of the loop sleeping. ``asyncio.sleep``, ``wait_for``, ``call_later`` and
``loop.time()`` all follow it, so code under test needs no clock of its own: a call
with two minutes of silence timers runs in milliseconds, and the order of events is
the same on every run however loaded the machine is.

Real I/O still works (the loop polls its selector first and waits for real only when
no timer is pending), but a thread's work races virtual time: a timer would fire
before a worker thread's result arrives. Use it with in-process fakes, not with
sockets to other processes or thread-backed engines.

Usage::

    result = run(main())                  # a coroutine, on a fresh virtual loop
    loop = asyncio.get_running_loop()     # inside: loop.time() is virtual seconds

    @virtual_test                         # a pytest test on virtual time
    async def test_something() -> None: ...
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["VirtualTimeLoop", "run", "virtual_test"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_START = 1_000.0
# Virtual time starts well away from zero, like a monotonic clock, so "0.0 means unset"
# bugs show up here too.


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, asked to wait for a timer, moves the clock there instead."""

    def __init__(self, loop_clock: _Clock) -> None:
        super().__init__()
        self._clock = loop_clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer pending: only I/O (or another thread) can wake the loop.
            return super().select(None)
        self._clock.now += timeout
        return []


class _Clock:
    def __init__(self) -> None:
        self.now = _START


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time (see the module docstring)."""

    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(_JumpingSelector(self._virtual))

    def time(self) -> float:
        """Virtual seconds; they pass only while every task waits on a timer."""
        return self._virtual.now


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` to completion on a fresh `VirtualTimeLoop`, then close the loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


def virtual_test(test: Callable[_P, Coroutine[Any, Any, None]]) -> Callable[_P, None]:
    """Decorate an ``async def`` test to run on its own `VirtualTimeLoop` (via `run`)."""

    @functools.wraps(test)
    def runner(*args: _P.args, **kwargs: _P.kwargs) -> None:
        run(test(*args, **kwargs))

    return runner
