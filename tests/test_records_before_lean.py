"""Records as the code before the lean record wrote them (tests/data/records-before-lean/, one
a situation a record can be in while the app is upgraded): each reads, is written back with
every key the version before reads unchanged, and is settled by the sweep to the end that
version gave it, its cleanup done. Pure: the in-memory fakes (as tests/test_phases.py)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.lifecycle import lease_id_for
from copy_ops.copies.model import (
    OWNER_METADATA_KEY,
    BlockState,
    CopyStatus,
    ItemClaim,
    OnAbort,
    Operation,
    Restore,
    State,
    Terms,
)
from copy_ops.copies.phases import Phase
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Job
from devkit.worker import run
from tests.support.memory import MemoryBlob, MemoryQueue, MemoryStorage

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "data" / "records-before-lean"
RECORDS = sorted(path for path in HERE.glob("*.json") if not path.stem.startswith("job-running"))
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})
# Keys a record written now may have that the version before did not write, which it leaves
# aside: fields of its terms or its parts added since (overwrite first: the terms stored whole),
# its caller (copy_ops.copies.owners: none known, for a record written before), and its
# attempts (copy_ops.copies.retry: a record written before was on its first, of one).
RETRIES = {"attempt", "attempt_at", "failed_attempts"}
ADDED = {field.name for kind in (Terms, BlockState, ItemClaim, Restore) for field in dataclasses.fields(kind)} | {
    "caller",
    *RETRIES,
}
# How the sweep ends each, past its deadline: its state, and why (the abort's reason or the error).
ENDS = {
    "async-recorded": (State.FAILED, "not_started"),
    "async-copying": (State.ABORTED, "deadline"),
    "async-abort-requested": (State.ABORTED, "requested"),
    "blocks-recorded": (State.ABORTED, "deadline"),
    "blocks-staging": (State.ABORTED, "deadline"),
    "blocks-committing": (State.ABORTED, "deadline"),
    "blocks-one-request": (State.ABORTED, "deadline"),
    "escalating": (State.ABORTED, "deadline"),
    "escalated-planning": (State.ABORTED, "deadline"),
    "escalated-staging": (State.ABORTED, "deadline"),
    "ended-succeeded-blocks": (State.SUCCEEDED, None),
    "ended-failed": (State.FAILED, "copy_failed"),
    "ended-aborted-restore": (State.ABORTED, "deadline"),
    "ended-aborted-before-start": (State.ABORTED, "requested"),
    "job-item-claimed": (State.FAILED, "not_started"),
    "job-item-taken-over": (State.ABORTED, "deadline"),
}
BEFORE_RESTORE = b"what the destination held before"
# The parts each reads with: the block engine's on its copies (escalated ones too), a claim on
# a job's item, a restore where a snapshot was taken. The rest is the core and the terms.
PARTS = {
    **{stem: {"blocks"} for stem in ENDS if stem.startswith(("blocks-", "escalat", "ended-succeeded-blocks"))},
    "ended-aborted-restore": {"restore"},
    "job-item-claimed": {"claim"},
    "job-item-taken-over": {"claim"},
}


def test_every_record_written_before_is_kept() -> None:
    assert {path.stem for path in RECORDS} == set(ENDS)


@pytest.mark.parametrize("path", RECORDS, ids=lambda path: path.stem)
def test_a_record_written_before_reads_and_is_written_back_as_that_version_reads_it(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    op = Operation.from_json(path.read_bytes())
    assert {name for name in ("blocks", "claim", "restore") if getattr(op, name)} == PARTS.get(path.stem, set())
    assert Operation.from_json(op.to_json()) == op
    written = json.loads(op.to_json())
    # Every key the version before reads, as it wrote it: a rolling deployment needs no migration.
    assert {key: written.get(key) for key in raw} == raw
    assert set(written) - set(raw) <= ADDED and "overwrite" in written


def world_of(op: Operation) -> MemoryStorage:
    """Storage as the record says it was left: our copy on the destination (pending, or as it ended), the
    source leased by us, the snapshot a restore copies back."""
    storage = MemoryStorage()
    if op.source_blob is not None:
        lease = lease_id_for(op.id) if op.terms.lease_source else None
        storage.blobs[op.source_blob] = MemoryBlob(b"source", {}, lease_id=lease)
    if op.copy_id is not None:
        status = CopyStatus.PENDING if not op.is_final else CopyStatus(op.state.value.replace("succeeded", "success"))
        storage.blobs[op.destination] = MemoryBlob(b"", {OWNER_METADATA_KEY: op.id}, op.copy_id, status, 6)
    if op.restore is not None:
        blob = storage.blobs.setdefault(op.destination, MemoryBlob(b"", {}))
        blob.snapshots[op.restore.snapshot] = (BEFORE_RESTORE, {})
    return storage


@pytest.mark.parametrize("path", RECORDS, ids=lambda path: path.stem)
def test_a_record_written_before_is_settled_to_its_end(path: Path) -> None:
    op = Operation.from_json(path.read_bytes())
    storage = world_of(op)
    service = AppService(SETTINGS, storage, MemoryQueue())
    run(service.ledger.create(op, op.updated_at or op.created_at))
    later = op.terms.deadline + timedelta(minutes=5)
    for _ in range(4):
        run(service.process_due(op.id, later))
        later += timedelta(minutes=5)
    ended = run(service.ledger.get(op.id))
    why = ended.abort_reason or (ended.error.code if ended.error else None)
    assert (ended.state, why, ended.phase, ended.cleanup) == (*ENDS[path.stem], Phase.ENDED, ()), ended
    if op.restore is not None:
        assert storage.blobs[op.destination].data == BEFORE_RESTORE  # restored
    elif op.terms.on_abort is OnAbort.DELETE and op.copy_id is not None and ended.state is not State.SUCCEEDED:
        assert op.destination not in storage.blobs  # deleted
    if op.terms.lease_source and op.source_blob is not None:
        assert storage.blobs[op.source_blob].lease_id is None  # released


def test_a_job_written_before_reads_and_is_written_back_as_that_version_reads_it() -> None:
    raw = json.loads((HERE / "job-running.json").read_bytes())
    job = Job.from_json((HERE / "job-running.json").read_bytes())
    assert Job.from_json(job.to_json()) == job
    written = json.loads(job.to_json())
    assert {key: written.get(key) for key in raw} == raw
    # Its phase and history, stored since (tests/data/jobs-before-phases/ keeps jobs of then).
    assert set(written) - set(raw) <= ADDED | {"phase", "history"}
