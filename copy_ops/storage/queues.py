"""The work queue: messages out (the sweep's fan-out, job pages and batches); the
Functions host's queue trigger takes them in. One queue of the app's account, on the
same credential and event loop as the blob client; created on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError

from copy_ops.core.connection import StorageConnection
from copy_ops.core.errors import StorageUnavailable
from copy_ops.storage.client import CLIENT_OPTIONS, RETRY, build_queue_client
from copy_ops.storage.errors import bounded_wait, error_code

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

CONFLICT = 409  # the queue exists already
QUEUE_NOT_FOUND = "QueueNotFound"


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
        self._building = asyncio.Lock()
        self.closed = False

    async def _queue(self) -> QueueClient:
        # Built once: concurrent first uses (a burst of events after a restart) would each
        # build a client, keep one and leave the others' sessions unclosed.
        async with self._building:
            if self._client is None:
                build = build_queue_client(
                    self._connection, self._name, self._credential, self._retry, dict(CLIENT_OPTIONS)
                )
                self._client = await bounded_wait(build)
            return self._client

    async def send(self, messages: Sequence[str], delay_seconds: int = 0) -> None:
        """Put every message on the queue (concurrently); the queue is created if missing.
        After a creation only the messages refused for the missing queue go again: a put
        still in flight when the queue appeared may have landed, and must not land twice."""
        client = await self._queue()

        async def put_all(texts: Sequence[str]) -> list[str]:
            """The texts refused because the queue is missing; any other fault raises."""
            results = await asyncio.gather(
                *(client.send_message(text, visibility_timeout=delay_seconds or None) for text in texts),
                return_exceptions=True,
            )
            missing = []
            for text, result in zip(texts, results, strict=True):
                if isinstance(result, BaseException):
                    if isinstance(result, HttpResponseError) and error_code(result) == QUEUE_NOT_FOUND:
                        missing.append(text)
                    else:
                        raise result
            return missing

        missing = await bounded_wait(put_all(messages))
        if missing:
            await bounded_wait(_created(client.create_queue()))
            if await bounded_wait(put_all(missing)):
                # Deleted again between its creation and the sends: nothing is dropped silently.
                raise StorageUnavailable(
                    f"the queue {self._name} vanished while messages were sent", code="QueueNotFound"
                )

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._client is not None:
                await bounded_wait(self._client.close())


async def _created(call: Awaitable[Any]) -> None:
    """The queue exists: made now, or by another writer at the same time. (The SDK raises
    ResourceExistsError of its own, without a status, when the service answers 204 for a
    queue that exists already; Azure and Azurite answer 409 in other cases.)"""
    try:
        await call
    except ResourceExistsError:
        return
    except HttpResponseError as exc:
        if exc.status_code != CONFLICT:
            raise
