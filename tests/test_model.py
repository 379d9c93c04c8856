"""The operation record's format (copy_ops.copies.model): pure, property-based."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from copy_ops.copies.model import (
    AbortReason,
    BlobRef,
    Cleanup,
    Engine,
    ErrorCode,
    OnAbort,
    Operation,
    OperationError,
    Progress,
    State,
    Terms,
)
from copy_ops.core.times import format_time

TEXT = st.text(max_size=12)
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
REFS = st.builds(BlobRef, TEXT, TEXT)


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
)
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
    snapshot=optional(TEXT),
    had_destination=optional(st.booleans()),
    restore_copy_id=optional(TEXT),
    cleanup=st.lists(st.sampled_from(Cleanup), max_size=3, unique=True).map(tuple),
    fingerprint=optional(TEXT),
    job=optional(TEXT),
    source_size=optional(st.integers(0, 2**50)),
    start_token=optional(TEXT),
    claimed_at=optional(TIMES),
)


def reference_json(operation: Operation) -> bytes:
    """The format as first written (``dataclasses.asdict``, every value made plain): the
    records already stored are in it, so the faster encoding must keep it byte for byte."""

    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return format_time(value, exact=True)
        raise TypeError(type(value).__name__)

    data = dataclasses.asdict(operation)
    data.update(data.pop("terms"))  # its terms' fields among the record's, flat
    if operation.error is not None:
        data["error"] = operation.error.as_dict()
    return json.dumps(data, default=plain, sort_keys=True).encode()


@given(OPERATIONS)
def test_a_record_is_written_in_the_stored_format_and_read_back_whole(operation: Operation) -> None:
    written = operation.to_json()
    assert written == reference_json(operation)
    assert Operation.from_json(written) == operation


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
