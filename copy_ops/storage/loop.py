"""The process's one event loop for storage calls, in a daemon thread, started on first use.

Callers are synchronous (handlers, the sweep's threads); each call runs as a coroutine
of the async SDK here, and the caller waits for it, never longer than :data:`WAIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable
from typing import TypeVar

from copy_ops.errors import StorageUnavailable

T = TypeVar("T")

# Above the SDK's own worst case for one call (4 tries of 5 s to connect and 30 s to
# read, plus about 8 s of backoff): a wait this long means the loop itself is stuck.
WAIT_SECONDS = 180.0

_lock = threading.Lock()
_started: list[asyncio.AbstractEventLoop] = []


def storage_loop() -> asyncio.AbstractEventLoop:
    with _lock:
        if not _started:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="copy-ops-storage", daemon=True).start()
            _started.append(loop)
        return _started[0]


def run(call: Awaitable[T], timeout: float = WAIT_SECONDS) -> T:
    """Run ``call`` on the storage loop and wait for its result."""
    future = asyncio.run_coroutine_threadsafe(_awaited(call), storage_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise StorageUnavailable(f"storage did not answer within {timeout:.0f} s", code="Timeout") from None


async def _awaited(call: Awaitable[T]) -> T:
    # The SDK's methods are typed as awaitables; the loop takes coroutines.
    return await call
