"""Only the app's own messages are acted on (issue 28): a message of any kind, on the work
queue or its poison queue, without the app's seal, under another key's, or changed after
it was sealed, is dropped before it is read. Nothing of it reaches storage: no record,
blob or message changes, no request is sent. The same message sealed by the app does act
(the control: without it, "nothing happened" could mean the message was harmless). On
Azurite through the proxy, with the instance's storage watched call by call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from copy_ops.background.dispatch import do_poisoned, do_work
from copy_ops.copies.model import BlobRef, ListQuery, ManifestEntry, State
from copy_ops.core.errors import NotOurs
from copy_ops.observability.telemetry import Telemetry
from copy_ops.work.messages import Abort, Batch, Check, Chunk, Page, ReportPart, Settle, Stage, Work, encode
from copy_ops.work.seal import sealed
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import NOW, TIMEOUT, JobWorld, arrange_pending, job_body
from tests.support.partner import Partner
from tests.support.watch import StorageWatch

ITEMS = 3
LATE = NOW + timedelta(seconds=TIMEOUT + 1)  # every item past its deadline: a settle would abort it


class Refusals(Telemetry):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def work_refused(self, reason: str) -> None:
        self.reasons.append(reason)


@pytest.fixture
def watched() -> StorageWatch:
    return StorageWatch()


@pytest.fixture
def world(
    make_settings: SettingsFactory, proxy: PendingCopyProxy, partner: Partner, watched: StorageWatch
) -> Iterator[JobWorld]:
    arrange_pending(partner, ITEMS)  # from another account: its items stay pending
    made = JobWorld(make_settings, proxy, watched.wrap)
    made.service.telemetry = Refusals()
    yield made
    made.close()


def every_kind(job_id: str, items: list[str]) -> list[Work]:
    """One message of each kind, each aimed at the job and its items as a forger would."""
    entry = ManifestEntry(BlobRef("src", "secret/payroll.csv"), "payroll.csv")
    return [
        Settle(tuple(items)),
        Abort(tuple(items), job_id),
        Page(job_id, 0),
        Batch(job_id, 0, 99, ("secret/payroll.csv",), (27,), None, ""),
        Chunk(job_id, 7, (entry,)),
        Check(job_id, items[0]),
        ReportPart(job_id, ""),
        Stage(items[0], "0-63", "sv=2025-01-05&sig=forged"),
    ]


def forgeries(key: bytes, text: str, job_id: str) -> dict[str, str]:
    """The message without a seal, under another key, and sealed by the app for another
    job then changed to name this one (same length: only the content differs)."""
    decoy = job_id[:-1] + ("0" if job_id[-1] != "0" else "1")
    return {
        "unsealed": text,
        "other key": sealed(bytes(32), text),
        "changed": sealed(key, text.replace(job_id, decoy)).replace(decoy, job_id),
    }


def snapshot(blobs: Blobs, world: JobWorld) -> dict[str, Any]:
    """Every blob of the ledger and the destination with its ETag, and the queue."""
    seen: dict[str, Any] = {}
    for container in (world.settings.ledger_container, blobs.dst):
        client = blobs.direct.get_container_client(container)
        seen[container] = sorted((blob.name, blob.etag) for blob in client.list_blobs())
    seen["queue"] = world.peek()
    return seen


def test_forged_messages_of_every_kind_act_on_nothing_on_either_queue(
    world: JobWorld, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, watched: StorageWatch
) -> None:
    job = world.start(job_body(blobs, partner.listing("in/")), NOW).job
    world.deliver(NOW)  # listed; its items started, pending
    listed = run(world.service.jobs.items(job.id, ListQuery(None, 10, None))).items
    assert [item.state for item in listed] == [State.PENDING] * ITEMS
    items = [item.id for item in listed]
    key = run(world.service.keys.key())
    assert world.settings.work_unsealed_until is None  # the default: no unsealed message is taken
    before, started, refusals = snapshot(blobs, world), dict(proxy.started), Refusals()
    world.service.telemetry = refusals
    watched.calls.clear()

    tried = 0
    for work in every_kind(job.id, items):
        for how, text in forgeries(key.key, encode(work), job.id).items():
            for queue, act in (("work", do_work), ("poison", do_poisoned)):
                with pytest.raises(NotOurs) as refused:
                    run(act(world.service, text, LATE, LATE))
                assert refused.value.code == ("Unsealed" if how == "unsealed" else "SealWrong"), (work, how, queue)
                tried += 1

    assert tried == 8 * 3 * 2
    assert watched.names() == []  # nothing read, nothing written, nothing sent
    assert snapshot(blobs, world) == before and dict(proxy.started) == started
    assert sorted(set(refusals.reasons)) == ["SealWrong", "Unsealed"] and len(refusals.reasons) == tried

    # The control: the settle the forger wrote, sealed by the app, aborts every item.
    run(do_work(world.service, sealed(key.key, encode(Settle(tuple(items)))), LATE))
    assert [run(world.service.get(item, LATE)).state for item in items] == [State.ABORTED] * ITEMS
