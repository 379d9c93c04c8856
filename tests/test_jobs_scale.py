"""One job across every instance, on the wire: two development hosts on one Azurite start
one job of several pages, each of several batches, as two instances of the app would. The
first host is killed in the middle of its batches, the listing fails (503) on the other,
and one batch is delivered twice; each host still starts a share, no item starts twice,
every item ends once, the job ends once, and its report (in parts) names every item once.

Each host reaches storage through a proxy of its own, so that the test knows which host
sent each Copy Blob: the first is killed once its proxy has let its share through and held
back the next one, so it dies with items it claimed and never started, which the survivor
must take over (tests/test_jobs_handout.py proves every interleaving in memory)."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from copy_ops.core.settings import Settings
from copy_ops.jobs.handouts import HANDOUT_DIGITS
from copy_ops.work.messages import BATCH, Batch, encode
from devkit import PendingCopyProxy, connection_string, serve
from tests.conftest import Blobs, connect
from tests.support.devhost_process import DevHostProcess, instances
from tests.support.jobs import job_body, posted
from tests.support.memory import sealed_by
from tests.support.queues import host_json
from tests.support.waiting import until

pytestmark = pytest.mark.system

# Pages of 210, handed out as batches of 200 and 10: three pages (the last of 30), five
# batches. The first host lists page 0 and takes its batches; the survivor lists the rest.
PAGE = 210
ITEMS = 450
PAGES = 3
# Items per part of the report, about (the least the setting allows): 16 parts.
REPORT_PART = 100
# Copy Blobs the first host's proxy lets through: fewer than its smallest batch, so that it
# dies in the middle of every batch it took.
SHARE = 8
# The shortest claim the settings allow (COPY_JOB_ITEM_CLAIM_SECONDS): the items the first
# host claimed are the survivor's 10 s after, not 30. This wait is most of the test's time.
CLAIM_SECONDS = 10
# A failed message is back after a second, up to 20 times: a batch holding the dead host's
# claims comes back until they are over.
QUEUES = host_json("00:00:01", 20)


@pytest.fixture
def env() -> dict[str, str]:
    """The two hosts' settings, but for their storage: the same ledger and queue."""
    return {
        "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
        "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
        "COPY_JOB_PAGE_SIZE": str(PAGE),
        "COPY_JOB_REPORT_PART": str(REPORT_PART),
        "COPY_JOB_ITEM_CLAIM_SECONDS": str(CLAIM_SECONDS),
        "COPY_ENGINE": "async",
    }


@pytest.fixture
def doomed_proxy(azurite_ports: tuple[int, int], proxy: PendingCopyProxy) -> Iterator[PendingCopyProxy]:
    """The first host's way to the same Azurite: a proxy of its own (its queue: Azurite's
    directly). One account has one blob index: the proxies share theirs, so that each
    answers for the records the other's host wrote."""
    own = serve(azurite_ports[0])
    own.index = proxy.index
    yield own
    own.stop()


@pytest.fixture
def hosts(
    env: dict[str, str], proxy: PendingCopyProxy, doomed_proxy: PendingCopyProxy, azurite_ports: tuple[int, int]
) -> Iterator[list[DevHostProcess]]:
    doomed = {
        **env,
        "COPY_STORAGE": connection_string(doomed_proxy.port, queue_port=azurite_ports[1]),
        # Its messages come back this soon after it dies (Azure's host: 10 minutes).
        "DEVHOST_MESSAGE_LEASE_SECONDS": "2",
    }
    survivor = {**env, "COPY_STORAGE": proxy.connection_string}
    with instances([doomed, survivor], QUEUES) as started:
        yield started


def test_two_hosts_start_one_job_of_several_pages_each_item_once(
    hosts: list[DevHostProcess],
    env: dict[str, str],
    blobs: Blobs,
    proxy: PendingCopyProxy,
    doomed_proxy: PendingCopyProxy,
) -> None:
    names = [f"in/{index:04d}.bin" for index in range(ITEMS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: blobs.put(blobs.src, name, b"x"), names))
    proxy.pending_copies = False
    doomed, survivor = hosts
    source = f"/{blobs.src}"
    assert proxy.queue_proxy is not None
    # Until the first host is killed, the survivor finds no queue: the queue's messages all
    # go to the first, as the platform may give them to one instance.
    proxy.queue_proxy.inject("get_messages", status=404, code="QueueNotFound", times=10**6)
    # The first host lists page 0 and no other: its next listing never gets an answer.
    doomed_proxy.inject("list_blobs", mode="drop", after=1, times=10**6, path_contains=source)
    # Its first SHARE Copy Blobs go through, then none: the items it goes on claiming are
    # recorded and never started when it dies.
    doomed_proxy.inject("copy_blob", mode="drop", after=SHARE, times=10**6)
    # The survivor's listings fail until one of its pages has failed whole (the SDK's own
    # retries, then the invocation, which the host delivers again).
    proxy.inject("list_blobs", times=10**6, path_contains=source)
    job_id = posted(doomed, job_body(blobs, timeout_seconds=900))
    # The first page's first batch, delivered twice: as the listing hands it out, and in a copy
    # sent here once the checkpoint keeps the page's handout (a batch of any other is refused).
    ledger = blobs.direct.get_container_client(env["COPY_LEDGER_CONTAINER"])
    handouts: list[str] = []

    def handout_kept() -> bool:
        record = json.loads(ledger.download_blob(f"jobs/{job_id}.json").readall())
        handouts[:] = [record["enumeration"]["handouts"][:HANDOUT_DIGITS]]
        return len(handouts[0]) == HANDOUT_DIGITS

    assert until(handout_kept, timeout=30, interval=0.02), doomed.log()[-3000:]
    twice = Batch(job_id, 0, 0, tuple(names[:BATCH]), (1,) * BATCH, None, handouts[0])
    app = connect(Settings.from_env({**env, "COPY_STORAGE": proxy.connection_string}))  # the app's key
    with QueueClient.from_connection_string(proxy.connection_string, env["COPY_WORK_QUEUE"]) as queue:
        queue.send_message(sealed_by(app, encode(twice)))

    def mid_batch() -> bool:
        """The first host's proxy let its share through and held back the next Copy Blob;
        and its page 0 is done, its message deleted (else the survivor would list page 0
        again, and hand its items out again)."""
        return doomed_proxy.log.counts["copy_blob"] > SHARE and page_deleted(doomed.log())

    assert until(mid_batch, timeout=30, interval=0.02), doomed.log()[-3000:]
    doomed._process.kill()  # mid-batch: its messages come back to the survivor after their lease
    doomed.wait_for_exit()
    killed_log = doomed.log()
    proxy.queue_proxy.clear_faults()  # the survivor takes the queue's messages from now on
    # Its first page fails whole; then its listings are answered again.
    assert survivor.wait_for_log(lambda log: page_failed(log) is not None, timeout=30), survivor.log()[-3000:]
    proxy.clear_faults()

    # The job's end, as the survivor's log says (a running job's view counts its items in
    # the blob index: asked for every moment, it would take the machine from the job).
    finished = f"job_finished job={job_id}"
    assert until(lambda: finished in survivor.log(), timeout=60), survivor.call("GET", f"/api/jobs/{job_id}").json()
    job = survivor.call("GET", f"/api/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["counts"]["succeeded"] == ITEMS, job
    assert job["enumeration"] == {"done": True, "items": ITEMS, "pages": PAGES, "stopped": None}, job
    # No item started twice, none missing; the first host started its share, the survivor the rest.
    by_doomed, by_survivor = copies_to(blobs.dst, doomed_proxy), copies_to(blobs.dst, proxy)
    every = by_doomed + by_survivor
    assert len(every) == ITEMS and set(every.values()) == {1}, Counter(every.values())
    assert (by_doomed.total(), by_survivor.total()) == (SHARE, ITEMS - SHARE)
    # The first host died in the middle of every batch it took (it finished none), holding
    # claims of items it never started: the survivor took them over.
    survivor_log = survivor.log()
    assert "job_batch " not in killed_log and "job_item_taken_over" in survivor_log
    # The page whose listing failed was delivered again and listed.
    assert f"work_done id={page_failed(survivor_log)} kind=page" in survivor_log, survivor_log[-3000:]
    # The job ended once, whoever looked.
    assert (killed_log + survivor_log).count(finished) == 1
    # Its report, in parts (16), each linking the next: every item once.
    assert job["report_parts"] == 16
    lines = _report(survivor, job_id)
    assert sorted(line["destination"]["blob"] for line in lines) == [f"out/{name[3:]}" for name in names]
    assert {line["state"] for line in lines} == {"succeeded"}
    # The batch delivered twice: both deliveries done, by the survivor (the one that came
    # second may find the job ended, and start nothing either way).
    twice_done = rf"job_batch(?:_skipped)? job={job_id} page=0 batch=0\b"
    assert until(lambda: len(re.findall(twice_done, survivor.log())) >= 2, timeout=10), survivor.log()[-3000:]


def page_deleted(log: str) -> bool:
    """Whether a host's log shows a page done and its message deleted."""
    done = re.findall(r"work_done id=(\S+) kind=page", log)
    return any(f"queue function=work id={message} outcome=ok" in log for message in done)


def page_failed(log: str) -> str | None:
    """The message of a host's first invocation that failed on the proxy's 503 (ServerBusy),
    as only a listing does here."""
    failed = re.search(r"work_failed id=(\S+) dequeue_count=\d+ code=ServerBusy", log)
    return failed.group(1) if failed else None


def copies_to(container: str, proxy: PendingCopyProxy) -> Counter[str]:
    """Copy Blob requests that started a copy into ``container``, through ``proxy``, by destination."""
    return Counter({path: count for path, count in proxy.started.items() if f"/{container}/" in path})


def _report(host: DevHostProcess, job_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    path: str | None = f"/api/jobs/{job_id}/report"
    parts = 0
    while path is not None:
        reply = host.call("GET", path)
        assert reply.status == 200, reply.body
        lines += [json.loads(line) for line in reply.body.decode().splitlines()]
        parts += 1
        link = {name.lower(): value for name, value in reply.headers.items()}.get("link")
        match = re.fullmatch(r'<(/api/jobs/[^>]+)>; rel="next"', link) if link else None
        path = match.group(1) if match else None
    assert parts == 16
    return lines
