"""Jobs end to end through two development hosts on one Azurite: one takes the POST, both
run the queue trigger and the sweep, as two instances of the app would. Each item is
started once and the job ends, whatever instance did what."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devkit import PendingCopyProxy
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.support.queues import FAST_QUEUES
from tests.support.waiting import until

pytestmark = pytest.mark.system

ITEMS = 150


@pytest.fixture
def hosts(proxy: PendingCopyProxy) -> Iterator[list[DevHostProcess]]:
    env = {
        "COPY_STORAGE": proxy.connection_string,
        "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
        "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
        "COPY_JOB_PAGE_SIZE": "40",
        "COPY_FANOUT_THRESHOLD": "50",
    }
    started = [DevHostProcess(env=env, host_json=FAST_QUEUES) for _ in range(2)]
    yield started
    for host in started:
        host.stop()


def test_two_hosts_run_one_job(hosts: list[DevHostProcess], blobs: Blobs, proxy: PendingCopyProxy) -> None:
    for i in range(ITEMS):
        blobs.put(blobs.src, f"in/{i:03d}.bin", b"x")
    proxy.pending_copies = True
    first, second = hosts
    body = {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": 600,
    }
    reply = first.call("POST", "/api/jobs", body)
    assert reply.status == 202, reply.body
    job_id = reply.json()["id"]

    def enumerated() -> bool:
        return bool(second.call("GET", f"/api/jobs/{job_id}").json()["enumeration"]["done"])

    assert until(enumerated), second.call("GET", f"/api/jobs/{job_id}").json()
    # Every item started (copies stay pending): the job is aborted, its items end.
    # (A deadline of seconds would end the listing itself: no item starts past it.)
    assert second.call("POST", f"/api/jobs/{job_id}/abort").status == 202

    def ended() -> bool:
        for host in hosts:  # both sweep, as the timer would on whichever instance holds it
            host.call("POST", "/admin/functions/sweep", {"input": ""})
        return first.call("GET", f"/api/jobs/{job_id}").json()["state"] == "aborted" or _final(first, job_id)

    assert until(ended, timeout=90), first.call("GET", f"/api/jobs/{job_id}").json()
    job = first.call("GET", f"/api/jobs/{job_id}").json()
    assert job["counts"]["items"] == ITEMS and job["counts"]["aborted"] == ITEMS, job
    assert len(proxy.started) == ITEMS and set(proxy.started.values()) == {1}
    # The queue's work was done (by whichever instance the queue gave it to).
    assert any("work_done" in host.log() for host in hosts)
    report = first.call("GET", f"/api/jobs/{job_id}/report")
    assert report.status == 200 and len(report.body.splitlines()) == ITEMS


def _final(host: DevHostProcess, job_id: str) -> bool:
    return host.call("GET", f"/api/jobs/{job_id}").json()["state"] in ("succeeded", "failed", "aborted")
