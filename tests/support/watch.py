"""An instance's storage seen call by call: each coroutine call's name and when it was made
(the monotonic clock), for tests that prove a message touched nothing, or when a copy went out."""

from __future__ import annotations

import inspect
import time
from typing import Any

from copy_ops.storage import BlobStorage


class StorageWatch:
    """Wraps an instance's storage (``JobWorld(..., wrap=watch.wrap)``); ``calls`` in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.storage: BlobStorage | None = None

    def wrap(self, storage: BlobStorage) -> StorageWatch:
        self.storage = storage
        return self

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def times(self, name: str) -> list[float]:
        return [at for called, at in self.calls if called == name]

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.storage, name)
        if not callable(real):
            return real
        if inspect.iscoroutinefunction(real):

            async def watched(*args: Any, **kwargs: Any) -> Any:
                self.calls.append((name, time.monotonic()))
                return await real(*args, **kwargs)

            return watched

        def named(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, time.monotonic()))
            return real(*args, **kwargs)

        return named
