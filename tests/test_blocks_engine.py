"""The block engine on the wire: Azurite behind the stand-in (which answers Put Block From
URL and Put Blob From URL as Azure does), Azurite's queue service, the real SDK.

Blocks are made small here (64 KiB, two to a message) so that a copy of a few hundred
KiB has several blocks and several messages; the sizes Azure uses are tests/test_blocks.py's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import ContentSettings

from copy_ops.background.dispatch import do_work
from copy_ops.copies import block_engine, block_lifecycle, blocks, lifecycle
from copy_ops.copies.block_engine import BlockEngine
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import AbortReason, Engine, ErrorCode, ListQuery, Operation, State
from copy_ops.copies.records import Ledger
from copy_ops.copies.request import parse_copy_request
from copy_ops.core.errors import Conflict
from copy_ops.work.messages import Stage, decode
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld
from tests.support.partner import Partner

NOW = datetime.now(UTC).replace(microsecond=0)
BLOCK = 64 * 1024
DATA = os.urandom(5 * BLOCK - 20_000)  # five blocks, the last one short
BEFORE = b"the destination as it was before" * 100
TIMING = Timing(timedelta(seconds=300), timedelta(seconds=15), timedelta(seconds=300))


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", BLOCK)
    monkeypatch.setattr(block_lifecycle, "STAGE_BATCH", 2)


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy)
    yield made
    made.close()


@pytest.fixture
def boxes(blobs: Blobs) -> tuple[str, str]:
    blobs.direct.get_blob_client(blobs.src, "a.bin").upload_blob(
        DATA,
        metadata={"origin": "partner"},
        content_settings=ContentSettings(
            content_type="application/x-parquet",
            content_language="de",
            content_md5=bytearray(hashlib.md5(DATA).digest()),
        ),
    )
    return blobs.src, blobs.dst


def start(world: JobWorld, body: dict[str, Any], now: datetime = NOW) -> Operation:
    request = parse_copy_request(body, world.settings, now)
    return run(world.service.start(request, now)).operation


def body_of(source: str, destination: str, **more: Any) -> dict[str, Any]:
    return {
        "source": {"container": source, "blob": "a.bin"},
        "destination": {"container": destination, "blob": "b.bin"},
        "engine": "blocks",
        "timeout_seconds": 600,
        **more,
    }


def get(world: JobWorld, operation_id: str, now: datetime = NOW) -> Operation:
    return run(world.service.get(operation_id, now))


def test_a_copy_is_staged_by_the_work_queue_and_committed_whole(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    assert (op.state, op.terms.engine) == (State.PENDING, Engine.BLOCKS)
    assert block_lifecycle.counts(op) == (0, 5)
    assert not blobs.exists(destination, "b.bin")  # nothing written before the commit

    delivered = world.deliver(NOW)
    assert delivered.kinds["stage"] == 3  # two blocks a message: 2 + 2 + 1
    done = get(world, op.id)
    assert done.state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == DATA
    # Copy Blob's carry-over: the source's metadata (none was asked for), and our mark; its
    # content headers and MD5.
    assert blobs.metadata(destination, "b.bin") == {"origin": "partner", "copyops_operation": op.id}
    landed = blobs.direct.get_blob_client(destination, "b.bin").get_blob_properties().content_settings
    assert (landed.content_type, landed.content_language) == ("application/x-parquet", "de")
    assert landed.content_md5 is not None and bytes(landed.content_md5) == hashlib.md5(DATA).digest()
    assert done.progress is not None and done.progress.as_dict() == {
        "bytes_copied": len(DATA),
        "bytes_total": len(DATA),
    }
    assert proxy.log.counts["put_block_from_url"] == 5
    assert proxy.log.counts["put_blocklist"] == 1
    assert proxy.log.counts["copy_blob"] == 0


def test_a_blob_of_one_block_is_copied_by_one_request_at_its_start(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    blobs.put(source, "small.bin", b"small" * 100)
    body = body_of(source, destination)
    op = start(world, {**body, "source": {"container": source, "blob": "small.bin"}, "metadata": {"k": "v"}})
    assert op.state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == b"small" * 100
    assert blobs.metadata(destination, "b.bin") == {"k": "v", "copyops_operation": op.id}
    assert proxy.log.counts["put_blob_from_url"] == 1
    assert world.peek() == []


def test_not_overwriting_an_existing_destination_is_refused_at_the_start_and_leaves_no_record(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    blobs.put(source, "small.bin", b"small")
    blobs.put(destination, "b.bin", BEFORE)
    with pytest.raises(Conflict):
        start(world, {**body_of(source, destination), "source": {"container": source, "blob": "small.bin"}})
    assert blobs.read(destination, "b.bin") == BEFORE


def test_not_overwriting_an_existing_destination_with_many_blocks_is_refused_at_the_start_sending_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    """Issue 28: it answered 202, staged every block, then failed destination_exists."""
    source, destination = boxes
    blobs.put(destination, "b.bin", BEFORE)
    with pytest.raises(Conflict):
        start(world, body_of(source, destination))
    assert blobs.read(destination, "b.bin") == BEFORE
    assert world.peek() == []  # no block handed out
    assert proxy.log.counts["put_block_from_url"] == 0 and proxy.log.counts["put_blocklist"] == 0


def test_the_deadline_in_the_middle_of_staging_commits_nothing_and_leaves_the_destination_as_it_was(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    blobs.put(destination, "b.bin", BEFORE, metadata={"keep": "me"})
    op = start(world, body_of(source, destination, overwrite=True, timeout_seconds=60))
    stage_one(world, NOW)  # some blocks staged...
    staged = get(world, op.id)
    assert 0 < block_lifecycle.counts(staged)[0] < 5  # type: ignore[index]

    late = NOW + timedelta(seconds=61)
    run(world.service.process_due(op.id, late))  # ...the sweep at the deadline
    ended = get(world, op.id, late)
    assert (ended.state, ended.abort_reason, ended.error) == (State.ABORTED, AbortReason.DEADLINE, None)
    # A staging message that comes after the end (or races it) commits nothing.
    world.deliver(late)
    world.deliver(NOW)
    assert blobs.read(destination, "b.bin") == BEFORE
    assert blobs.metadata(destination, "b.bin") == {"keep": "me"}
    assert proxy.log.counts["put_blocklist"] == 0


def test_the_deadline_with_no_destination_leaves_none(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination, timeout_seconds=60, on_abort="keep"))
    stage_one(world, NOW)
    run(world.service.process_due(op.id, NOW + timedelta(seconds=61)))
    world.deliver(NOW)
    assert get(world, op.id).state is State.ABORTED
    assert not blobs.exists(destination, "b.bin")  # on_abort does not apply: nothing was written


def test_staging_that_arrives_too_close_to_the_deadline_stages_and_commits_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination, timeout_seconds=60))
    almost = NOW + timedelta(seconds=60) - block_lifecycle.COMMIT_MARGIN + timedelta(seconds=1)
    assert world.deliver(almost).kinds["stage"] == 3  # each message: "stopped", nothing sent
    assert proxy.log.counts["put_block_from_url"] == proxy.log.counts["put_blocklist"] == 0
    run(world.service.process_due(op.id, NOW + timedelta(seconds=60)))
    assert get(world, op.id).state is State.ABORTED
    assert not blobs.exists(destination, "b.bin")


def test_a_complete_staging_too_close_to_the_deadline_is_not_committed_by_the_sweep(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination, timeout_seconds=60))

    async def lost(self: BlockEngine, *args: object) -> None:
        return None  # the commit never sent (its instance died): the sweep is left with it

    with monkeypatch.context() as patch:
        patch.setattr(BlockEngine, "commit", lost)
        world.deliver(NOW)
    assert block_lifecycle.complete(get(world, op.id))
    almost = NOW + timedelta(seconds=60) - block_lifecycle.COMMIT_MARGIN + timedelta(seconds=1)
    run(world.service.process_due(op.id, almost))
    assert proxy.log.counts["put_blocklist"] == 0 and get(world, op.id).state is State.PENDING
    run(world.service.process_due(op.id, NOW + timedelta(seconds=60)))
    assert get(world, op.id).state is State.ABORTED
    assert not blobs.exists(destination, "b.bin")


def test_a_commit_whose_moment_passed_while_it_waited_is_not_sent(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    import time

    from copy_ops.copies.model import BlobRef, DestinationCondition
    from copy_ops.copies.ports import Commit
    from copy_ops.core.errors import NotSent

    source, destination = boxes
    storage = world.service.storage
    late = Commit({}, {}, DestinationCondition.ANY, None, last_moment=time.monotonic() + 0.5)
    with pytest.raises(NotSent):
        run(storage.commit_blocks(BlobRef(destination, "b.bin"), ["x"], late))
    with pytest.raises(NotSent):
        run(storage.copy_whole(BlobRef(destination, "b.bin"), BlobRef(source, "a.bin"), "etag", late))
    block = blocks.plan("op", len(DATA))[0]
    with pytest.raises(NotSent):
        run(storage.stage_block(BlobRef(destination, "b.bin"), BlobRef(source, "a.bin"), "e", block, lambda: False))
    kinds = ("put_blocklist", "put_blob_from_url", "put_block_from_url")
    assert [proxy.log.counts[kind] for kind in kinds] == [0, 0, 0]


def test_a_sweep_ending_the_copy_at_its_deadline_just_before_the_commit_wins_and_nothing_is_committed(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination, timeout_seconds=60))
    sending = block_lifecycle.sending_commit

    def sweep_first(current: Operation, now: datetime) -> Operation:
        # The race: another instance's sweep ends the record at the deadline between the last
        # checkpoint and the commit's send (written here as that writer would, ETag moving).
        ended = lifecycle.finish(current, State.ABORTED, op.terms.deadline, TIMING, abort_reason=AbortReason.DEADLINE)
        record = blobs.direct.get_blob_client(world.settings.ledger_container, Ledger.record_name(op.id))
        record.upload_blob(ended.to_json(), overwrite=True)
        return sending(current, now)

    monkeypatch.setattr(block_lifecycle, "sending_commit", sweep_first)
    world.deliver(NOW)
    ended = get(world, op.id)
    assert (ended.state, ended.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
    assert proxy.log.counts["put_blocklist"] == 0
    assert not blobs.exists(destination, "b.bin")


def test_an_abort_on_request_mid_staging_commits_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    aborted = run(world.service.abort(op.id, NOW))
    assert (aborted.state, aborted.abort_reason) == (State.ABORTED, AbortReason.REQUESTED)
    world.deliver(NOW)
    assert not blobs.exists(destination, "b.bin")
    assert proxy.log.counts["put_blocklist"] == 0


def test_the_source_changed_mid_copy_fails_it_and_commits_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    blobs.put(source, "a.bin", b"another version" * 10_000)
    world.deliver(NOW)
    ended = get(world, op.id)
    assert ended.state is State.FAILED and ended.error is not None
    assert ended.error.code is ErrorCode.SOURCE_CHANGED
    assert not blobs.exists(destination, "b.bin")


def test_a_destination_written_meanwhile_is_not_overwritten_when_overwrite_is_false(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    blobs.put(destination, "b.bin", b"someone else's")
    world.deliver(NOW)
    ended = get(world, op.id)
    assert ended.error is not None and ended.error.code is ErrorCode.DESTINATION_EXISTS
    assert blobs.read(destination, "b.bin") == b"someone else's"


def test_a_redelivered_staging_message_stages_the_same_blocks_and_the_copy_is_whole(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    messages = world.peek()
    for text in messages:  # each message done twice before the queue's own delivery
        run(world.service.copies.stage(*_args(text), NOW))
    world.deliver(NOW)
    assert get(world, op.id).state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == DATA
    assert proxy.log.counts["put_blocklist"] == 1


def test_two_instances_stage_one_copy_and_it_is_committed_once(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    other = JobWorld.beside(world)
    try:
        op = start(world, body_of(source, destination))
        messages = world.peek()
        # Every message done by both instances, interleaved: checkpoints race, the commit does not.
        for text in messages:
            for instance in (world, other):
                run(instance.service.copies.stage(*_args(text), NOW))
        assert get(world, op.id).state is State.SUCCEEDED
        assert blobs.read(destination, "b.bin") == DATA
        assert proxy.log.counts["put_blocklist"] == 1
    finally:
        other.close()


def test_a_crash_between_the_last_block_and_the_commit_is_finished_by_the_sweep(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))

    async def crash(self: BlockEngine, *args: object) -> None:
        raise RuntimeError("the instance died before its commit")

    with monkeypatch.context() as patch:
        patch.setattr(BlockEngine, "commit", crash)
        with pytest.raises(RuntimeError, match="died"):
            world.deliver(NOW)
    world.queue.clear_messages()  # the host died with them; the sweep is the only one left
    staged = get(world, op.id)
    assert staged.state is State.PENDING and block_lifecycle.complete(staged)
    assert not blobs.exists(destination, "b.bin")
    run(world.service.process_due(op.id, NOW + block_lifecycle.STALL + timedelta(seconds=10)))
    assert get(world, op.id).state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == DATA


def test_a_commit_whose_answer_was_lost_is_confirmed_by_the_sweep_not_sent_again(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    proxy.inject("put_blocklist", mode="lost_response")
    world.deliver(NOW)
    pending = get(world, op.id)
    assert pending.state is State.PENDING and block_lifecycle.part(pending).commit_sent_at is not None
    # Within the grace, nobody sends it again; after it, the sweep sees it landed.
    run(world.service.process_due(op.id, NOW + block_lifecycle.COMMIT_GRACE + timedelta(seconds=10)))
    assert get(world, op.id).state is State.SUCCEEDED
    assert proxy.log.counts["put_blocklist"] == 1
    assert blobs.read(destination, "b.bin") == DATA


def test_a_block_that_fails_for_a_moment_is_retried(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = boxes
    monkeypatch.setattr(block_engine, "RETRY_DELAY_SECONDS", 0)  # (5 s on the host: no waiting here)
    # More failures than the SDK's own retries: the block goes back to the queue.
    proxy.inject("put_block_from_url", times=5)
    op = start(world, body_of(source, destination))
    world.deliver(NOW)
    assert get(world, op.id).state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == DATA


def test_a_block_that_fails_for_good_fails_the_copy_and_commits_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    proxy.inject("put_block_from_url", status=403, code="AuthorizationPermissionMismatch", times=100)
    world.deliver(NOW)
    ended = get(world, op.id)
    assert ended.state is State.FAILED and ended.error is not None
    assert ended.error.code is ErrorCode.COPY_FAILED
    assert ended.error.message.startswith("Not allowed")  # what storage refused, said
    assert not blobs.exists(destination, "b.bin")
    assert proxy.log.counts["put_blocklist"] == 0


def test_a_source_deleted_mid_copy_is_a_source_that_changed(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    blobs.direct.get_blob_client(source, "a.bin").delete_blob()
    world.deliver(NOW)
    ended = get(world, op.id)
    assert ended.error is not None and ended.error.code is ErrorCode.SOURCE_CHANGED  # its pinned version is gone
    assert not blobs.exists(destination, "b.bin")


def test_a_stalled_staging_is_handed_out_again_by_the_sweep(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    op = start(world, body_of(source, destination))
    world.queue.clear_messages()  # every staging message lost (poisoned, say)
    assert run(world.service.process_due(op.id, NOW + timedelta(seconds=10))) == "not_due"
    run(world.service.process_due(op.id, NOW + block_lifecycle.STALL + timedelta(seconds=10)))
    assert len(world.peek()) == 3
    world.deliver(NOW + block_lifecycle.STALL)
    assert get(world, op.id).state is State.SUCCEEDED
    assert blobs.read(destination, "b.bin") == DATA


def test_the_view_shows_the_engine_and_its_blocks(world: JobWorld, boxes: tuple[str, str]) -> None:
    from copy_ops.copies.views import operation_view

    source, destination = boxes
    op = start(world, body_of(source, destination))
    stage_one(world, NOW)
    seen = get(world, op.id)
    view = operation_view(seen, None)
    assert view["engine"] == "blocks"
    assert view["blocks"]["total"] == 5 and 0 < view["blocks"]["staged"] < 5
    assert view["progress"]["bytes_total"] == len(DATA)
    # Exact: the bytes of the blocks staged (whichever message came first: the queue keeps no order).
    staged = blocks.Staged.parse(block_lifecycle.part(seen).staged)
    assert staged.count() == view["blocks"]["staged"]
    assert view["progress"]["bytes_copied"] == staged.bytes_staged(block_lifecycle.plan_of(seen)) > 0


def stage_one(world: JobWorld, now: datetime) -> None:
    """One staging message done (the first in the queue), as the host would."""
    message = next(iter(world.queue.receive_messages(max_messages=1, visibility_timeout=60)))
    run(do_work(world.service, str(message.content), now))
    world.queue.delete_message(message)


def _args(text: str) -> tuple[str, str, str | None]:
    work = decode(text)
    assert isinstance(work, Stage)
    return work.op, work.blocks, work.sas


def test_auto_copies_within_the_account_on_copy_blob_which_ends_at_once(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    """auto takes Copy Blob for a source in the app's own account, because Azure ends such
    a copy at once: so does the stand-in, even with its pending switch on (a copy Azure
    takes its time over is escalated to the blocks: tests/test_escalation.py)."""
    source, destination = boxes
    proxy.pending_copies = True
    op = start(world, {**body_of(source, destination, timeout_seconds=100), "engine": "auto"})
    assert (op.state, op.terms.engine) == (State.SUCCEEDED, Engine.ASYNC)
    assert blobs.read(destination, "b.bin") == DATA
    assert proxy.log.counts["abort_copy"] == proxy.log.counts["put_block_from_url"] == 0


def test_a_source_host_that_cannot_be_reached_is_the_callers_400_and_leaves_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str]
) -> None:
    from copy_ops.core.errors import InvalidRequest

    _, destination = boxes
    body = {**body_of("c", destination), "source": "http://127.0.0.1:1/devstoreaccount1/c/a.bin"}
    with pytest.raises(InvalidRequest) as refused:
        start(world, body)
    assert [error.field for error in refused.value.errors] == ["source"]
    assert run(world.service.list(ListQuery(None, 10, None))).items == []
    assert not blobs.exists(destination, "b.bin")


def test_a_copy_whose_deadline_leaves_no_time_for_a_commit_sends_nothing(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str], proxy: PendingCopyProxy
) -> None:
    source, destination = boxes
    blobs.put(source, "small.bin", b"small")
    body = {**body_of(source, destination, timeout_seconds=3), "source": {"container": source, "blob": "small.bin"}}
    op = start(world, body)
    assert op.state is State.PENDING and block_lifecycle.part(op).source_etag is None  # not planned: nothing sent
    assert proxy.log.counts["put_blob_from_url"] == 0
    run(world.service.process_due(op.id, NOW + timedelta(seconds=3)))
    assert (get(world, op.id).state, get(world, op.id).abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
    assert not blobs.exists(destination, "b.bin")


def test_a_leased_destination_refuses_the_commit_and_the_copy_fails_saying_so(
    world: JobWorld, blobs: Blobs, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    blobs.put(destination, "b.bin", BEFORE)
    blobs.direct.get_blob_client(destination, "b.bin").acquire_lease(-1)
    op = start(world, body_of(source, destination, overwrite=True))
    world.deliver(NOW)
    ended = get(world, op.id)
    assert ended.state is State.FAILED and ended.error is not None
    assert ended.error.code is ErrorCode.COPY_FAILED  # not "destination_exists": overwrite is true
    assert blobs.read(destination, "b.bin") == BEFORE


@pytest.mark.parametrize(
    ("engine", "blocks_named", "sas", "reason"),
    [
        ("async", "0-1", None, "not_a_block_copy"),
        ("blocks", "0-1", "sv=2025-01-05&sig=forged", "sas_not_asked_for"),
        ("blocks", "4-5", None, "outside_the_plan"),
    ],
)
def test_a_stage_message_that_does_not_fit_its_copy_stages_nothing(
    world: JobWorld,
    boxes: tuple[str, str],
    partner: Partner,
    proxy: PendingCopyProxy,
    engine: str,
    blocks_named: str,
    sas: str | None,
    reason: str,
) -> None:
    """Sealed, as if the work key had leaked: a stage message naming a copy of the other
    engine (pending on Copy Blob, from another account), bringing a SAS its copy never had,
    or blocks beyond its plan is refused whole."""
    source, destination = boxes
    body = body_of(source, destination, engine=engine)
    if engine == "async":
        proxy.pending_copies = True
        body["source"] = partner.put("a.bin", DATA)
    op = start(world, body)
    before = get(world, op.id)
    work = Stage(op.id, blocks_named, sas)
    assert run(world.service.copies.stage(work.op, work.blocks, work.sas, NOW)) == "refused", reason
    assert block_lifecycle.stage_refusal(before, blocks.Staged.parse(blocks_named).indexes(), sas) == reason
    after = get(world, op.id)
    assert (after.blocks, after.updated_at) == (before.blocks, before.updated_at)
