"""The work queue is a trust boundary (issue 28): whoever can put a message on it (a queue
role or a queue SAS, far less than the app's identity holds) must not steer the app. A
batch naming blobs outside its job's source prefix is refused whole, on the work queue and
on its poison queue: nothing of it is read, written or recorded, and the job is exactly
what its listing found. On Azurite through the proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from copy_ops.background.dispatch import do_poisoned, do_work
from copy_ops.copies.model import State
from copy_ops.core.errors import NotFound
from copy_ops.jobs import progress
from copy_ops.work.messages import Batch, encode
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import NOW, JobWorld, arrange, job_body
from tests.support.memory import sealed_by

# Listed: in/000.bin, in/001.bin and in/report.csv. Beside them, what a forger points at.
LISTED = 2
SECRET = "secret/payroll.csv"
ROOT_TWIN = "report.csv"  # lands where the listed in/report.csv lands, out/report.csv


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs) -> Iterator[JobWorld]:
    arrange(blobs, proxy, LISTED)
    proxy.pending_copies = False  # copies end at once: the job ends with its last item
    blobs.put(blobs.src, "in/report.csv", b"the listed report")
    blobs.put(blobs.src, SECRET, b"salaries of everyone")
    blobs.put(blobs.src, ROOT_TWIN, b"other bytes in the listed report's place")
    made = JobWorld(make_settings, proxy)
    yield made
    made.close()


def forged(job_id: str, *names: str) -> str:
    """A batch as the issue's attacker wrote it: any index, no handout. Unsealed, the app
    drops it unread (tests/test_work_refused.py); these tests seal it, as if the work key
    had leaked, to show the checks behind the seal."""
    return encode(Batch(job_id, 0, 99, names, tuple(27 for _ in names), None, ""))


def test_a_forged_batch_outside_the_prefix_reads_writes_and_records_nothing(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    job = world.start(job_body(blobs), NOW).job
    # On the queue before the listing's own batches: taken first.
    run(world.sealed.send([forged(job.id, SECRET), forged(job.id, ROOT_TWIN)]))
    world.deliver(NOW)
    ended = world.job(job.id, NOW)
    assert ended.state.is_final and ended.counts.items == LISTED + 1, ended
    assert ended.counts.of(State.SUCCEEDED) == LISTED + 1, ended.counts
    assert not blobs.exists(blobs.dst, f"out/{SECRET}")
    assert blobs.read(blobs.dst, "out/report.csv") == b"the listed report"
    assert not [path for path in proxy.started if SECRET in path]
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, f"out/{SECRET}")))


def test_a_forged_batch_delivered_alone_is_refused_and_changes_nothing(world: JobWorld, blobs: Blobs) -> None:
    job = world.start(job_body(blobs), NOW).job
    kind, outcomes = run(do_work(world.service, sealed_by(world.service, forged(job.id, "in/000.bin", SECRET)), NOW))
    assert (kind, dict(outcomes)) == ("batch", {"refused": 1})
    # A listed name in it changes nothing either: the batch is refused whole.
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, "out/000.bin")))


def test_a_forged_batch_on_the_poison_queue_records_nothing(world: JobWorld, blobs: Blobs) -> None:
    job = world.start(job_body(blobs), NOW).job
    batch = sealed_by(world.service, forged(job.id, "in/001.bin", ROOT_TWIN))
    kind, outcomes = run(do_poisoned(world.service, batch, NOW))
    assert (kind, dict(outcomes)) == ("poisoned", {"refused": 1})
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, "out/001.bin")))
    world.deliver(NOW)
    item = run(world.service.ledger.get(progress.item_id(job.id, "out/001.bin")))
    assert item.state is State.SUCCEEDED, (item.state, item.error)
