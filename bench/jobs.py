"""A prefix job of N blobs: from the POST until every item is started, its storage
requests per item by kind (enumeration and queue traffic included), what the job's end
costs after that (its check and its report, apart), and what one status call costs at N
items.

The work queue's messages are taken as the Functions host takes them (Get Messages,
the function, Delete Message), in this process: one instance, as the issue asks.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from bench.harness import Harness
from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.jobs.request import parse_job_request
from devkit.worker import run as awaited

# What the host asks for in one Get Messages (host.json's queues.batchSize is 16).
HOST_BATCH = 16
# A job's page handler or check may still be running when the queue looks empty: the
# host polls again after a while; so does this, a few times, before it says "done".
EMPTY_POLLS = 3
# The messages that start items. The copies end at once, so the job ends in the same
# drain (a check, then its report: a read an item); that is its end's cost, not the starts'.
STARTS = ("page", "batch", "chunk")


def run(harness: Harness, size: int) -> None:
    print(f"\n== a prefix job of {size:,} blobs ==")
    harness.restart()
    src, dst = _source(harness, size)
    service = harness.service()
    harness.proxy.configure(pending=False)
    queue = QueueClient.from_connection_string(harness.connection_string, service.settings.work_queue)
    before = harness.counts()
    began = time.perf_counter()
    body = {"source": {"container": src, "prefix": "drop/"}, "destination": {"container": dst}, "timeout_seconds": 3600}
    now = datetime.now(UTC)
    job_id = awaited(service.jobs.start(parse_job_request(body, service.settings, now), now)).job.id
    posted = time.perf_counter() - began
    started_after, at_last_start, kinds = _drain(harness, service, queue, began)
    spent = at_last_start - before
    ending = harness.counts() - at_last_start
    job = awaited(service.jobs.get(job_id, datetime.now(UTC)))
    total = sum(spent.values())
    print(
        f"POST answered in {posted * 1000:.0f} ms; all {size:,} items started {started_after:.1f} s after the POST "
        f"(messages: {dict(kinds)}); the job: {job.state.value}, {job.counts.as_dict() if job.counts else {}}"
    )
    print(f"storage requests: {total:,} = {total / size:.3f} per item; by kind, per item:")
    for kind, count in spent.most_common():
        print(f"    {kind:<16} {count:>7,}  {count / size:.4f}")
    print(
        "    lower bound 3 per item (write-ahead record, Copy Blob, outcome); the listing, the job "
        f"record's checkpoints and the queue add about {3 * size // service.settings.job_page_size + 4} "
        "requests a job (a List Blobs, a job-record write, a message and its delete, per page)"
    )
    print(f"after the last item started, the job's end: {ending.total():,} requests {dict(ending.most_common())}")
    before = harness.counts()
    job = awaited(service.jobs.get(job_id, datetime.now(UTC)))
    status = harness.counts() - before
    print(
        f"status (GET /api/jobs/{{id}}) at {size:,} items, the job {job.state.value}: "
        f"{sum(status.values())} requests {dict(status)}"
    )
    queue.close()
    harness.close_services()


def _source(harness: Harness, size: int) -> tuple[str, str]:
    """A source container with ``size`` small blobs under drop/, written directly (set-up)."""
    src, dst = harness.containers()
    container = harness.direct.get_container_client(src)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda index: container.upload_blob(f"drop/{index:06}.bin", b"x" * 1024), range(size)))
    return src, dst


def _drain(
    harness: Harness, service: AppService, queue: QueueClient, began: float
) -> tuple[float, Counter[str], Counter[str]]:
    """Take messages as the host does until the queue stays empty; the seconds from the
    POST until the last message that starts items was done, the storage requests counted
    then, and the messages done by kind."""
    kinds: Counter[str] = Counter()
    last_start = 0.0
    at_last_start = harness.counts()
    empty = 0
    while empty < EMPTY_POLLS:
        try:
            messages = list(queue.receive_messages(max_messages=HOST_BATCH, visibility_timeout=300))
        except ResourceNotFoundError:
            messages = []
        if not messages:
            empty += 1
            time.sleep(0.2)
            continue
        empty = 0
        for message in messages:
            kind, _ = awaited(do_work(service, str(message.content), datetime.now(UTC)))
            queue.delete_message(message)
            kinds[kind] += 1
            if kind in STARTS:
                last_start = time.perf_counter() - began
                at_last_start = harness.counts()
    return last_start, at_last_start, kinds
