"""The composition root builds the service once, however many requests arrive first, and
closes what it built."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from copy_ops.edges import runtime
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run


def test_concurrent_first_calls_build_one_service(proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPY_STORAGE", proxy.connection_string)
    run(runtime.reset())
    built: list[BlobStorage] = []
    connect = BlobStorage.connect

    async def counting(*args: Any, **kwargs: Any) -> BlobStorage:
        storage = await connect(*args, **kwargs)
        built.append(storage)
        return storage

    monkeypatch.setattr(BlobStorage, "connect", counting)

    async def first_requests() -> set[int]:
        # 64 invocations at once on the worker's loop, each the first to need the service.
        return {id(service) for service in await asyncio.gather(*(runtime.service() for _ in range(64)))}

    try:
        services = run(first_requests())
        assert len(services) == 1 and len(built) == 1
    finally:
        run(runtime.reset())
    # reset() closed it: nothing of it is left open.
    assert built[0].closed


def test_close_is_safe_twice_and_before_anything_was_built() -> None:
    run(runtime.reset())
    run(runtime.close())
    run(runtime.close())
