"""Jobs end to end on Azurite (blob and queue services) through the pending-copy proxy:
a prefix job whose items finish, fail, are refused and are aborted at the deadline; a
manifest job; the report; the items by state. The queue trigger is stood in for by
tests/support/jobs.py (the development host's own trigger is tested in test_jobs_host.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.background.sweep import sweep
from copy_ops.copies.model import ListQuery, State
from copy_ops.jobs.model import JobState
from devkit import DEV_ACCOUNT, PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld
from tests.support.partner import Partner

NOW = datetime.now(UTC).replace(microsecond=0)
TIMEOUT = 600
AFTER = NOW + timedelta(seconds=TIMEOUT + 1)


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy, COPY_JOB_PAGE_SIZE="100")
    yield made
    made.close()


def prefix_body(blobs: Blobs, prefix: str = "in/", **fields: object) -> dict[str, object]:
    return {
        "source": {"container": blobs.src, "prefix": prefix},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": TIMEOUT,
        **fields,
    }


def settle_all(world: JobWorld, at: datetime, rounds: int = 3) -> None:
    """Sweeps a minute apart, as the timer runs them (and their fan-out, if any)."""
    for step in range(rounds):
        run(sweep(world.service, at + timedelta(minutes=step)))
        world.deliver(at + timedelta(minutes=step))


def test_a_prefix_job_ends_with_every_item_accounted_for(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    names = [f"in/{i:03d}.bin" for i in range(250)]
    for name in names:
        partner.put(name, b"x" * 10)
    partner.put("elsewhere.bin", b"not in the prefix")
    for name in names[:5]:  # their destinations exist: refused (overwrite is false)
        blobs.put(blobs.dst, "out/" + name[3:], b"already here")
    proxy.pending_copies = True  # copies from another account stay pending, as on Azure

    job = world.start(prefix_body(blobs, source=partner.listing("in/")), NOW).job
    assert job.state is JobState.ENUMERATING
    delivered = world.deliver(NOW)
    assert delivered.kinds["page"] == 3 and not delivered.failures  # 100 + 100 + 50

    running = world.job(job.id, NOW)
    assert running.state is JobState.RUNNING or running.enumeration.done
    assert running.enumeration.items == 250
    assert (running.counts.of(State.PENDING), running.counts.of(State.FAILED)) == (245, 5)
    assert running.counts.bytes_total == 2500

    for name in names[5:105]:
        proxy.finish(blobs.dst, "out/" + name[3:])
    for name in names[105:135]:
        proxy.fail(blobs.dst, "out/" + name[3:])
    settle_all(world, AFTER)

    ended = world.job(job.id, AFTER + timedelta(minutes=3))
    assert ended.state is JobState.FAILED
    assert ended.counts.as_dict() == {
        "items": 250,
        "pending": 0,
        "succeeded": 100,
        "failed": 35,
        "aborted": 115,
        "bytes_copied": 1000,
        "bytes_total": 2500,
        "retried": 0,  # its items were tried once (a source given with a SAS)
    }
    # Every item has exactly one copy started, and the ones still pending were aborted.
    copies = Counter(copy.metadata.get("copyops_operation") for copy in proxy.copies())
    assert len(copies) == 245 and set(copies.values()) == {1}
    assert {copy.status for copy in proxy.copies()} == {"success", "failed", "aborted"}

    lines = [json.loads(line) for line in run(world.service.jobs.report(job.id)).lines.decode().splitlines()]
    assert len(lines) == 250
    assert Counter(line["state"] for line in lines) == Counter(succeeded=100, failed=35, aborted=115)
    refused = [line for line in lines if line["error"] == "start_refused"]
    assert len(refused) == 5 and all("exists" in line["message"] for line in refused)
    assert {line["destination"]["blob"] for line in lines} == {"out/" + name[3:] for name in names}
    assert all(line["source"].endswith(line["destination"]["blob"][4:]) for line in lines)

    failed = run(world.service.jobs.items(job.id, ListQuery(State.FAILED, 100, None)))
    assert len(failed.items) == 35 and {op.job for op in failed.items} == {job.id}
    assert len(ended.failures) == 10


def test_a_manifest_job(world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "a.bin", b"a")
    blobs.put(blobs.src, "deep/b.bin", b"bb")
    own_url = f"{proxy.url}/{DEV_ACCOUNT}/{blobs.src}/deep/b.bin"
    body = {
        "source": {
            "blobs": [{"container": blobs.src, "blob": "a.bin"}, own_url, {"container": blobs.src, "blob": "gone.bin"}]
        },
        "destination": {"container": blobs.dst, "prefix": "m/"},
        "timeout_seconds": TIMEOUT,
    }
    job = world.start(body, NOW).job
    assert world.deliver(NOW).kinds["chunk"] == 1
    settle_all(world, NOW + timedelta(seconds=30), rounds=2)
    ended = world.job(job.id, NOW + timedelta(seconds=40))
    assert ended.state is JobState.FAILED
    assert (ended.counts.of(State.SUCCEEDED), ended.counts.of(State.FAILED)) == (2, 1)
    assert blobs.read(blobs.dst, "m/a.bin") == b"a" and blobs.read(blobs.dst, "m/deep/b.bin") == b"bb"
    [failure] = ended.failures
    assert failure.code == "start_refused"


def test_an_empty_prefix_succeeds_at_once(world: JobWorld, blobs: Blobs) -> None:
    job = world.start(prefix_body(blobs, prefix="nothing/"), NOW).job
    world.deliver(NOW)
    settle_all(world, NOW + timedelta(seconds=11), rounds=1)
    ended = world.job(job.id, NOW)
    assert ended.state is JobState.SUCCEEDED and ended.counts.items == 0
    assert run(world.service.jobs.report(job.id)).lines == b""
