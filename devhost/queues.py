"""Queue triggers, run as the Functions host runs them, against the queue service.

Per trigger, a loop polls its queue: when it finds nothing it waits, doubling the wait
up to host.json's ``maxPollingInterval``; when it finds messages it takes up to
``batchSize`` of them at once, hidden from other consumers while they run, and runs the
function on each in parallel, and takes more whenever the messages still running drop to
``newBatchThreshold`` (so at most ``batchSize`` + ``newBatchThreshold`` run at once, and
one slow message does not hold back the rest). A message whose function returns is deleted. One whose
function raises becomes visible again after ``visibilityTimeout``, and once it has been
tried ``maxDequeueCount`` times it moves to ``<queue>-poison``. Two hosts (or two
instances) may consume one queue: each message goes to one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from copy_ops.core.connection import pairs_of
from devkit.inputs import queue_message

logger = logging.getLogger("devhost")

# While a function runs, its message stays hidden this long (the host renews its lease;
# the development host simply takes long enough for any function of this app).
LEASE_SECONDS = 600


def lease_seconds() -> int:
    """How long a taken message stays hidden: the host's 10 minutes, or what
    ``DEVHOST_MESSAGE_LEASE_SECONDS`` says (tests of an instance that dies mid-message,
    whose message comes back to another when this runs out)."""
    return int(os.environ.get("DEVHOST_MESSAGE_LEASE_SECONDS") or LEASE_SECONDS)


FIRST_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class QueueOptions:
    """host.json's ``extensions.queues``, with the host's defaults."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    max_dequeue_count: int = 5
    # The host's default is half the batch size.
    new_batch_threshold: int | None = None

    @classmethod
    def from_host_json(cls, host: dict[str, Any]) -> QueueOptions:
        queues = host.get("extensions", {}).get("queues", {})
        threshold = queues.get("newBatchThreshold")
        return cls(
            max_polling_interval=_seconds(queues.get("maxPollingInterval"), cls.max_polling_interval),
            visibility_timeout=_seconds(queues.get("visibilityTimeout"), cls.visibility_timeout),
            batch_size=int(queues.get("batchSize", cls.batch_size)),
            max_dequeue_count=int(queues.get("maxDequeueCount", cls.max_dequeue_count)),
            new_batch_threshold=None if threshold is None else int(threshold),
        )

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold


def _seconds(text: str | None, default: float) -> float:
    """``hh:mm:ss`` (a .NET TimeSpan, as host.json gives it) in seconds."""
    if not text:
        return default
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def queue_client(connection: str, queue: str) -> QueueClient:
    """The queue, reached as the host reaches a binding's ``connection``: a connection
    string in the setting, or ``<connection>__queueServiceUri`` with an identity."""
    string = os.environ.get(connection)
    if string:
        return QueueClient.from_connection_string(string, queue)
    uri = os.environ.get(f"{connection}__queueServiceUri")
    if not uri:
        raise RuntimeError(f"the queue trigger's connection {connection!r} names no storage")
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=os.environ.get(f"{connection}__clientId"))
    return QueueClient(uri, queue, credential=credential)


def connection_problem(connection: str) -> str | None:
    """Why the queue trigger's ``connection`` cannot reach a queue service, or None. The
    Functions host says this once, when it indexes the function, and leaves the function
    out; it does not poll a queue it cannot reach."""
    string = os.environ.get(connection)
    if not string:
        if os.environ.get(f"{connection}__queueServiceUri"):
            return None
        return f"no setting {connection} (a connection string) or {connection}__queueServiceUri (an identity)"
    parts = pairs_of(string)
    if parts.get("usedevelopmentstorage", "").lower() == "true" or parts.get("queueendpoint"):
        return None
    if parts.get("blobendpoint") or not parts.get("accountname"):
        return f"the connection string in {connection} names no QueueEndpoint (a queue trigger needs a queue service)"
    return None  # an account by its name: its queue service is found by Azure's naming


class QueueTrigger:
    def __init__(
        self,
        name: str,
        queue: str,
        connection: str,
        function: Callable[..., Any],
        options: QueueOptions,
        *,
        invoke: Callable[..., Any],
    ):
        self.name = name
        self.queue = queue
        self.connection = connection
        self.function = function
        # How a function is called: as the worker calls it (devkit.worker), waited for.
        self._invoke = invoke
        self.options = options
        self._client: QueueClient | None = None
        self._poison: QueueClient | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=options.batch_size + options.threshold, thread_name_prefix=f"queue-{name}"
        )
        self._running = 0
        self._changed = threading.Condition()

    def _clients(self) -> tuple[QueueClient, QueueClient]:
        if self._client is None or self._poison is None:
            self._client = queue_client(self.connection, self.queue)
            self._poison = queue_client(self.connection, f"{self.queue}-poison")
        return self._client, self._poison

    def loop(self, stop: threading.Event) -> None:
        wait = FIRST_POLL_SECONDS
        failing = False
        while not stop.is_set():
            try:
                messages = self._receive()
            except Exception as exc:
                # Said once when polling starts to fail, and once when it works again: the
                # host retries quietly in between (the storage emulator restarting, say).
                if not failing:
                    logger.error("queue_poll_failed function=%s queue=%s error=%s", self.name, self.queue, exc)
                failing, messages = True, []
            else:
                if failing:
                    logger.info("queue_poll_recovered function=%s queue=%s", self.name, self.queue)
                failing = False
            if not messages:
                stop.wait(wait)
                wait = min(wait * 2, self.options.max_polling_interval)
                continue
            wait = FIRST_POLL_SECONDS
            with self._changed:
                self._running += len(messages)
            for message in messages:
                self._pool.submit(self.run, message).add_done_callback(self._ended)
            with self._changed:
                while self._running > self.options.threshold and not stop.is_set():
                    self._changed.wait(0.5)
        self._pool.shutdown(wait=True)

    def _ended(self, done: Future[None]) -> None:
        failure = done.exception()
        if failure is not None:  # the message stays hidden until its lease ends; then it comes again
            logger.error("queue_message_failed function=%s error=%r", self.name, failure)
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def _receive(self) -> list[QueueMessage]:
        client, _ = self._clients()
        try:
            pages = client.receive_messages(
                messages_per_page=self.options.batch_size, visibility_timeout=lease_seconds()
            ).by_page()
            return list(next(pages, []))
        except ResourceNotFoundError:
            return []  # no queue yet: nobody has sent anything

    def run(self, message: QueueMessage) -> None:
        client, poison = self._clients()
        body = message.content if isinstance(message.content, bytes) else str(message.content).encode()
        inserted = message.inserted_on or datetime.now(UTC)
        try:
            dequeued = message.dequeue_count or 1
            self._invoke(self.function, queue_message(body, message.id, dequeued, inserted, message.pop_receipt or ""))
        except Exception:
            logger.exception(
                "queue_function_failed function=%s id=%s dequeue_count=%s", self.name, message.id, message.dequeue_count
            )
            self._failed(client, poison, message)
            return
        client.delete_message(message)
        logger.info("queue function=%s id=%s outcome=ok", self.name, message.id)

    def _failed(self, client: QueueClient, poison: QueueClient, message: QueueMessage) -> None:
        if (message.dequeue_count or 1) >= self.options.max_dequeue_count:
            with contextlib.suppress(ResourceExistsError):
                poison.create_queue()
            poison.send_message(message.content)
            client.delete_message(message)
            logger.warning("queue_poisoned function=%s id=%s queue=%s-poison", self.name, message.id, self.queue)
            return
        client.update_message(message, visibility_timeout=int(self.options.visibility_timeout))
