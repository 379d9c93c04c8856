"""The work queue is a trust boundary (issue 28): whoever can put a message on it (a queue
role or a queue SAS, far less than the app's identity holds) must not steer the app. A
batch naming blobs outside its job's source prefix is refused whole, on the work queue and
on its poison queue: nothing of it is read, written or recorded, and the job is exactly
what its listing found. And each message is checked against what it claims, as if its
forger held the app's signing key: a batch of listed names whose handout is not the one
the checkpoint keeps for its page starts nothing and, poisoned, records nothing; an abort
message aborts only items of its job, once that job was aborted. Every forged message here
is sealed with the app's key (a message without it is dropped unread:
tests/test_work_refused.py). On Azurite through the proxy."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from copy_ops.background.dispatch import do_poisoned, do_work
from copy_ops.copies.model import BlobRef, ManifestEntry, State
from copy_ops.copies.request import parse_copy_request
from copy_ops.core.errors import NotFound
from copy_ops.jobs import progress
from copy_ops.jobs.model import JobState
from copy_ops.work.messages import Batch, Chunk, encode
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import NOW, JobWorld, arrange, arrange_pending, job_body
from tests.support.memory import sealed_by
from tests.support.partner import Partner

# Listed: in/000.bin, in/001.bin and in/report.csv. Beside them, what a forger points at.
LISTED = 2
SECRET = "secret/payroll.csv"
ROOT_TWIN = "report.csv"  # lands where the listed in/report.csv lands, out/report.csv


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy, blobs: Blobs) -> Iterator[JobWorld]:
    arrange(blobs, LISTED)  # copies within the account end at once: the job ends with its last item
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


# Defence in depth (issue 28, deliverable 2): each message is checked against what it claims,
# as if whoever forged it held the app's signing key. The forged messages are written as JSON
# text, as an attacker writes them.


def batch_text(job_id: str, page: int, handout: str, *names: str, index: int = 0) -> str:
    sizes = [1 for _ in names]
    return json.dumps(
        {
            "v": 1,
            "kind": "batch",
            "job": job_id,
            "page": page,
            "index": index,
            "names": list(names),
            "sizes": sizes,
            "sas": None,
            "handout": handout,
        }
    )


def other_than(handout: str) -> str:
    return "0000" if handout != "0000" else "0001"


def test_a_batch_of_listed_names_whose_handout_is_not_the_checkpoints_starts_nothing(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A page writes its handout to the checkpoint before sending its batches: a batch of
    the job's own listed names, with any other handout (none, a guess, a page not listed),
    is refused whole; the genuine one then starts every item, once."""
    job = world.start(job_body(blobs), NOW).job
    [genuine] = world.take_batches(NOW)
    handout = json.loads(genuine)["handout"]
    listed = ("in/000.bin", "in/001.bin", "in/report.csv")
    for forged_batch in (
        batch_text(job.id, 0, "", *listed),
        batch_text(job.id, 0, other_than(handout), *listed, index=7),
        batch_text(job.id, 1, handout, *listed),  # a page the listing never reached
    ):
        kind, outcomes = run(do_work(world.service, sealed_by(world.service, forged_batch), NOW, None))
        assert (kind, dict(outcomes)) == ("batch", {"refused": 1}), forged_batch
    assert not proxy.started
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, "out/000.bin")))
    assert run(do_work(world.service, genuine, NOW, None)) == ("batch", Counter(["batch"]))
    world.deliver(NOW)
    ended = world.job(job.id, NOW)
    assert ended.state is JobState.SUCCEEDED and ended.counts.items == LISTED + 1, ended
    assert set(proxy.started.values()) == {1} and len(proxy.started) == LISTED + 1


def test_a_forged_batch_of_listed_names_on_the_poison_queue_records_nothing(world: JobWorld, blobs: Blobs) -> None:
    """Only a batch the app handed out has its items recorded ``not_started``: a forged one
    on the poison queue, naming listed blobs, leaves them to their genuine batch."""
    job = world.start(job_body(blobs), NOW).job
    [genuine] = world.take_batches(NOW)
    forged_batch = batch_text(job.id, 0, other_than(json.loads(genuine)["handout"]), "in/000.bin", "in/001.bin")
    kind, outcomes = run(do_poisoned(world.service, sealed_by(world.service, forged_batch), NOW))
    assert (kind, dict(outcomes)) == ("poisoned", {"refused": 1})
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, "out/000.bin")))
    run(do_work(world.service, genuine, NOW, None))
    world.deliver(NOW)
    ended = world.job(job.id, NOW)
    assert ended.state is JobState.SUCCEEDED and ended.counts.of(State.SUCCEEDED) == LISTED + 1, ended


def abort_text(ids: list[str], job_id: str | None) -> str:
    return json.dumps({"v": 1, "kind": "abort", "ids": ids, **({"job": job_id} if job_id is not None else {})})


def test_a_forged_abort_aborts_nothing_but_items_of_its_aborted_job(
    world: JobWorld, blobs: Blobs, partner: Partner
) -> None:
    """An abort message names its job, and is acted on only for items of that job once its
    abort was asked for: not an operation outside it, not a job nobody aborted, not without
    a job (the version before's: the job's next look aborts its items instead)."""
    arrange_pending(partner, LISTED)  # from another account: every copy stays pending until aborted
    request = parse_copy_request(partner.body(blobs.dst, "in/000.bin", "one.bin"), world.settings, NOW)
    copy = run(world.service.start(request, NOW)).operation
    job = world.start(job_body(blobs, partner.listing("in/")), NOW).job
    world.deliver(NOW)
    item = progress.item_id(job.id, "out/000.bin")
    assert run(world.service.ledger.get(item)).state is State.PENDING
    for forged_abort in (
        abort_text([copy.id], job.id),  # an operation outside the job
        abort_text([item, copy.id], job.id),  # one of them outside: refused whole
        abort_text([item], job.id),  # the job's item, but nobody aborted the job
        abort_text([copy.id], None),  # no job: refused
        abort_text([item], None),
    ):
        kind, outcomes = run(do_work(world.service, sealed_by(world.service, forged_abort), NOW, None))
        assert kind == "abort" and set(outcomes) == {"refused"}, (forged_abort, outcomes)
    assert run(world.service.ledger.get(copy.id)).state is State.PENDING
    assert run(world.service.ledger.get(item)).state is State.PENDING
    # The job aborted, an abort message of its items does abort them; never the other copy.
    run(world.service.jobs.abort(job.id, NOW))
    kind, outcomes = run(do_work(world.service, sealed_by(world.service, abort_text([item], job.id)), NOW, None))
    assert (kind, run(world.service.ledger.get(item)).state) == ("abort", State.ABORTED), outcomes
    world.deliver(NOW)
    assert run(world.service.ledger.get(copy.id)).state is State.PENDING


def test_a_chunk_its_manifest_job_never_sent_starts_nothing_on_either_queue(world: JobWorld, blobs: Blobs) -> None:
    """A manifest job's chunks are those its start sent (their digests kept beside the job):
    a chunk forged with the key, naming another container's blob under a listed name, starts
    nothing on the work queue and records nothing on the poison queue; the job's own chunk
    then copies the listed blob."""
    blobs.put(blobs.src, "a.bin", b"listed a")
    body = {
        "source": {"blobs": [{"container": blobs.src, "blob": "a.bin"}]},
        "destination": {"container": blobs.dst, "prefix": "m/"},
        "timeout_seconds": 600,
    }
    job = world.start(body, NOW).job
    secret = ManifestEntry(BlobRef(blobs.src, SECRET), "a.bin")
    forged = sealed_by(world.service, encode(Chunk(job.id, 0, (secret,))))
    assert run(do_work(world.service, forged, NOW)) == ("chunk", Counter(["refused"]))
    assert run(do_poisoned(world.service, forged, NOW)) == ("poisoned", Counter(["refused"]))
    with pytest.raises(NotFound):
        run(world.service.ledger.get(progress.item_id(job.id, "m/a.bin")))
    world.deliver(NOW)
    assert world.job(job.id, NOW).state is JobState.SUCCEEDED
    assert blobs.read(blobs.dst, "m/a.bin") == b"listed a"
