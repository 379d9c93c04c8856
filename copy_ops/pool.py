"""A bounded pool of threads for storage work: whoever submits waits when it is full, so
a time budget stays meaningful; the outcome labels of what ran, counted.

The threads only wait: every request runs on the storage adapter's one event loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Pool:
    def __init__(self, concurrency: int, name: str) -> None:
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self._in_flight: set[Future[str]] = set()
        self.outcomes: Counter[str] = Counter()
        self.submitted = 0

    def submit(self, work: Callable[[], str]) -> None:
        while len(self._in_flight) >= self._concurrency * 2:
            done, pending = wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._in_flight = set(pending)
            self._collect(done)
        self._in_flight.add(self._pool.submit(work))
        self.submitted += 1

    def finish(self) -> Counter[str]:
        """Wait for everything submitted; the outcomes."""
        done, _ = wait(self._in_flight)
        self._collect(done)
        self._pool.shutdown()
        return self.outcomes

    def _collect(self, done: Iterable[Future[str]]) -> None:
        for future in done:
            self.outcomes[future.result()] += 1


def parallel_map(work: Callable[[T], R], items: Sequence[T], concurrency: int, name: str) -> list[R]:
    """``work`` of each item, at most ``concurrency`` at once, in the items' order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(work, items))
