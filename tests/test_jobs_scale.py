"""One job across every instance, on the wire: two development hosts on one Azurite start
one job of 2,000 items together, as two instances of the app would. The listing fails
(503) mid-job, one batch is delivered twice, and the first host is killed in the middle of
its batches; each host still starts a share, no item starts twice, every item ends once,
the job ends once, and its report (in parts) names every item once."""

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

from copy_ops.work.messages import Batch, encode
from devkit import PendingCopyProxy
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.support.waiting import until

pytestmark = pytest.mark.system

ITEMS = 2000
PAGE = 500
# A fast queue policy: a failed message comes back after 2 s, up to 20 times, so a batch
# whose items the dead host claimed comes back until their claims (30 s) run out (the
# production host.json: every 10 s, 5 times; the same 40 s and more).
QUEUES = {
    "version": "2.0",
    "functionTimeout": "00:05:00",
    "extensions": {
        "queues": {
            "maxPollingInterval": "00:00:00.5",
            "visibilityTimeout": "00:00:02",
            "batchSize": 16,
            "maxDequeueCount": 20,
            "messageEncoding": "none",
        }
    },
}


@pytest.fixture
def env(proxy: PendingCopyProxy) -> dict[str, str]:
    return {
        "COPY_STORAGE": proxy.connection_string,
        "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
        "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
        "COPY_JOB_PAGE_SIZE": str(PAGE),
        "COPY_JOB_REPORT_PART": "300",
        "COPY_ENGINE": "async",
        # A killed host's messages come back after this (Azure's host: 10 minutes).
        "DEVHOST_MESSAGE_LEASE_SECONDS": "8",
    }


@pytest.fixture
def hosts(env: dict[str, str]) -> Iterator[list[DevHostProcess]]:
    started = [DevHostProcess(env=env, host_json=QUEUES) for _ in range(2)]
    yield started
    for host in started:
        host.stop()


def started_by(log: str, job_id: str) -> int:
    """Items a host's batches started for the job, as its log lines say."""
    return sum(int(m.group(1)) for m in re.finditer(rf"job_batch job={job_id} .*?started=(\d+)", log))


def test_two_hosts_start_one_job_of_thousands_each_item_once(
    hosts: list[DevHostProcess], env: dict[str, str], blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    names = [f"in/{index:04d}.bin" for index in range(ITEMS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: blobs.put(blobs.src, name, b"x"), names))
    proxy.pending_copies = False
    # The listing fails mid-job (its second page: 4 times, the SDK's own retries and then the
    # invocation, which the host delivers again); Copy Blob is slowed, so that a host is in
    # the middle of its batches whenever it is killed.
    proxy.inject("list_blobs", times=4, after=1, path_contains=f"/{blobs.src}")
    proxy.inject("copy_blob", mode="delay", seconds=0.1, times=10**6)
    first, second = hosts
    body = {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": 900,
    }
    reply = first.call("POST", "/api/jobs", body)
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]
    # The first page's first batch's items, delivered twice: as the listing hands them out, and
    # in a copy sent here (of no handout the checkpoint counts: its mark stands for nothing).
    twice = Batch(job_id, 0, 0, tuple(names[:200]), (1,) * 200)
    QueueClient.from_connection_string(proxy.connection_string, env["COPY_WORK_QUEUE"]).send_message(encode(twice))

    started_some = re.compile(rf"job_batch job={job_id} .*?started=[1-9]")
    assert first.wait_for_log(lambda log: started_some.search(log) is not None, timeout=60), first.log()[-3000:]
    first._process.kill()  # mid-batch: its messages come back to the other host after their lease
    killed_log = first.log()

    def ended() -> bool:
        return second.call("GET", f"/api/jobs/{job_id}").json()["state"] != "enumerating" and _final(second, job_id)

    assert until(ended, timeout=300), second.call("GET", f"/api/jobs/{job_id}").json()
    proxy.clear_faults()
    job = second.call("GET", f"/api/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["counts"]["succeeded"] == ITEMS, job
    assert job["enumeration"]["items"] == ITEMS and job["enumeration"]["stopped"] is None, job
    # No item started twice, none missing.
    destinations = {path: count for path, count in proxy.started.items() if f"/{blobs.dst}/" in path}
    assert len(destinations) == ITEMS and set(destinations.values()) == {1}, Counter(destinations.values())
    # Each host started a share; the survivor finished the dead one's batches.
    survivor_log = second.log()
    shares = [started_by(killed_log, job_id), started_by(survivor_log, job_id)]
    assert all(share > 0 for share in shares) and sum(shares) <= ITEMS, shares
    assert "queue_function_failed" in killed_log + survivor_log  # the page whose listing failed, retried
    assert len(re.findall(rf"job_batch job={job_id} page=0 batch=0 ", killed_log + survivor_log)) >= 2
    # The job ended once, whoever looked.
    assert (killed_log + survivor_log).count(f"job_finished job={job_id}") == 1
    # Its report, in parts (300 items a part: 16 of them), each linking the next: every item once.
    assert job["report_parts"] == 16
    lines = _report(second, job_id)
    assert sorted(line["destination"]["blob"] for line in lines) == [f"out/{name[3:]}" for name in names]
    assert {line["state"] for line in lines} == {"succeeded"}


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


def _final(host: DevHostProcess, job_id: str) -> bool:
    return host.call("GET", f"/api/jobs/{job_id}").json()["state"] in ("succeeded", "failed", "aborted")
