"""Jobs end to end through two development hosts on one Azurite: one takes the POST, both
run the queue trigger and the sweep, as two instances of the app would. Each item is
started once and the job ends, whatever instance did what."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator

import pytest

from devkit import PendingCopyProxy
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess, instances
from tests.support.jobs import arrange_pending, job_body, posted
from tests.support.partner import Partner
from tests.support.queues import FAST_QUEUES
from tests.support.waiting import until

pytestmark = pytest.mark.system

ITEMS = 150
PAGE = 40
# Pages of 40: one batch each, the last of 30.
BATCHES = {(page, 0) for page in range(-(-ITEMS // PAGE))}


@pytest.fixture
def hosts(proxy: PendingCopyProxy) -> Iterator[list[DevHostProcess]]:
    env = {
        "COPY_STORAGE": proxy.connection_string,
        "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
        "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
        "COPY_JOB_PAGE_SIZE": str(PAGE),
        "COPY_FANOUT_THRESHOLD": "50",
    }
    with instances([env, env], FAST_QUEUES) as started:
        yield started


def test_two_hosts_run_one_job(
    hosts: list[DevHostProcess], blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    arrange_pending(partner, ITEMS)  # from another account: every started item stays pending
    first, second = hosts
    # On Copy Blob (auto would take the block engine for another account's blobs).
    job_id = posted(first, job_body(blobs, partner.listing("in/"), engine="async"))

    def every_batch_done() -> bool:
        return batches_done(job_id, hosts) == BATCHES

    assert until(every_batch_done), [host.log()[-2000:] for host in hosts]
    assert second.call("GET", f"/api/jobs/{job_id}").json()["enumeration"]["done"]
    # Every item started (copies stay pending) and every batch done: the job is aborted, and
    # its items end. (An abort while batches are out: tests/test_jobs_abort.py. A deadline of
    # seconds would end the listing itself.)
    assert second.call("POST", f"/api/jobs/{job_id}/abort").status == 202

    turns = itertools.cycle(hosts)

    def ended() -> bool:
        # Both sweep, as the timer does on whichever instance holds it: one at a time.
        sweep(next(turns))
        return _final(first, job_id)

    assert until(ended, timeout=90, interval=1), first.call("GET", f"/api/jobs/{job_id}").json()
    job = first.call("GET", f"/api/jobs/{job_id}").json()
    assert job["counts"]["items"] == ITEMS and job["counts"]["aborted"] == ITEMS, job
    assert len(proxy.started) == ITEMS and set(proxy.started.values()) == {1}
    # The queue's work was done (by whichever instance the queue gave it to).
    assert any("work_done" in host.log() for host in hosts)
    report = first.call("GET", f"/api/jobs/{job_id}/report")
    assert report.status == 200 and len(report.body.splitlines()) == ITEMS


def batches_done(job_id: str, hosts: list[DevHostProcess]) -> set[tuple[int, int]]:
    """The job's batches whose items are all started (their marks left), as the hosts' logs say."""
    pattern = rf"job_batch job={job_id} page=(\d+) batch=(\d+) "
    return {(int(page), int(batch)) for host in hosts for page, batch in re.findall(pattern, host.log())}


def sweep(host: DevHostProcess) -> None:
    """One run of the sweep on ``host``, waited for: the timer is a singleton, its runs
    never overlap, on one instance or across them."""
    runs = host.log().count("timer function=sweep ")
    assert host.call("POST", "/admin/functions/sweep", {"input": ""}).status == 202
    assert host.wait_for_log(lambda log: log.count("timer function=sweep ") > runs, timeout=60), host.log()[-2000:]


def _final(host: DevHostProcess, job_id: str) -> bool:
    return host.call("GET", f"/api/jobs/{job_id}").json()["state"] in ("succeeded", "failed", "aborted")
