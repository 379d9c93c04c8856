"""The operation record's format (copy_ops.copies.model): pure, property-based."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copy_ops.copies.model import (
    AbortReason,
    Attempt,
    BlobRef,
    BlockState,
    Cause,
    Cleanup,
    Engine,
    ErrorCode,
    ForeignBlob,
    ItemClaim,
    OnAbort,
    Operation,
    OperationError,
    Progress,
    Restore,
    State,
    Terms,
)
from copy_ops.copies.owners import Owner
from copy_ops.copies.phases import Event, Move, Phase
from copy_ops.core.times import format_time
from copy_ops.core.versions import read_fields

TEXT = st.text(max_size=12)
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
REFS = st.builds(BlobRef, TEXT, TEXT)
RECORD = (Path(__file__).parent / "data" / "records-before-lean" / "escalated-staging.json").read_bytes()


def optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


TERMS = st.builds(
    Terms,
    deadline=TIMES,
    on_abort=st.sampled_from(OnAbort),
    metadata=st.dictionaries(TEXT, TEXT, max_size=3),
    overwrite=st.booleans(),
    lease_source=st.booleans(),
    engine=st.sampled_from(Engine),
    escalate_at=optional(TIMES),
    retry_attempts=st.integers(1, 10),
    retry_backoff_seconds=st.sampled_from([0.0, 0.5, 30.0, 600.0]),
)
BLOCK_STATES = st.builds(
    BlockState,
    source_etag=optional(TEXT),
    content=st.dictionaries(TEXT, TEXT, max_size=3),
    staged=TEXT,
    commit_sent_at=optional(TIMES),
    condition_etag=optional(TEXT),
)
# A reason is said or left out (an empty one is not kept); a move is by a caller's object id, or nobody.
REASONS = optional(st.text(min_size=1, max_size=12))
OBJECT_IDS = st.uuids().map(str)
MOVES = st.builds(Move, TIMES, st.sampled_from(Phase), st.sampled_from(Event), REASONS, optional(OBJECT_IDS))
ATTEMPTS = st.builds(
    Attempt,
    st.integers(1, 10),
    TIMES,
    st.sampled_from(Cause),
    st.builds(OperationError, st.sampled_from(ErrorCode), TEXT),
    optional(TEXT),
    st.integers(0, 2**50),
    st.integers(0, 2**50),
    st.floats(0, 1e6),
)
# An owner: an object id, and a name as a token gives it (any text, or none).
OWNERS = st.builds(Owner, OBJECT_IDS, optional(st.text(max_size=40)))


def engine_of_its_part(operation: Operation) -> Operation:
    """A part present means its machine is in use: the block engine's, with its engine."""
    engine = Engine.BLOCKS if operation.blocks is not None else operation.terms.engine
    if engine is Engine.BLOCKS and operation.blocks is None:
        engine = Engine.ASYNC
    return dataclasses.replace(operation, terms=dataclasses.replace(operation.terms, engine=engine))


OPERATIONS = st.builds(
    Operation,
    id=TEXT,
    state=st.sampled_from(State),
    source=TEXT,
    destination=REFS,
    terms=TERMS,
    created_at=TIMES,
    updated_at=TIMES,
    source_blob=optional(REFS),
    copy_id=optional(TEXT),
    finished_at=optional(TIMES),
    next_check_at=optional(TIMES),
    checks=st.integers(0, 10**6),
    abort_reason=optional(st.sampled_from(AbortReason)),
    abort_requested_at=optional(TIMES),
    error=optional(st.builds(OperationError, st.sampled_from(ErrorCode), TEXT)),
    progress=optional(st.builds(Progress, st.integers(0, 2**50), st.integers(0, 2**50))),
    had_destination=optional(st.booleans()),
    cleanup=st.lists(st.sampled_from(Cleanup), max_size=3, unique=True).map(tuple),
    fingerprint=optional(TEXT),
    caller=optional(OWNERS),
    job=optional(TEXT),
    source_size=optional(st.integers(0, 2**50)),
    source_foreign=optional(st.builds(ForeignBlob, TEXT, TEXT, TEXT)),
    source_sas=st.booleans(),
    phase=st.sampled_from(Phase),
    history=st.lists(MOVES, max_size=3).map(tuple),
    blocks=optional(BLOCK_STATES),
    claim=optional(st.builds(ItemClaim, TEXT, TIMES)),
    restore=optional(st.builds(Restore, TEXT, optional(TEXT))),
    attempt=st.integers(1, 10),
    attempt_at=optional(TIMES),
    failed_attempts=st.lists(ATTEMPTS, max_size=3).map(tuple),
).map(engine_of_its_part)

# The keys of the stored format as the record wrote them before it had parts (every key
# records-before-lean hold), and the one added since: its terms are stored whole. A key
# added later is a field of its terms or a part, or its caller (the version before leaves
# each aside).
STORED = {
    *json.loads((Path(__file__).parent / "data" / "records-before-lean" / "async-recorded.json").read_bytes()),
    "overwrite",
}
FLAT = {field.name for kind in (Terms, BlockState, ItemClaim, Restore) for field in dataclasses.fields(kind)} | {
    "caller",
    # An operation's attempts (copy_ops.copies.retry), added since too.
    "attempt",
    "attempt_at",
    "failed_attempts",
}
# What the record wrote of each part's fields when the part was not in use (before parts).
ABSENT: dict[str, dict[str, object]] = {
    "blocks": {"source_etag": None, "content": {}, "staged": "", "commit_sent_at": None, "condition_etag": None},
    "claim": {"start_token": None, "claimed_at": None},
    "restore": {"snapshot": None, "restore_copy_id": None},
}


def reference_json(operation: Operation) -> bytes:
    """The stored format built the plain, slow way (``dataclasses.asdict``, every value made
    plain): the terms' and each part's fields flat beside the record's own, a part absent as
    the record wrote its fields before there were parts, and the commit's condition."""

    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return format_time(value, exact=True)
        raise TypeError(type(value).__name__)

    data = dataclasses.asdict(operation)
    data.update(data.pop("terms"))
    for name, absent in ABSENT.items():
        data.update(data.pop(name) or absent)
    data["condition"] = operation.condition.value
    data["history"] = [move.as_dict() for move in operation.history]
    if operation.error is not None:
        data["error"] = operation.error.as_dict()
    return json.dumps(data, default=plain, sort_keys=True).encode()


@given(OPERATIONS)
def test_a_record_is_written_in_the_stored_format_and_read_back_whole(operation: Operation) -> None:
    written = operation.to_json()
    assert written == reference_json(operation)
    keys = set(json.loads(written))
    assert keys >= STORED and keys - STORED <= FLAT
    assert Operation.from_json(written) == operation


def test_a_field_added_to_the_terms_with_a_default_reads_from_a_record_written_before_it() -> None:
    """What makes a new request field need no code in the records: a record (or job) without
    the field's key reads with its default; one without a field that has none is refused."""

    @dataclasses.dataclass(frozen=True)
    class Later(Terms):
        tier: OnAbort = OnAbort.DELETE  # any enumeration will do: read by its type

    written = json.loads(Operation.from_json(RECORD).to_json())
    assert read_fields(Later, written) == Later(**dataclasses.asdict(read_fields(Terms, written)))
    assert read_fields(Later, {**written, "tier": "restore"}).tier is OnAbort.RESTORE
    with pytest.raises(KeyError):
        read_fields(Terms, {key: value for key, value in written.items() if key != "deadline"})


def test_a_job_record_of_a_later_version_is_read_with_its_new_fields_left_aside() -> None:
    """A rolling deployment: a later version adds fields to the job record, its source, its
    checkpoint, its counts and failures; an instance on this version still reads the job."""
    from copy_ops.jobs.model import Counts, Enumeration, Failure, Job, JobState, Listing, PrefixSource

    now = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    job = Job(
        id="8203468800000-5b679290",
        state=JobState.RUNNING,
        source=PrefixSource(Listing.OWN, "src", "in/", "http://127.0.0.1/devstoreaccount1/src"),
        manifest_size=0,
        destination_container="dst",
        destination_prefix="out/",
        terms=Terms(now),
        created_at=now,
        fingerprint="f",
        enumeration=Enumeration(page=2, items=7, progressed_at=now),
        counts=Counts(),
        failures=(Failure("8203468800000-5b679290-0000000000000000", "copy_failed"),),
    )
    data = json.loads(job.to_json())
    data["added_later"] = "later"
    for part in (data["source"], data["enumeration"], data["counts"], *data["failures"]):
        part["added_later"] = {"any": ["thing"]}
    assert Job.from_json(json.dumps(data).encode()) == job
