"""Events of final states: built (pure, table-driven), sent to Azurite's queue service
through the proxy (at least once: after a crash between the final state and the
delivery, and while the target is down), and to an Event Grid topic as the real
``azure-eventgrid`` client sends them (a local receiver checks the request)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.events import operation_event
from copy_ops.copies.model import BlobRef, Cleanup, Operation, State, Terms
from copy_ops.core.errors import StorageFault, StorageUnavailable
from copy_ops.core.settings import Settings
from copy_ops.jobs.events import job_event
from copy_ops.jobs.model import Job, JobState
from copy_ops.observability.events import Event
from copy_ops.storage.event_targets import EventTargets
from copy_ops.storage.queues import QueueStorage
from devkit import DEV_ACCOUNT, PendingCopyProxy
from devkit.worker import run
from tests.conftest import TEST_CLIENT_OPTIONS, Blobs, SettingsFactory, open_storage
from tests.support.partner import Partner
from tests.support.requests import copy_body, start

NOW = datetime.now(UTC).replace(microsecond=0)


def _operation(state: State = State.SUCCEEDED, **changes: Any) -> Operation:
    op = Operation(
        id="8234567890123-0123abcd",
        state=state,
        source="https://src.example/c/a.bin",
        source_blob=None,
        destination=BlobRef("dst", "a.bin"),
        terms=Terms(NOW + timedelta(hours=1)),
        created_at=NOW,
        finished_at=NOW + timedelta(seconds=5),
    )
    return replace(op, **changes)


@pytest.mark.parametrize(
    ("state", "event_type"),
    [
        (State.SUCCEEDED, "copyops.copy.succeeded"),
        (State.FAILED, "copyops.copy.failed"),
        (State.ABORTED, "copyops.copy.aborted"),
    ],
)
def test_an_operation_event_is_a_cloudevent_with_a_stable_id(state: State, event_type: str) -> None:
    op = _operation(state, cleanup=(Cleanup.ANNOUNCE, Cleanup.RELEASE_SOURCE_LEASE))
    event = operation_event(op, "https://acct.example/dst/a.bin")
    body = event.as_dict()
    assert body["specversion"] == "1.0" and body["type"] == event_type and body["source"] == "/copy-ops"
    assert (body["subject"] == f"copies/{op.id}" and body["time"] == "2000-01-01T00:00:00Z") or body["time"]
    assert body["data"]["id"] == op.id and body["data"]["state"] == state.value
    # The owed event is not shown as cleanup; the lease release is.
    assert body["data"]["cleanup_pending"] == ["release_source_lease"]
    # The same announcement, built again (another writer, a later sweep): the same id.
    assert operation_event(replace(op, updated_at=NOW + timedelta(minutes=9)), "u").id == event.id
    others = {operation_event(_operation(other), "u").id for other in (State.SUCCEEDED, State.FAILED, State.ABORTED)}
    assert len(others) == 3
    assert json.loads(event.to_json()) == body


def test_a_job_event_names_the_job_and_its_state() -> None:
    job = Job.from_json(
        json.dumps(
            {
                "id": "8234567890123-0123abcd",
                "state": JobState.SUCCEEDED.value,
                "source": None,
                "manifest_size": 2,
                "destination_container": "dst",
                "destination_prefix": "",
                "deadline": "2030-01-01T00:00:00Z",
                "created_at": "2029-12-31T00:00:00Z",
                "finished_at": "2029-12-31T01:00:00Z",
                "overwrite": False,
                "lease_source": False,
                "on_abort": "keep",
                "metadata": {},
                "fingerprint": "f",
            }
        ).encode()
    )
    event = job_event(job)
    assert (event.type, event.subject, event.time) == (
        "copyops.job.succeeded",
        f"jobs/{job.id}",
        "2029-12-31T01:00:00Z",
    )
    assert event.id == job_event(replace(job, checks=7)).id != job_event(replace(job, state=JobState.FAILED)).id


# -- the queue target, on Azurite ---------------------------------------------------------


class Crash(BaseException):
    """The process dying between two steps (not an error anything catches)."""


class Announcers:
    """The real targets, with a crash to order before the next delivery."""

    def __init__(self, targets: EventTargets) -> None:
        self.targets = targets
        self.crash_next = False

    async def announce(self, events: Sequence[Event]) -> None:
        if self.crash_next:
            self.crash_next = False
            raise Crash
        await self.targets.announce(events)

    async def close(self) -> None:
        await self.targets.close()


@pytest.fixture
def events_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(COPY_EVENTS_QUEUE=f"events-{datetime.now(UTC).strftime('%H%M%S%f')}")


@pytest.fixture
def announcers(events_settings: Settings) -> Iterator[Announcers]:
    announcers = Announcers(EventTargets(events_settings, retry=TEST_CLIENT_OPTIONS["retry"]))
    yield announcers
    run(announcers.close())


def _service(settings: Settings, announcers: Announcers) -> AppService:
    return AppService(settings, open_storage(settings), announcer=announcers)


def _delivered(proxy: PendingCopyProxy, settings: Settings) -> list[dict[str, Any]]:
    assert settings.events_queue is not None
    queue = QueueClient.from_connection_string(proxy.connection_string, settings.events_queue)
    try:
        return [json.loads(str(message.content)) for message in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []
    finally:
        queue.close()


def test_a_final_state_is_announced_on_the_queue(
    events_settings: Settings, announcers: Announcers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    service = _service(events_settings, announcers)
    blobs.put(blobs.src, "a.bin", b"x")
    op = start(service, copy_body(blobs.src, blobs.dst), NOW).operation
    [event] = _delivered(proxy, events_settings)
    assert (event["type"], event["subject"], event["data"]["id"]) == (
        "copyops.copy.succeeded",
        f"copies/{op.id}",
        op.id,
    )
    stored = run(service.ledger.get(op.id))
    assert stored.cleanup == () and stored.next_check_at is None  # nothing owed, nothing due


def test_an_event_of_a_copy_from_a_sas_url_carries_no_secret(
    events_settings: Settings, announcers: Announcers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    service = _service(events_settings, announcers)
    blobs.put(blobs.src, "a.bin", b"x")
    sas = blobs.container_sas(blobs.src)
    body = {
        "source": f"{proxy.url}/{DEV_ACCOUNT}/{blobs.src}/a.bin?{sas}",
        "destination": {"container": blobs.dst, "blob": "s.bin"},
    }
    start(service, body, NOW)
    [event] = _delivered(proxy, events_settings)
    text = json.dumps(event)
    assert event["type"] == "copyops.copy.succeeded" and "sig=" not in text and sas not in text


def test_a_queue_gone_again_after_its_creation_is_an_error_not_a_loss(
    events_settings: Settings, proxy: PendingCopyProxy
) -> None:
    assert proxy.queue_proxy is not None and events_settings.events_queue is not None
    proxy.queue_proxy.inject("put_message", status=404, code="QueueNotFound", times=100)
    queue = QueueStorage(events_settings.storage, events_settings.events_queue, retry=TEST_CLIENT_OPTIONS["retry"])
    try:
        with pytest.raises(StorageUnavailable):
            run(queue.send(["one", "two"]))
    finally:
        run(queue.close())


def test_a_crash_between_the_final_state_and_the_delivery_is_repaired_by_the_sweep(
    events_settings: Settings, announcers: Announcers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    service = _service(events_settings, announcers)
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    op = start(service, partner.body(blobs.dst, timeout_seconds=60), NOW).operation
    announcers.crash_next = True
    with pytest.raises(Crash):
        run(sweep(service, NOW + timedelta(seconds=61)))  # aborted and recorded, then the process dies
    owed = run(service.ledger.get(op.id))
    assert owed.state is State.ABORTED and owed.cleanup == (Cleanup.ANNOUNCE,)
    assert _delivered(proxy, events_settings) == []
    restarted = _service(events_settings, announcers)
    summary = run(sweep(restarted, NOW + timedelta(seconds=62)))
    assert not summary.failed
    [event] = _delivered(proxy, events_settings)
    assert event["type"] == "copyops.copy.aborted" and event["data"]["abort_reason"] == "deadline"
    assert run(restarted.ledger.get(op.id)).cleanup == ()
    run(sweep(restarted, NOW + timedelta(seconds=120)))
    assert len(_delivered(proxy, events_settings)) == 1  # announced once it is taken: not again


def test_a_target_down_for_a_while_gets_the_event_when_it_is_back(
    events_settings: Settings, announcers: Announcers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    assert proxy.queue_proxy is not None
    service = _service(events_settings, announcers)
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.queue_proxy.inject("put_message", times=1000)  # every try, until it is back
    op = start(service, copy_body(blobs.src, blobs.dst), NOW).operation
    assert op.state is State.SUCCEEDED  # the caller is answered: the event is owed, not lost
    for minute in range(1, 3):
        run(sweep(service, NOW + timedelta(minutes=minute)))
        assert run(service.ledger.get(op.id)).cleanup == (Cleanup.ANNOUNCE,)
    proxy.queue_proxy.reset()
    run(sweep(service, NOW + timedelta(minutes=3)))
    [event] = _delivered(proxy, events_settings)
    assert event["id"] == operation_event(run(service.ledger.get(op.id)), "u").id
    assert run(service.ledger.get(op.id)).cleanup == ()


# -- Event Grid, as the real client sends to it -------------------------------------------


class Receiver:
    """A local stand-in of an Event Grid topic endpoint: records each request, answers
    with ``status`` (200: taken)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_event_grid_gets_a_cloudevents_batch_with_the_key(make_settings: SettingsFactory, receiver: Receiver) -> None:
    settings = make_settings(COPY_EVENTS_TOPIC_ENDPOINT=receiver.endpoint, COPY_EVENTS_TOPIC_KEY="topic-key-123")
    targets = EventTargets(settings, retry={"retry_total": 0, "backoff": 0.1, "random_jitter_range": 0.1})
    event = operation_event(_operation(State.ABORTED), "https://acct.example/dst/a.bin")
    try:
        run(targets.announce([event]))
        [(headers, body)] = receiver.requests
        assert headers["aeg-sas-key"] == "topic-key-123"
        assert headers["content-type"].startswith("application/cloudevents-batch+json")
        [sent] = json.loads(body)
        assert {key: sent[key] for key in ("specversion", "id", "source", "type", "subject")} == {
            "specversion": "1.0",
            "id": event.id,
            "source": "/copy-ops",
            "type": "copyops.copy.aborted",
            "subject": event.subject,
        }
        assert sent["data"] == event.data and sent["time"].startswith(event.time[:19])
        receiver.status = 503
        with pytest.raises(StorageUnavailable):
            run(targets.announce([event]))
        receiver.status = 401
        with pytest.raises((StorageFault, StorageUnavailable)):
            run(targets.announce([event]))
    finally:
        run(targets.close())
