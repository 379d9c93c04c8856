"""Service logic on in-memory storage (tests/support/memory.py): the interleavings that
are slow or hard to arrange on the wire, many per second. The Azurite tests stay the
proof against real storage."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies import lifecycle
from copy_ops.copies.model import AbortReason, BlobRef, Cleanup, CopyStatus, ErrorCode, OnAbort, State
from copy_ops.core.errors import Conflict, CopyOpsError
from copy_ops.core.settings import Settings
from copy_ops.jobs.ports import JobStorage
from devkit.worker import run
from tests.support.memory import MemoryStorage
from tests.support.requests import copy_body, start

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_SWEEP_CONCURRENCY": "4"})
SOURCE = BlobRef("src", "a.bin")


def service_on(storage: MemoryStorage) -> AppService:
    conforms: JobStorage = storage  # the fake implements every port (checked by mypy)
    return AppService(SETTINGS, conforms)


def fresh(pending: bool = True) -> tuple[MemoryStorage, AppService]:
    storage = MemoryStorage()
    storage.pending = pending
    storage.put(SOURCE, b"x" * 10)
    return storage, service_on(storage)


def test_a_copy_that_finishes_at_once_costs_no_cleanup() -> None:
    storage, service = fresh(pending=False)
    op = start(service, copy_body("src", "dst"), T0).operation
    assert (op.state, op.cleanup) == (State.SUCCEEDED, ())
    assert storage.blobs[BlobRef("dst", "a.bin")].data == b"x" * 10


def test_an_abort_landing_before_copy_blob_is_merged_by_the_start() -> None:
    """The abort request ends the record (no copy id yet); the start's copy then begins,
    its write loses, and it merges: aborts its own copy, applies on_abort, releases the lease."""
    storage, service = fresh()

    async def abort_first_record(ref: BlobRef) -> None:
        # Called on the loop, inside Copy Blob: the other writer is awaited, not run.
        await service.abort((await service.ledger.page(1, None))[0][0], T0)

    storage.before_copy = abort_first_record
    body = copy_body("src", "dst", lease_source=True, on_abort="delete", timeout_seconds=600)
    op = start(service, body, T0).operation
    assert (op.state, op.abort_reason, op.cleanup) == (State.ABORTED, AbortReason.REQUESTED, ())
    assert op.copy_id is not None and storage.aborts == [(BlobRef("dst", "a.bin"), op.copy_id)]
    assert BlobRef("dst", "a.bin") not in storage.blobs
    assert storage.blobs[SOURCE].lease_id is None


def test_an_abort_request_landing_before_the_starts_write_is_kept() -> None:
    storage, service = fresh()

    async def request_abort(container: str, name: str) -> None:
        stored = await service.ledger.read(name.removeprefix("ops/").removesuffix(".json"))
        await service.ledger.save(lifecycle.request_abort(stored.op, T0), stored.etag, T0)

    storage.before_replace = request_abort
    op = start(service, copy_body("src", "dst", timeout_seconds=600), T0).operation
    assert op.state is State.PENDING and op.copy_id is not None and op.abort_requested_at == T0
    summary = run(sweep(service, T0 + timedelta(seconds=1)))
    assert summary.outcomes == {"aborted": 1}
    final = run(service.ledger.get(op.id))
    assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.REQUESTED)


def test_a_late_start_check_finds_stops_and_cleans_up_after_a_dead_start() -> None:
    storage, service = fresh()
    op = start(service, copy_body("src", "dst", lease_source=True, on_abort="delete", timeout_seconds=600), T0)
    # As if the abort had won and the start had died after Copy Blob: the record ended
    # without the copy id, the copy still runs, the lease is still held.
    stored = run(service.ledger.read(op.operation.id))
    ended = lifecycle.finish(
        replace(stored.op, copy_id=None), State.ABORTED, T0, service_timing(), abort_reason=AbortReason.REQUESTED
    )
    assert ended.cleanup == (Cleanup.CHECK_LATE_START, Cleanup.RELEASE_SOURCE_LEASE)
    grace_over = lifecycle.late_start_check_at(ended, service_timing())
    lease_released = replace(ended, cleanup=(Cleanup.CHECK_LATE_START,), next_check_at=grace_over)
    run(service.ledger.save(lease_released, stored.etag, T0))
    assert run(sweep(service, T0 + timedelta(seconds=60))).outcomes == {}  # not due before the grace
    after_grace = T0 + timedelta(seconds=SETTINGS.start_grace_seconds)
    assert run(sweep(service, after_grace)).outcomes == {"cleaned": 1}
    final = run(service.ledger.get(op.operation.id))
    assert final.copy_id == op.operation.copy_id and final.cleanup == ()
    assert BlobRef("dst", "a.bin") not in storage.blobs and storage.blobs[SOURCE].lease_id is None


def service_timing() -> lifecycle.Timing:
    return lifecycle.Timing(
        timedelta(seconds=SETTINGS.start_grace_seconds),
        timedelta(seconds=SETTINGS.first_check_seconds),
        timedelta(seconds=SETTINGS.max_check_interval_seconds),
    )


def test_restore_puts_the_old_destination_back_then_drops_the_snapshot() -> None:
    storage, service = fresh()
    dest = BlobRef("dst", "a.bin")
    storage.put(dest, b"before", {"k": "old"})
    op = start(service, copy_body("src", "dst", overwrite=True, on_abort="restore", timeout_seconds=60), T0).operation
    assert run(sweep(service, T0 + timedelta(seconds=61))).outcomes == {"aborted": 1}
    assert storage.blobs[dest].data == b"before" and storage.blobs[dest].metadata == {"k": "old"}
    assert storage.blobs[dest].snapshots == {} and run(service.ledger.get(op.id)).cleanup == ()


# -- random interleavings ---------------------------------------------------------

DESTINATIONS = ["d0", "d1", "d2"]


class Interleavings(RuleBasedStateMachine):
    """Starts, abort requests, sweeps, and storage acting on its own, in any order.
    Whatever happens: a final state never changes, no copy that is not an operation's
    own is ever aborted, and in the end every operation is final with nothing owed."""

    def __init__(self) -> None:
        super().__init__()
        self.storage, self.service = fresh()
        self.now = T0
        self.ids: list[str] = []
        self.finals: dict[str, State] = {}

    def _dest(self, name: str) -> BlobRef:
        return BlobRef("dst", name)

    @rule(name=st.sampled_from(DESTINATIONS), timeout=st.integers(1, 120), on_abort=st.sampled_from(list(OnAbort)))
    def start_copy(self, name: str, timeout: int, on_abort: OnAbort) -> None:
        body = copy_body("src", "dst", dest_name=name, timeout_seconds=timeout, on_abort=on_abort.value, overwrite=True)
        body["lease_source"] = on_abort is not OnAbort.RESTORE
        try:
            self.ids.append(start(self.service, body, self.now).operation.id)
        except Conflict:
            pass  # a copy is already pending there, or the source is leased by another
        except CopyOpsError as exc:
            raise AssertionError(exc) from exc

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 100))
    def request_abort(self, index: int) -> None:
        with contextlib.suppress(Conflict):  # it ended otherwise
            run(self.service.abort(self.ids[index % len(self.ids)], self.now))

    @rule(seconds=st.integers(1, 90))
    def sweep_later(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        assert run(sweep(self.service, self.now)).outcomes["error"] == 0

    @rule(name=st.sampled_from(DESTINATIONS), what=st.sampled_from(["finish", "fail", "overwrite", "delete"]))
    def storage_acts(self, name: str, what: str) -> None:
        ref = self._dest(name)
        blob = self.storage.blobs.get(ref)
        if blob is None or (what in ("finish", "fail") and blob.copy_status is not CopyStatus.PENDING):
            return
        if what == "finish":
            self.storage.finish(ref)
        elif what == "fail":
            self.storage.fail(ref)
        elif what == "overwrite":
            self.storage.put(ref, b"someone else's")
        else:
            self.storage.blobs.pop(ref, None)

    @invariant()
    def finals_never_change_and_only_our_copies_are_aborted(self) -> None:
        records = {op_id: run(self.service.ledger.get(op_id)) for op_id in self.ids}
        for op_id, op in records.items():
            if op_id in self.finals:
                assert op.state is self.finals[op_id], (op_id, self.finals[op_id], op.state)
            elif op.is_final:
                self.finals[op_id] = op.state
        ours = {(op.destination, op.copy_id) for op in records.values()}
        for aborted in self.storage.aborts:
            assert aborted in ours, aborted

    def teardown(self) -> None:
        # Past every deadline and the start grace: everything ends, nothing stays owed.
        for _ in range(4):
            self.now += timedelta(seconds=SETTINGS.start_grace_seconds)
            run(sweep(self.service, self.now))
        for op_id in self.ids:
            op = run(self.service.ledger.get(op_id))
            assert op.is_final and op.cleanup == (), op
            if op.error is not None:
                assert op.error.code in set(ErrorCode)
        assert all(blob.lease_id is None for blob in self.storage.blobs.values())


Interleavings.TestCase.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
test_random_interleavings = Interleavings.TestCase


@pytest.mark.parametrize("what", ["overwrite", "delete"])
def test_a_restore_after_someone_else_wrote_or_deleted_the_destination_ends(what: str) -> None:
    """Found by the interleavings: an escalated copy with ``restore``, past its deadline,
    whose destination someone else overwrote (its snapshot stays, as Azure keeps a blob's
    snapshots on Put Blob) or deleted with its snapshots (nothing left to restore from:
    the restore is dropped, said once) ends with nothing owed."""
    steps = Interleavings()
    steps.start_copy(name="d2", on_abort=OnAbort.KEEP, timeout=1)
    steps.request_abort(index=0)
    steps.start_copy(name="d2", on_abort=OnAbort.RESTORE, timeout=3)
    steps.sweep_later(seconds=2)
    steps.storage_acts(name="d2", what=what)
    steps.teardown()  # every operation final, nothing owed
    restored = steps.storage.blobs.get(BlobRef("dst", "d2"))
    assert (restored is not None) == (what == "overwrite")
