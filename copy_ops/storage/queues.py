"""The work queue: messages out (the sweep's fan-out, job pages and batches); the
Functions host's queue trigger takes them in. One queue of the app's account, on the
same credential and event loop as the blob client; created on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from copy_ops.connection import StorageConnection
from copy_ops.errors import ContainerMissing
from copy_ops.storage import loop
from copy_ops.storage.client import CLIENT_OPTIONS, RETRY, build_queue_client
from copy_ops.storage.errors import ignoring, storage_errors

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

CONFLICT = 409  # the queue exists already


class QueueStorage:
    """One queue; its client is built on first use (a sweep that never fans out never
    needs one, and an app whose connection names no queue works until it does)."""

    def __init__(
        self, connection: StorageConnection, name: str, credential: Any = None, retry: dict[str, float] | None = None
    ) -> None:
        self._connection = connection
        self._name = name
        self._credential = credential
        self._retry = retry or RETRY
        self._client: QueueClient | None = None
        self.closed = False

    def _queue(self) -> QueueClient:
        if self._client is None:
            build = build_queue_client(
                self._connection, self._name, self._credential, self._retry, dict(CLIENT_OPTIONS)
            )
            self._client = self._run(build)
        return self._client

    def send(self, messages: Sequence[str]) -> None:
        """Put every message on the queue (concurrently); the queue is created if missing."""
        client = self._queue()

        async def put_all() -> None:
            await asyncio.gather(*(client.send_message(text) for text in messages))

        try:
            self._run(put_all())
        except ContainerMissing:
            self._run(ignoring(client.create_queue(), CONFLICT))
            self._run(put_all())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._client is not None:
                self._run(self._client.close())

    def _run(self, call: Any) -> Any:
        with storage_errors():
            return loop.run(call)
