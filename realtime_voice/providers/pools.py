"""Process-wide worker pools for the offline engines, created on first use."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["shared_pool"]

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}


class _ContextPool(concurrent.futures.ThreadPoolExecutor):
    """Runs each job in a copy of the submitter's context, so what a worker logs for a
    call carries that call's id (threads do not inherit context variables)."""

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        context = contextvars.copy_context()
        return super().submit(lambda: context.run(fn, *args, **kwargs))


def shared_pool(name: str, workers: int = 2) -> concurrent.futures.ThreadPoolExecutor:
    """The pool called ``name`` (threads named after it), made once per process.

    Two workers by default: one per core of the target box, so model work of many calls
    queues here instead of oversubscribing the CPU.
    """
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _ContextPool(max_workers=workers, thread_name_prefix=name)
            _pools[name] = pool
        return pool
