"""The sweep's fan-out: beyond COPY_FANOUT_THRESHOLD, due operations go to the work queue
in batches; the queue trigger settles them; a batch in flight is not handed out again; a
poisoned batch and a queue outage lose nothing. On Azurite's queue service, through the
proxy (no mock of the queue), and end to end through the development host."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from copy_ops.app_service import AppService
from copy_ops.background.sweep import settle_batch, sweep
from copy_ops.copies.model import State
from copy_ops.core.settings import Settings
from copy_ops.storage.queues import QueueStorage
from copy_ops.work import fanout, messages
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import TEST_CLIENT_OPTIONS, Blobs, SettingsFactory, open_storage
from tests.support.devhost_process import DevHostProcess
from tests.support.partner import Partner
from tests.support.queues import FAST_QUEUES
from tests.support.requests import start
from tests.support.waiting import until

NOW = datetime.now(UTC).replace(microsecond=0)
THRESHOLD = 5


@pytest.fixture
def queue_name() -> str:
    return f"work-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fanning(make_settings: SettingsFactory, proxy: PendingCopyProxy, queue_name: str) -> Iterator[AppService]:
    settings = make_settings(COPY_FANOUT_THRESHOLD=str(THRESHOLD), COPY_WORK_QUEUE=queue_name)
    queue = QueueStorage(settings.storage, queue_name, retry=TEST_CLIENT_OPTIONS["retry"])
    yield AppService(settings, open_storage(settings), queue)
    run(queue.close())


def queue_client(proxy: PendingCopyProxy, name: str) -> QueueClient:
    return QueueClient.from_connection_string(proxy.connection_string, name)


def settle_ids(message: Any) -> tuple[str, ...]:
    decoded = messages.decode(str(message.content))
    assert isinstance(decoded, messages.Settle), decoded
    return decoded.ids


def peek(client: QueueClient) -> list[Any]:
    """The queue's visible messages; none while the queue is not there yet."""
    try:
        return list(client.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def start_overdue(service: AppService, blobs: Blobs, partner: Partner, count: int) -> list[str]:
    """``count`` copies from another account, pending past their deadline."""
    partner.put("a.bin", b"x" * 100)
    partner.proxy.pending_copies = True
    return [
        start(service, partner.body(blobs.dst, dest_name=f"{i}.bin", timeout_seconds=60), NOW).operation.id
        for i in range(count)
    ]


def test_beyond_the_threshold_due_operations_go_to_the_queue_once(
    fanning: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, queue_name: str
) -> None:
    ids = start_overdue(fanning, blobs, partner, 20)
    after = NOW + timedelta(seconds=61)
    first = run(sweep(fanning, after))
    assert (first.outcomes["aborted"], first.handed_out, first.batches) == (THRESHOLD, 15, 1)
    [message] = queue_client(proxy, queue_name).peek_messages(max_messages=32)
    handed = settle_ids(message)
    assert len(handed) == 15 and set(handed) <= set(ids)
    # While in flight, the next sweep does not hand them out again.
    second = run(sweep(fanning, after + timedelta(seconds=1)))
    assert second.handed_out == 0
    assert len(queue_client(proxy, queue_name).peek_messages(max_messages=32)) == 1
    # The queue trigger's work: each operation settled as the sweep would, each once.
    run(settle_batch(fanning, handed, after + timedelta(seconds=2)))
    assert {run(fanning.ledger.get(op_id)).state for op_id in ids} == {State.ABORTED}
    copies = [proxy.copy_state(blobs.dst, f"{i}.bin") for i in range(20)]
    assert all(copy is not None and copy.status == "aborted" for copy in copies)


def test_below_the_threshold_no_queue_request_is_made(
    fanning: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    start_overdue(fanning, blobs, partner, THRESHOLD)
    assert proxy.queue_proxy is not None
    proxy.queue_proxy.log.counts.clear()
    summary = run(sweep(fanning, NOW + timedelta(seconds=61)))
    assert (summary.outcomes["aborted"], summary.handed_out) == (THRESHOLD, 0)
    assert sum(proxy.queue_proxy.log.counts.values()) == 0


def test_a_queue_outage_loses_nothing(
    fanning: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, queue_name: str
) -> None:
    ids = start_overdue(fanning, blobs, partner, 12)
    assert proxy.queue_proxy is not None
    proxy.queue_proxy.inject("put_message", times=100)
    proxy.queue_proxy.inject("put_blob", times=100)  # creating the queue, too
    failed = run(sweep(fanning, NOW + timedelta(seconds=61)))
    assert failed.failed and failed.handed_out == 0
    proxy.queue_proxy.clear_faults()
    # Nothing was remembered as in flight: the next sweep settles five and hands out the rest.
    again = run(sweep(fanning, NOW + timedelta(seconds=62)))
    assert (again.outcomes["aborted"], again.handed_out) == (THRESHOLD, 7 - THRESHOLD)
    [message] = queue_client(proxy, queue_name).peek_messages(max_messages=32)
    run(settle_batch(fanning, settle_ids(message), NOW + timedelta(seconds=63)))
    assert {run(fanning.ledger.get(op_id)).state for op_id in ids} == {State.ABORTED}


def test_the_in_flight_record_merges_two_sweeps_writing_at_once(
    fanning: AppService, make_settings: SettingsFactory
) -> None:
    settings: Settings = fanning.settings
    first, second = (fanout.InFlight(fanning.storage, settings.ledger_container) for _ in range(2))
    assert run(first.load(NOW)) == set() and run(second.load(NOW)) == set()
    first.add(["a", "b"], NOW + fanout.LEASE)
    second.add(["c"], NOW + fanout.LEASE)
    run(first.save(NOW))
    run(second.save(NOW))  # its ETag is stale: it reloads and merges
    assert run(fanout.InFlight(fanning.storage, settings.ledger_container).load(NOW)) == {"a", "b", "c"}
    # Expired batches are dropped.
    assert run(fanout.InFlight(fanning.storage, settings.ledger_container).load(NOW + fanout.LEASE)) == set()


# -- end to end: the development host's queue trigger ------------------------------


@pytest.fixture
def host(proxy: PendingCopyProxy, queue_name: str) -> Iterator[DevHostProcess]:
    started = DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
            "COPY_FANOUT_THRESHOLD": str(THRESHOLD),
            "COPY_WORK_QUEUE": queue_name,
        },
        host_json=FAST_QUEUES,
    )
    yield started
    started.stop()


def start_over_http(host: DevHostProcess, blobs: Blobs, partner: Partner, count: int) -> list[str]:
    """``count`` copies from another account on Copy Blob (the host's engine is auto, which
    would take the block engine for them), pending past their deadline."""
    partner.put("a.bin", b"x" * 100)
    partner.proxy.pending_copies = True
    ids = []
    for i in range(count):
        body = partner.body(blobs.dst, dest_name=f"{i}.bin", timeout_seconds=1, engine="async")
        reply = host.call("POST", "/api/copies", body)
        assert reply.status == 202, reply.body
        ids.append(reply.json()["id"])
    time.sleep(1.1)  # past every deadline: the condition the sweep needs, not luck
    return ids


def states(host: DevHostProcess, ids: list[str]) -> list[Any]:
    return [host.call("GET", f"/api/copies/{op_id}").json()["state"] for op_id in ids]


@pytest.mark.system
def test_the_queue_trigger_settles_what_the_timer_hands_out(
    host: DevHostProcess, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    ids = start_over_http(host, blobs, partner, 25)
    assert host.call("POST", "/admin/functions/sweep", {"input": ""}).status == 202
    assert until(lambda: states(host, ids) == ["aborted"] * 25), states(host, ids)
    assert host.wait_for_log(lambda log: "handed_out=20" in log and "work_done" in log)


@pytest.mark.system
def test_a_poisoned_batch_loses_nothing(
    host: DevHostProcess, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, queue_name: str, fanning: AppService
) -> None:
    ids = start_over_http(host, blobs, partner, 10)
    # Every read of a record fails for a while: the batch cannot be settled, is retried
    # maxDequeueCount (3) times, and moves to the poison queue.
    # (A refusal the SDK does not retry: the test waits on the queue's retries, not the SDK's.)
    proxy.inject("get_blob", times=10_000, path_contains="/ops/", status=403, code="AuthorizationFailure")
    assert host.call("POST", "/admin/functions/sweep", {"input": ""}).status == 202
    # The host moves it to the poison queue, whose trigger takes it (and leaves its work to
    # the sweep): its log says so; a peek at the poison queue could miss it, taken at once.
    poisoned = re.compile(r"work_poisoned id=\S+ left=1")
    assert host.wait_for_log(lambda log: poisoned.search(log) is not None, timeout=60), host.log()[-3000:]
    proxy.clear_faults()
    # The records stayed due: once the batch's lease is over, a sweep finds them again.
    later = datetime.now(UTC) + fanout.LEASE + timedelta(seconds=1)
    settings = fanning.settings
    assert settings.work_queue == queue_name
    summary = run(sweep(shared_ledger(fanning, host), later))
    # All ten: the first sweep's own five could not be read either.
    assert (summary.due, summary.outcomes["aborted"], summary.handed_out) == (10, THRESHOLD, 10 - THRESHOLD)
    assert until(lambda: states(host, ids) == ["aborted"] * 10), states(host, ids)


@pytest.mark.system
def test_a_message_the_app_did_not_seal_is_dropped_unread_on_either_queue(
    host: DevHostProcess, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, queue_name: str
) -> None:
    """A settle of overdue copies, as anyone with a queue role could write it: the host's
    trigger of each queue drops it before reading it, and the copies stay pending."""
    ids = start_over_http(host, blobs, partner, 3)  # past their deadlines: a settle would abort them
    forged = messages.encode(messages.Settle(tuple(ids)))
    for name in (queue_name, f"{queue_name}-poison"):
        client = queue_client(proxy, name)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.send_message(forged)
        client.close()
    refused = re.compile(r"work_message_refused id=\S+ queue=(work|poison) code=Unsealed")
    assert host.wait_for_log(lambda log: {m.group(1) for m in refused.finditer(log)} == {"work", "poison"})
    assert states(host, ids) == ["pending"] * 3
    assert not re.search(r"(?<!=)work_(done|poisoned) id=", host.log())  # the app's lines, not the host's


def shared_ledger(service: AppService, host: DevHostProcess) -> AppService:
    """The same ledger and queue as the host's: another instance of the app."""
    ledger = host.env["COPY_LEDGER_CONTAINER"]
    settings = Settings.from_env({**host.env, "COPY_LEDGER_CONTAINER": ledger})
    return AppService(settings, open_storage(settings), service.work)


def test_a_queue_created_on_first_use_gets_each_message_once(settings: Settings, proxy: PendingCopyProxy) -> None:
    """The first sends find no queue; one of them is slow and reaches storage after the
    queue was created. It was refused (the queue was missing when it was answered), so
    it is sent again once, and nothing lands twice."""
    assert proxy.queue_proxy is not None
    name = f"first-{uuid.uuid4().hex[:10]}"
    proxy.queue_proxy.inject("put_message", mode="delay", seconds=0.5)
    queue = QueueStorage(settings.storage, name, retry=TEST_CLIENT_OPTIONS["retry"])
    try:
        run(queue.send([f"message {index}" for index in range(10)]))
    finally:
        run(queue.close())
    reader = QueueClient.from_connection_string(proxy.connection_string, name)
    try:
        texts = sorted(str(message.content) for message in reader.receive_messages(max_messages=32))
        while batch := [str(message.content) for message in reader.receive_messages(max_messages=32)]:
            texts = sorted(texts + batch)
    finally:
        reader.close()
    assert texts == sorted(f"message {index}" for index in range(10))


def test_concurrent_first_sends_build_one_client_and_create_the_queue_once(
    settings: Settings, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of first uses (events after a restart) builds one client, not one each
    (the others' sessions were left unclosed), and queues created by two senders at once
    are both fine (the SDK says 'Queue already exists' without a status)."""
    from copy_ops.storage import client, queues

    built: list[object] = []
    real = client.build_queue_client

    async def counted(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)  # a build takes a moment: long enough for the others to arrive
        client = await real(*args, **kwargs)
        built.append(client)
        return client

    monkeypatch.setattr(queues, "build_queue_client", counted)
    name = f"burst-{uuid.uuid4().hex[:10]}"
    queue = QueueStorage(settings.storage, name, retry=TEST_CLIENT_OPTIONS["retry"])

    async def burst() -> list[BaseException]:
        sends = [queue.send([f"message {index}"]) for index in range(8)]
        results = await asyncio.gather(*sends, return_exceptions=True)
        return [result for result in results if isinstance(result, BaseException)]

    errors = run(burst())
    run(queue.close())
    assert not errors and len(built) == 1, (errors, built)
    reader = QueueClient.from_connection_string(proxy.connection_string, name)
    try:
        texts = [str(message.content) for message in reader.receive_messages(max_messages=32)]
    finally:
        reader.close()
    assert sorted(texts) == sorted(f"message {index}" for index in range(8))
