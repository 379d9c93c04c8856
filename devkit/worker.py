"""Functions run as the Python worker runs them: an ``async def`` function awaited on one
event loop, a ``def`` function in a pool of min(32, cores + 4) threads (the worker's own
defaults, ``azure_functions_runtime``'s thread pool executor).

The loop lives in a thread of its own, so that synchronous callers (the development
host's HTTP server threads, a synchronous test) can hand it work and wait for the result.
Every coroutine of the app runs on that one loop, as on the worker: the async SDK's
clients are bound to the loop they were built on.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# The worker's default: PYTHON_THREADPOOL_THREAD_COUNT unset.
POOL_THREADS = min(32, (os.cpu_count() or 1) + 4)
# Far above any function's own bound (an HTTP answer must come within 230 s).
WAIT_SECONDS = 600.0


class Worker:
    def __init__(self, name: str = "worker") -> None:
        self.loop = asyncio.new_event_loop()
        self._pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix=f"{name}-sync")
        self._thread = threading.Thread(target=self._serve, name=f"{name}-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, call: Coroutine[Any, Any, T], timeout: float = WAIT_SECONDS) -> T:
        """Await ``call`` on the loop; its result, or its exception, here."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("Worker.run called from its own loop: await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(call, self.loop).result(timeout)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Invoke a function as the worker would: awaited if async, else in the pool."""
        return self.run(self.invoke(function, *args))

    async def invoke(self, function: Callable[..., Any], *args: Any) -> Any:
        """On the loop: await an async function, or run a sync one in the pool (with the
        caller's context, as the worker copies it into its executor threads)."""
        if inspect.iscoroutinefunction(function):
            return await function(*args)
        context = contextvars.copy_context()
        return await self.loop.run_in_executor(self._pool, functools.partial(context.run, function, *args))

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.loop.close()


_shared: list[Worker] = []
_lock = threading.Lock()


def shared_worker() -> Worker:
    """The process's one worker (tests and tools that call the app in process share it)."""
    with _lock:
        if not _shared:
            _shared.append(Worker())
        return _shared[0]


def run(call: Coroutine[Any, Any, T], timeout: float = WAIT_SECONDS) -> T:
    """``call``, awaited on the shared worker's loop."""
    return shared_worker().run(call, timeout)


async def collected(items: AsyncIterator[T]) -> list[T]:
    """Every item of an async iterator, in order (for synchronous callers, through :func:`run`)."""
    return [item async for item in items]
