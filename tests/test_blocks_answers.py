"""What the block engine answers a caller, through the HTTP handlers as the host calls them,
against Azurite behind the stand-in (issue 28): a source changed at a one-request start, an
abort while a commit is in flight, a one-request copy whose answer never came."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from copy_ops.copies import block_lifecycle, blocks
from copy_ops.copies.model import SourceFacts
from copy_ops.copies.ports import BlockSource
from copy_ops.edges import runtime
from copy_ops.storage.block_copies import BlockSide
from devkit import PendingCopyProxy
from devkit.app import payload, request
from devkit.worker import run, shared_worker
from tests.conftest import Blobs, Handlers
from tests.support.jobs import drain_through
from tests.support.requests import copy_body, is_problem
from tests.support.waiting import until

SMALL = b"one request's worth" * 100
BLOCK = 64 * 1024


def start(handlers: Handlers, blobs: Blobs, **fields: Any) -> Any:
    body = copy_body(blobs.src, blobs.dst, engine="blocks", timeout_seconds=600, **fields)
    return handlers["start_copy"](request("POST", "copies", body))


def abort(handlers: Handlers, operation_id: str) -> Any:
    return handlers["abort_copy"](request("POST", f"copies/{operation_id}/abort", route_params={"id": operation_id}))


def listed(handlers: Handlers) -> list[Any]:
    items: list[Any] = payload(handlers["list_copies"](request("GET", "copies")))["items"]
    return items


@pytest.mark.parametrize(
    "answer",
    [
        "the stand-in's, as Azure's: 412 SourceConditionNotMet",
        "Azure's: 412 SourceConditionNotMet",
        "Azure's before 2023: 412 CannotVerifyCopySource, no source status",
    ],
)
def test_a_source_changed_at_a_one_request_start_is_409_source_changed_in_one_detail(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """Issue 28: it answered 412 precondition-failed (documented for a lease on the
    destination), code CannotVerifyCopySource, its detail said twice."""
    blobs.put(blobs.src, "a.bin", SMALL)
    if answer.startswith("the stand-in's"):
        facts = BlockSide.source_facts

        async def read_then_changed(self: BlockSide, source: BlockSource) -> SourceFacts:
            pinned = await facts(self, source)
            await asyncio.to_thread(blobs.put, blobs.src, "a.bin", b"another version")  # its ETag moves
            return pinned

        monkeypatch.setattr(BlockSide, "source_facts", read_then_changed)
    else:
        code = "SourceConditionNotMet" if answer.startswith("Azure's:") else "CannotVerifyCopySource"
        proxy.inject("put_blob_from_url", status=412, code=code)
    body = is_problem(start(handlers, blobs), 409)
    assert (body["type"], body["code"]) == ("urn:copy-ops:problem:conflict", "source_changed")
    assert body["detail"] == (
        "the source changed (or vanished) while it was copied; nothing was written to the destination"
    )
    assert proxy.log.counts["put_blob_from_url"] == 1
    assert not blobs.exists(blobs.dst, "a.bin")
    assert listed(handlers) == []  # refused before anything started: nothing left behind


def test_an_abort_while_the_commit_is_in_flight_answers_commit_in_flight(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: it answered 503 code Busy; the retry of lost races took CommitInFlight for one."""
    monkeypatch.setattr(blocks, "BLOCK_SIZE", BLOCK)
    data = os.urandom(3 * BLOCK - 100)  # three blocks, in one staging message
    blobs.put(blobs.src, "a.bin", data)
    started = start(handlers, blobs)
    assert started.status_code == 202, started.get_body()
    operation_id = payload(started)["id"]

    # The commit held in flight (its send recorded, Put Block List not yet answered) until released.
    entered, release = threading.Event(), asyncio.Event()
    commit = BlockSide.commit_blocks

    async def held(self: BlockSide, *args: Any) -> None:
        entered.set()
        await release.wait()
        await commit(self, *args)

    monkeypatch.setattr(BlockSide, "commit_blocks", held)
    queue = QueueClient.from_connection_string(proxy.connection_string, runtime.settings().work_queue)
    with ThreadPoolExecutor(1) as host:
        staging = host.submit(drain_through, handlers["work"], queue)
        try:
            assert until(entered.is_set)
            in_flight = abort(handlers, operation_id)
        finally:
            shared_worker().loop.call_soon_threadsafe(release.set)
        assert staging.result(timeout=60) == 1
    body = is_problem(in_flight, 503)
    assert body["code"] == "CommitInFlight" and in_flight.headers["Retry-After"]
    assert proxy.log.counts["put_blocklist"] == 1
    # Asked again: it has landed, and the copy cannot be aborted any more.
    landed = is_problem(abort(handlers, operation_id), 409)
    assert landed["operation"]["state"] == "succeeded"
    assert blobs.read(blobs.dst, "a.bin") == data


@pytest.mark.parametrize(("mode", "sends"), [("status", 2), ("lost_response", 1)])
def test_a_one_request_copy_whose_outcome_is_unknown_is_202_pending_and_the_sweep_ends_it(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, mode: str, sends: int
) -> None:
    """Issue 28: it answered 503 storage-unavailable though its operation was recorded; a
    client retrying without an Idempotency-Key started a second copy. Put Blob From URL is
    answered 503 (sent once: no retry): ``status``, it never reached storage, and the sweep
    sends it again once it can no longer land; ``lost_response``, it landed, and the sweep
    sees it there."""
    blobs.put(blobs.src, "a.bin", SMALL)
    proxy.inject("put_blob_from_url", mode=mode)
    started = start(handlers, blobs)
    assert started.status_code == 202, started.get_body()
    op = payload(started)
    assert started.headers["Location"] == f"/api/copies/{op['id']}" and int(started.headers["Retry-After"]) >= 1
    assert (op["state"], op["engine"], op["blocks"]) == ("pending", "blocks", {"staged": 0, "total": 1})
    assert [item["id"] for item in listed(handlers)] == [op["id"]]

    service = run(runtime.service())
    grace_over = datetime.now(UTC) + block_lifecycle.COMMIT_GRACE + timedelta(seconds=1)
    run(service.process_due(op["id"], grace_over))
    read = handlers["get_copy"](request("GET", f"copies/{op['id']}", route_params={"id": op["id"]}))
    assert payload(read)["state"] == "succeeded"
    assert blobs.read(blobs.dst, "a.bin") == SMALL
    assert proxy.log.counts["put_blob_from_url"] == sends
