"""The event targets: a queue of the app's account (the event's CloudEvents JSON as the
message text) and an Event Grid topic (the ``azure-eventgrid`` client, CloudEvents
schema, with the app's identity or an access key). Each is optional; every configured
one must take an event before it counts as announced.

Both clients are coroutines on the caller's event loop, are built on first use, and their faults
are translated like storage's (:mod:`copy_ops.storage.errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from copy_ops.core.errors import StorageFault
from copy_ops.core.settings import Settings
from copy_ops.core.times import parse_time
from copy_ops.observability.events import SOURCE, Event
from copy_ops.storage.client import RETRY
from copy_ops.storage.errors import bounded_wait
from copy_ops.storage.queues import QueueStorage

if TYPE_CHECKING:
    from azure.eventgrid.aio import EventGridPublisherClient


class EventTargets:
    def __init__(self, settings: Settings, credential: Any = None, retry: dict[str, float] | None = None) -> None:
        self._queue = (
            QueueStorage(settings.storage, settings.events_queue, credential=credential, retry=retry)
            if settings.events_queue
            else None
        )
        self._topic = (
            TopicTarget(settings.events_topic_endpoint, settings.events_topic_key, credential, retry)
            if settings.events_topic_endpoint
            else None
        )

    async def announce(self, events: Sequence[Event]) -> None:
        if self._queue is not None:
            await self._queue.send([event.to_json() for event in events])
        if self._topic is not None:
            await self._topic.send(events)

    async def close(self) -> None:
        for target in (self._queue, self._topic):
            if target is not None:
                await target.close()


class TopicTarget:
    """An Event Grid topic, through the SDK's publisher client."""

    def __init__(self, endpoint: str, key: str | None, credential: Any, retry: dict[str, float] | None) -> None:
        self._endpoint = endpoint
        self._key = key
        self._credential = credential
        self._retry = retry or RETRY
        self._client: EventGridPublisherClient | None = None
        self._building = asyncio.Lock()
        self._own_credential: Any = None

    async def _publisher(self) -> EventGridPublisherClient:
        async with self._building:  # once, as the queue's client
            if self._client is None:
                self._client = await self._run(self._build())
            return self._client

    async def _build(self) -> EventGridPublisherClient:
        from azure.core.credentials import AzureKeyCredential
        from azure.eventgrid.aio import EventGridPublisherClient

        credential: Any
        if self._key is not None:
            credential = AzureKeyCredential(self._key)
        elif self._credential is not None:
            credential = self._credential  # the app's identity, shared with the storage client
        else:
            # The app reaches storage with a connection string: the topic with its identity.
            from azure.identity.aio import DefaultAzureCredential

            credential = self._own_credential = DefaultAzureCredential()
        retries = int(self._retry.get("retry_total", 3))
        return EventGridPublisherClient(self._endpoint, credential, retry_total=retries)

    async def send(self, events: Sequence[Event]) -> None:
        from azure.core.messaging import CloudEvent

        batch = [
            CloudEvent(
                source=SOURCE,
                type=event.type,
                data=event.data,
                subject=event.subject,
                id=event.id,
                time=parse_time(event.time),
                datacontenttype="application/json",
            )
            for event in events
        ]
        client = await self._publisher()
        await self._run(client.send(batch))

    async def close(self) -> None:
        if self._client is not None:
            await self._run(self._client.close())
        if self._own_credential is not None:
            await self._run(self._own_credential.close())

    @staticmethod
    async def _run(call: Any) -> Any:
        try:
            return await bounded_wait(call)
        except (TypeError, ValueError) as exc:
            # The client refused to build or send (for example a token over plain http).
            raise StorageFault(f"the event topic refused the request: {exc}", code="EventTopicRefused") from None
