"""Process-wide worker pools for the offline engines, created on first use."""

from __future__ import annotations

import concurrent.futures
import threading

__all__ = ["shared_pool"]

_lock = threading.Lock()
_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}


def shared_pool(name: str, workers: int = 2) -> concurrent.futures.ThreadPoolExecutor:
    """The pool called ``name`` (threads named after it), made once per process.

    Two workers by default: one per core of the target box, so model work of many calls
    queues here instead of oversubscribing the CPU.
    """
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=name
            )
            _pools[name] = pool
        return pool
