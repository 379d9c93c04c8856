"""Jobs in tests: a service wired to Azurite's queue service through the proxy, and a
stand-in for the host's queue trigger that delivers the work queue's messages to
``do_work`` as the host would (a message that raises is delivered again)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.background.sweep import sweep
from copy_ops.copies.ports import WorkQueue
from copy_ops.core.errors import CopyOpsError, InvalidRequest
from copy_ops.jobs.model import Job, JobOutcome, JobState
from copy_ops.jobs.request import parse_job_request
from copy_ops.storage import BlobStorage
from copy_ops.storage.queues import QueueStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import TEST_CLIENT_OPTIONS, Blobs, SettingsFactory, open_storage
from tests.support.devhost_process import DevHostProcess
from tests.support.partner import Partner

# A job's work is done after this many deliveries, or the test has found a bug.
MOST_DELIVERIES = 500


@dataclass
class Delivered:
    kinds: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class JobWorld:
    """One app instance (service, work queue) and the queue as the host reads it."""

    def __init__(
        self,
        make_settings: SettingsFactory,
        proxy: PendingCopyProxy,
        wrap: Callable[[BlobStorage], Any] | None = None,
        **settings: str,
    ) -> None:
        self.proxy = proxy
        self.settings = make_settings(COPY_WORK_QUEUE=f"work-{uuid.uuid4().hex[:10]}", **settings)
        # Another instance of the same app (beside) gets the same settings: the same queue.
        self.queue_name = self.settings.work_queue
        self.work = QueueStorage(self.settings.storage, self.queue_name, retry=TEST_CLIENT_OPTIONS["retry"])
        storage = open_storage(self.settings)
        # ``wrap``: the instance's storage seen through a test's hands (a kill switch, say).
        self.service = AppService(self.settings, wrap(storage) if wrap else storage, self.work)
        self.queue = QueueClient.from_connection_string(proxy.connection_string, self.queue_name)

    @property
    def sealed(self) -> WorkQueue:
        """The instance's queue as it sends: every message sealed with the app's key (the
        app's own, or one forged as if the key had leaked)."""
        assert self.service.work is not None
        return self.service.work

    @classmethod
    def beside(cls, world: JobWorld, wrap: Callable[[BlobStorage], Any] | None = None) -> JobWorld:
        """Another instance of the same app: its own clients, the same ledger and queue."""
        return cls(lambda **overrides: world.settings, world.proxy, wrap)

    def close(self) -> None:
        run(self.work.close())
        self.queue.close()

    def start(self, body: Any, now: datetime, key: str | None = None) -> JobOutcome:
        request = parse_job_request(body, self.settings, now)
        return run(self.service.jobs.start(request, now, key))

    def deliver(
        self,
        now: datetime,
        *,
        before: Callable[[str], None] | None = None,
        rounds: int | None = None,
        visibility: timedelta | None = None,
    ) -> Delivered:
        """Deliver every message until the queue is empty (or for so many ``rounds``), as the
        host's trigger does: one that raises is made visible again at once. With
        ``visibility``, the clock the work sees moves on by that much at each such failure,
        as the host's redelivery comes after its visibility timeout (without it, time
        stands still: for tests whose instances must not outrun each other's clocks)."""
        most = rounds or MOST_DELIVERIES
        delivered = Delivered()
        clock = now
        for _ in range(most):
            messages = self._receive()
            if not messages:
                return delivered
            for message in messages:
                text = str(message.content)
                if before is not None:
                    before(text)
                try:
                    kind, _ = run(do_work(self.service, text, clock, message.inserted_on))
                except InvalidRequest as exc:
                    # Not a message of the app's: the trigger logs it and drops it.
                    delivered.failures.append(f"{exc.kind} {exc.code}")
                    self.queue.delete_message(message)
                    continue
                except BaseException as exc:
                    if not isinstance(exc, CopyOpsError):
                        # The instance died (a test's kill): its message comes back after
                        # its visibility timeout, to whichever instance takes it then.
                        self.queue.update_message(message, visibility_timeout=0)
                        raise

                    delivered.failures.append(f"{exc.kind} {exc.detail}")
                    self.queue.update_message(message, visibility_timeout=0)
                    clock += visibility or timedelta(0)
                    continue
                delivered.kinds[kind] += 1
                self.queue.delete_message(message)
        if rounds is not None:
            return delivered
        raise AssertionError(
            f"the queue was not empty after {most} rounds: {delivered.kinds}, {len(delivered.failures)} failures, "
            f"the last: {delivered.failures[-3:]}"
        )

    def take_batches(self, now: datetime) -> list[str]:
        """Deliver the job's page messages (the listing); the batches they handed out,
        taken off the queue and not done, for a test to deliver as it likes. Any other
        message is left on the queue."""
        batches: list[str] = []
        others: list[Any] = []
        for _ in range(MOST_DELIVERIES):
            messages = self._receive()
            if not messages:
                break
            for message in messages:
                text = str(message.content)
                kind = json.loads(text).get("kind")
                if kind == "batch":
                    batches.append(text)
                elif kind == "page":
                    run(do_work(self.service, text, now, message.inserted_on))
                else:
                    others.append(message)
                    continue
                self.queue.delete_message(message)
        for message in others:
            self.queue.update_message(message, visibility_timeout=0)
        return batches

    def _receive(self) -> list[Any]:
        try:
            return list(self.queue.receive_messages(messages_per_page=16, max_messages=16, visibility_timeout=60))
        except ResourceNotFoundError:
            return []

    def peek(self) -> list[str]:
        try:
            return [str(message.content) for message in self.queue.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def job(self, job_id: str, now: datetime) -> Job:
        return run(self.service.jobs.get(job_id, now))


def drain_through(work: Callable[[Any], None], queue: QueueClient, rounds: int = 50) -> int:
    """Hand every message of ``queue`` to the queue trigger's function ``work`` as the host
    does (its input built by azure.functions' converters); how many were done."""
    from devkit.inputs import queue_message

    done = 0
    for _ in range(rounds):
        try:
            messages = list(queue.receive_messages(max_messages=16, visibility_timeout=60))
        except ResourceNotFoundError:
            return done
        if not messages:
            return done
        for message in messages:
            body = str(message.content).encode()
            inserted = message.inserted_on or datetime.now(UTC)
            work(queue_message(body, message.id, message.dequeue_count or 1, inserted, message.pop_receipt or ""))
            queue.delete_message(message)
            done += 1
    return done


# Jobs whose items stay pending, ended by sweeps past their deadline.
NOW = datetime.now(UTC).replace(microsecond=0)
TIMEOUT = 600
# The host delivers a message that failed again after its visibility timeout (host.json).
VISIBILITY = timedelta(seconds=10)


def arrange(blobs: Blobs, count: int) -> list[str]:
    """``count`` blobs under ``in/`` of the app's own account, whose copies end at once."""
    names = [f"in/{i:03d}.bin" for i in range(count)]
    for name in names:
        blobs.put(blobs.src, name, b"x")
    return names


def arrange_pending(partner: Partner, count: int) -> list[str]:
    """``count`` blobs under ``in/`` of the second account, whose copies stay pending, as
    copies from another account do on Azure; the job's source: ``partner.listing("in/")``."""
    names = [f"in/{i:03d}.bin" for i in range(count)]
    for name in names:
        partner.put(name, b"x")
    partner.proxy.pending_copies = True
    return names


def job_body(blobs: Blobs, source: object = None, **fields: Any) -> dict[str, Any]:
    """A job of the test's ``in/`` to its ``out/``, with ``TIMEOUT``, and ``fields``."""
    return {
        "source": source or {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": TIMEOUT,
        **fields,
    }


def posted(host: DevHostProcess, body: dict[str, Any]) -> str:
    """The job ``body`` posted to ``host`` over HTTP (202): its id."""
    reply = host.call("POST", "/api/jobs", body)
    assert reply.status == 202, reply.body
    return str(reply.json()["id"])


def finish(world: JobWorld, job_id: str) -> None:
    """Past the deadline: sweeps abort the pending items and end the job."""
    after = NOW + timedelta(seconds=TIMEOUT + 1)
    for step in range(3):
        run(sweep(world.service, after + timedelta(minutes=step)))
        world.deliver(after + timedelta(minutes=step))
    job = world.job(job_id, after + timedelta(minutes=3))
    assert job.state is JobState.ABORTED or job.state.is_final, job


def assert_each_started_once(proxy: PendingCopyProxy, blobs: Blobs, names: list[str]) -> None:
    expected = {f"/devstoreaccount1/{blobs.dst}/out/{name[3:]}" for name in names}
    assert set(proxy.started) == expected
    assert set(proxy.started.values()) == {1}, {k: v for k, v in proxy.started.items() if v != 1}
