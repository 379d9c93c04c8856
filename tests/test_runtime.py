"""The composition root builds the service once, however many requests arrive first, and
closes what it built."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from copy_ops import runtime
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy


def test_concurrent_first_calls_build_one_service(proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPY_STORAGE", proxy.connection_string)
    runtime.reset()
    built: list[BlobStorage] = []
    connect = BlobStorage.connect

    def counting(*args: Any, **kwargs: Any) -> BlobStorage:
        storage = connect(*args, **kwargs)
        built.append(storage)
        return storage

    monkeypatch.setattr(BlobStorage, "connect", counting)
    ready = threading.Barrier(64)

    def first_request(_: int) -> int:
        ready.wait()
        return id(runtime.service())

    try:
        with ThreadPoolExecutor(64) as pool:
            services = set(pool.map(first_request, range(64)))
        assert len(services) == 1 and len(built) == 1
    finally:
        runtime.reset()
    # reset() closed it: nothing of it is left open.
    assert built[0].closed


def test_close_is_safe_twice_and_before_anything_was_built() -> None:
    runtime.reset()
    runtime.close()
    runtime.close()
