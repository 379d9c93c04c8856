"""One side of ``python -m bench.retries``: what a copy costs in the code of the tree this
process imports, against the Azurite and proxies of the parent process (issue 32).

The parent runs this file once per tree, that tree's root first on ``sys.path`` (its
``copy_ops``, ``devkit`` and ``bench``), so this file imports only what both trees have.
It prints one JSON object: the requests of a copy that succeeds at its first attempt (a
copy within the account, ended at once; an async copy from another account, pending for
``CHECKS`` sweeps' checks, then succeeded; the block engine's whole copy, its staging
messages taken as the host takes them) by kind, and the CPU per start and per abort of the
service on its event loop's thread. The parent gives each side an empty Azurite.

The requests of a retried attempt (:func:`retried_copy`) are measured by the parent in the
code now: the code before has no attempt to retry.

Size: the side's measurements and its attached harness in one file, which the code before
must be able to run without any other new module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

import copy_ops
from bench.abort_in_process import host_cpu_per_abort
from bench.harness import SMALL, T0, Harness, ProxyProcess, start_copy
from bench.partner import ACCOUNTS
from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.background.sweep import sweep
from copy_ops.copies import block_lifecycle, blocks
from copy_ops.copies.request import parse_copy_request
from devkit import Azurite, connection_string
from devkit.worker import run as awaited

# Checks of the async copy while it is pending, as docs/performance.md's cost line (b).
CHECKS = 4
# How long the stand-in takes over a copy from another account (its pace: SMALL's bytes in
# this many seconds): longer than the start and its checks take, even on a busy machine.
PACED_SECONDS = 4.0
# The block engine's copy: 16 blocks of 64 KiB, 8 to a staging message (2 messages), as
# the suite makes blocks small (tests/test_blocks_engine.py) to have several of each.
BLOCK = 64 * 1024
BLOCKS = 16
STAGE_BATCH = 8
# Starts in flight at once on the loop, as a busy instance's handlers run them.
CONCURRENCY = 16
DEADLINE_SECONDS = 600
HOST_BATCH = 16  # what the host asks for in one Get Messages (host.json's queues.batchSize)


class AttachedProxy(ProxyProcess):
    """The parent's proxy, reached by its control requests; not started or stopped here."""

    def __init__(self, port: int) -> None:  # ProxyProcess.__init__ would start a proxy: never here
        self.port = port
        self.pid = 0  # its CPU is the parent's to read (harness.helper_cpu_seconds)
        self.connection_string = connection_string(port)

    def stop(self) -> None:
        """The parent's to stop."""


class Attached(Harness):
    """The parent's harness, seen from a side: its Azurite and proxies, already running.
    ``restart`` does nothing: the parent gives each side an empty Azurite before it runs."""

    def __init__(self, latency: float, azurite_port: int, proxy_port: int, queue_proxy_port: int) -> None:
        super().__init__(latency)
        self.azurite = Azurite(azurite_port, accounts=ACCOUNTS)
        self.proxy = AttachedProxy(proxy_port)
        self.queue_proxy = AttachedProxy(queue_proxy_port)
        self.direct = BlobServiceClient.from_connection_string(connection_string(azurite_port))

    def restart(self, location: object = None) -> None:
        """The parent's to restart."""


def counted(harness: Harness, action: Callable[[], object]) -> Counter[str]:
    """The storage requests, blob and queue, by kind, that ``action`` sends."""
    before = harness.counts()
    action()
    return harness.counts() - before


def public_source(harness: Harness, container: str) -> str:
    """``a.bin`` of ``container`` in the partner's account, readable by anyone: a source the
    app may read again for another attempt (a source given with a SAS is tried once)."""
    partner = harness.partner(container)
    partner.service.get_container_client(container).set_container_access_policy({}, public_access="blob")
    return f"{partner.base}/{quote('a.bin')}"


def ready(harness: Harness) -> tuple[AppService, str, str]:
    """A service whose ledger container exists (not a copy's cost), and two containers."""
    service = harness.service()
    awaited(service.storage.ensure_container(service.settings.ledger_container))
    src, dst = harness.containers()
    return service, src, dst


def instant_copy(harness: Harness) -> Counter[str]:
    """A copy within the account: Azure ends it at once."""
    service, src, dst = ready(harness)
    body = {"source": {"container": src, "blob": "a.bin"}, "destination": {"container": dst, "blob": "now.bin"}}
    return counted(harness, lambda: start_copy(service, {**body, "timeout_seconds": DEADLINE_SECONDS}, T0))


def paced_copy(harness: Harness, service: AppService, body: dict[str, Any]) -> tuple[str, float, Counter[str]]:
    """Start a copy from another account that the stand-in ends ``PACED_SECONDS`` after its
    Copy Blob: its id, the moment (monotonic) it ends by, and the start's requests."""
    harness.proxy.configure(pace=len(SMALL) / PACED_SECONDS)
    started: list[str] = []
    spent = counted(harness, lambda: started.append(start_copy(service, body, T0)))
    return started[0], time.monotonic() + PACED_SECONDS, spent


def check(harness: Harness, service: AppService, operation_id: str) -> tuple[Counter[str], str]:
    """One sweep at the moment the copy's record asks to be looked at (read outside the
    count: a sweep does not ask); its requests and the copy's state after it."""
    moment = awaited(service.ledger.get(operation_id)).next_check_at
    assert moment is not None, operation_id
    spent = counted(harness, partial(awaited, sweep(service, moment)))
    return spent, awaited(service.ledger.get(operation_id)).state.value


def until_ended(harness: Harness, service: AppService, operation_id: str, ends_by: float) -> Counter[str]:
    """Wait for the moment the stand-in's pace ends the copy (no request: the proxy ends it
    at the next request it sees after that), then the check that finds it ended."""
    time.sleep(max(0.0, ends_by - time.monotonic()) + 0.2)
    spent, state = check(harness, service, operation_id)
    assert state == "succeeded", (operation_id, state)
    return spent


def async_copy(harness: Harness) -> dict[str, Any]:
    """A copy from another account: started, pending at ``CHECKS`` checks, then succeeded."""
    service, src, dst = ready(harness)
    body = {
        "source": public_source(harness, src),
        "destination": {"container": dst, "blob": "late.bin"},
        "timeout_seconds": DEADLINE_SECONDS,
        "engine": "async",
    }
    operation_id, ends_by, started = paced_copy(harness, service, body)
    checks = []
    for _ in range(CHECKS):
        spent, state = check(harness, service, operation_id)
        assert state == "pending", f"ended before its {CHECKS} checks: PACED_SECONDS is too short here"
        checks.append(spent)
    ended = until_ended(harness, service, operation_id, ends_by)
    harness.proxy.configure(pace=0)
    return {
        "start": started.total(),
        "checks": [spent.total() for spent in checks],
        "end": ended.total(),
        "kinds": started + sum(checks, Counter()) + ended,
    }


def drain(service: AppService, queue: QueueClient) -> None:
    """Take the work queue's messages as the host does until it is empty."""
    while True:
        try:
            messages = list(queue.receive_messages(max_messages=HOST_BATCH, visibility_timeout=300))
        except ResourceNotFoundError:
            return
        if not messages:
            return
        for message in messages:
            awaited(do_work(service, str(message.content), datetime.now(UTC)))
            queue.delete_message(message)


def block_copy(harness: Harness) -> Counter[str]:
    """The block engine's whole copy of a blob of ``BLOCKS`` blocks within the account: the
    start, the staging messages, the commit and the outcome (the second such copy of the
    service, so the first one's queue and work key are not counted)."""
    with mock.patch.object(blocks, "BLOCK_SIZE", BLOCK), mock.patch.object(block_lifecycle, "STAGE_BATCH", STAGE_BATCH):
        return _block_copy(harness)


def _block_copy(harness: Harness) -> Counter[str]:
    service, src, dst = ready(harness)
    harness.direct.get_blob_client(src, "big.bin").upload_blob(b"b" * BLOCK * BLOCKS)
    queue = QueueClient.from_connection_string(harness.connection_string, service.settings.work_queue)
    source = {"container": src, "blob": "big.bin"}

    def copied(name: str) -> None:
        now = datetime.now(UTC)
        body = {"source": source, "destination": {"container": dst, "blob": name}, "engine": "blocks"}
        operation_id = start_copy(service, {**body, "timeout_seconds": DEADLINE_SECONDS}, now)
        drain(service, queue)
        state = awaited(service.ledger.get(operation_id)).state.value
        assert state == "succeeded", (operation_id, state)

    copied("warm.bin")
    try:
        return counted(harness, partial(copied, "blocks.bin"))
    finally:
        queue.close()


def cpu_per_start(harness: Harness, size: int) -> float:
    """Milliseconds of the loop thread's CPU per start, as the handler makes one (the body
    parsed, then started), ``CONCURRENCY`` at once; copies within the account, ended at once."""
    service, src, dst = ready(harness)
    instant_copy(harness)  # the ledger's first record and the clients: not a start's cost

    def body(index: int) -> dict[str, Any]:
        return {
            "source": {"container": src, "blob": "a.bin"},
            "destination": {"container": dst, "blob": f"s/{index}.bin"},
            "timeout_seconds": DEADLINE_SECONDS,
        }

    async def measured() -> float:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(index: int) -> None:
            async with slots:
                await service.start(parse_copy_request(body(index), service.settings, T0), T0)

        began = time.thread_time()
        await asyncio.gather(*(one(index) for index in range(size)))
        return time.thread_time() - began

    return awaited(measured()) * 1000 / size


def cpu_per_abort(harness: Harness, size: int) -> float:
    """Milliseconds of the loop thread's CPU per deadline abort: ``size`` overdue copies, one
    sweep (bench/abort_in_process.py's figure)."""
    with tempfile.TemporaryDirectory(prefix="bench-retries-") as scratch:
        return host_cpu_per_abort(harness, size, Path(scratch))


def retried_copy(harness: Harness) -> dict[str, Any]:
    """An async copy whose first attempt Azure ends ``failed`` for a cause that may pass (the
    copy service's 500), retried once: the requests of its start, the check that finds it
    failed, the next attempt (the sweep at its moment), and the check that finds it ended."""
    service, src, dst = ready(harness)
    body = {
        "source": public_source(harness, src),
        "destination": {"container": dst, "blob": "retried.bin"},
        "timeout_seconds": DEADLINE_SECONDS,
        "engine": "async",
    }
    harness.proxy.fail_next()
    operation_id, _, started = paced_copy(harness, service, body)
    failed, state = check(harness, service, operation_id)
    assert state == "pending", state  # waiting for its next attempt
    attempted, state = check(harness, service, operation_id)
    assert state == "pending", state
    ended = until_ended(harness, service, operation_id, time.monotonic() + PACED_SECONDS)
    harness.proxy.configure(pace=0)
    op = awaited(service.ledger.get(operation_id))
    return {
        "start": started.total(),
        "failed": failed.total(),
        "attempt": attempted.total(),
        "attempt_kinds": attempted,
        "end": ended.total(),
        "attempts": op.attempt,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/retry_side.py")
    for name in ("--azurite-port", "--proxy-port", "--queue-proxy-port", "--size"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--latency-ms", type=float, required=True)
    args = parser.parse_args(argv)
    harness = Attached(args.latency_ms / 1000, args.azurite_port, args.proxy_port, args.queue_proxy_port)
    try:
        figures = {
            "instant": {"kinds": instant_copy(harness)},
            "async": async_copy(harness),
            "blocks": {"kinds": block_copy(harness)},
            "start_cpu_ms": cpu_per_start(harness, args.size),
            "abort_cpu_ms": cpu_per_abort(harness, args.size),
            "copy_ops": copy_ops.__file__,
        }
    finally:
        harness.close_services()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
