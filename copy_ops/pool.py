"""A bounded pool of threads for storage work: whoever submits waits when it is full, so
a time budget stays meaningful; the outcome labels of what ran, counted.

The threads only wait: every request runs on the storage adapter's one event loop.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Pool:
    def __init__(self, concurrency: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        # Twice the threads may be queued, so that a thread finishing finds its next work
        # waiting. A slot is given back by the work's own thread as it ends: the submitter
        # never scans what is in flight (waiting on every future at each submit cost a
        # tenth of a job page's CPU).
        self._slots = threading.BoundedSemaphore(concurrency * 2)
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self.outcomes: Counter[str] = Counter()
        self.submitted = 0

    def submit(self, work: Callable[[], str]) -> None:
        self._raise_failure()
        self._slots.acquire()
        self._pool.submit(work).add_done_callback(self._done)
        self.submitted += 1

    def finish(self) -> Counter[str]:
        """Wait for everything submitted; the outcomes."""
        self._pool.shutdown(wait=True)
        self._raise_failure()
        return self.outcomes

    def _done(self, future: Future[str]) -> None:
        try:
            outcome = future.result()
        except BaseException as exc:  # the work's own error, raised again to the submitter
            with self._lock:
                self._failure = self._failure or exc
        else:
            with self._lock:
                self.outcomes[outcome] += 1
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise self._failure


def parallel_map(work: Callable[[T], R], items: Sequence[T], concurrency: int, name: str) -> list[R]:
    """``work`` of each item, at most ``concurrency`` at once, in the items' order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(work, items))
