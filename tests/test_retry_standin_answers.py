"""Which of Azure's answers may pass (issue 32, item 1), row by row: each refusal and each
failed copy's description in tests/data/azure-answers (recorded.json, recorded-more.json,
documented.json), sent by the stand-in in answer to the request of an attempt that meets
it, read by the real SDK and copy-ops' translation (copy_ops/storage/errors.py), made into
the attempt's failure as the app's steps make it, and judged by
copy_ops/copies/retry.cause_of. tests/test_azure_answers.py holds what the API answers for
the same answers; tests/test_retry_logic.py the table by error code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.copies import block_lifecycle, lifecycle, retry
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import BlobRef, CopyObservation, ErrorCode, Operation, OperationError, State, Terms
from copy_ops.copies.phases import Phase
from copy_ops.core.errors import CopyOpsError, StorageUnavailable
from copy_ops.core.settings import Settings
from devkit import PendingCopyProxy
from devkit.failures import SOURCE_GONE, TIMED_OUT
from devkit.worker import run
from tests.conftest import Blobs, open_storage
from tests.support.azure_answers import CALLS, COPY_ID, DOCUMENTED, FACTS, NOT_MET, Call, answer

# The app's requests that meet an answer within a copy's attempt: tests/test_azure_answers.py's,
# and the sweep's read of a destination's copy (a failed copy's description is in its properties).
ATTEMPT_CALLS: dict[str, tuple[str, Call]] = {
    **CALLS,
    "get_properties": ("get_properties", lambda storage, source, ref: storage.observe_copy(ref)),
}
# The failed copies' descriptions the REST reference lists besides the one documented.json
# holds (devkit/failures.py): the copy's time limit (the copy service's 500) and the source
# gone (the source's own 404).
DESCRIBED = {"described_time_limit": TIMED_OUT, "described_source_gone": SOURCE_GONE}
# Not the answer to an attempt, so no failure of one: an abort's, a cleanup's, a queue's.
NOT_AN_ATTEMPT = {
    "abort_completed": "Abort Copy: the copy ended first, as the abort wanted",
    "abort_missing_blob": "Abort Copy of a destination gone: the sweep's check says destination_gone",
    "abort_copy_id_not_a_guid": "Abort Copy names only copy ids storage gave",
    "abort_copy_id_mismatch": "Abort Copy of a copy replaced by someone else's: superseded",
    "lease_release_not_held": "the cleanup's release of a lease: released already, as it wanted",
}
# (answer, the request that meets it, the failure's error code (None: no failure, the step is
# sent again by the engine or looked at again by the next sweep), whether it may pass). The
# expected column is the issue's: storage's 500, 503 and timeouts pass; the source missing,
# forbidden or changed, the destination existing or leased, do not. A start refused at a first
# attempt is start_refused (a single copy's caller gets the 4xx; a job's item keeps it).
RETRY_ROWS = [
    ("copy_server_busy", "copy_blob", ErrorCode.STORAGE_UNAVAILABLE, True),
    ("copy_internal_error", "copy_blob", ErrorCode.STORAGE_UNAVAILABLE, True),
    ("copy_operation_timed_out", "copy_blob", ErrorCode.STORAGE_UNAVAILABLE, True),
    ("props_after_remote_failure", "get_properties", ErrorCode.COPY_FAILED, True),
    ("described_time_limit", "get_properties", ErrorCode.COPY_FAILED, True),
    ("props_server_busy", "get_properties", None, True),
    ("block_from_url_server_busy", "put_block_from_url", None, True),
    ("block_from_url_source_busy", "put_block_from_url", None, True),
    ("block_from_url_source_busy", "put_blob_from_url", None, True),
    ("described_source_gone", "get_properties", ErrorCode.COPY_FAILED, False),
    ("copy_private_no_sas", "copy_blob", ErrorCode.START_REFUSED, False),
    ("copy_missing_source_same_account", "copy_blob", ErrorCode.START_REFUSED, False),
    ("copy_destination_exists", "copy_blob", ErrorCode.START_REFUSED, False),
    ("copy_onto_failed_destination_absent", "copy_blob", ErrorCode.START_REFUSED, False),
    ("blob_from_url_leased_destination", "copy_blob", ErrorCode.START_REFUSED, False),
    ("lease_already_present", "acquire_lease", ErrorCode.START_REFUSED, False),
    ("block_from_url_no_auth", "put_block_from_url", ErrorCode.COPY_FAILED, False),
    ("blob_from_url_missing_private", "put_blob_from_url", ErrorCode.COPY_FAILED, False),
    ("blob_from_url_token_refused", "put_blob_from_url", ErrorCode.COPY_FAILED, False),
    ("block_from_url_source_if_match", "put_block_from_url", ErrorCode.SOURCE_CHANGED, False),
    ("block_from_url_source_if_unmodified_since", "put_block_from_url", ErrorCode.SOURCE_CHANGED, False),
    ("blob_from_url_source_if_unmodified_since", "put_blob_from_url", ErrorCode.SOURCE_CHANGED, False),
    ("blob_from_url_destination_exists", "put_blob_from_url", ErrorCode.DESTINATION_EXISTS, False),
    ("blob_from_url_destination_condition", "put_blob_from_url", ErrorCode.DESTINATION_EXISTS, False),
    ("blob_from_url_leased_destination", "put_blob_from_url", ErrorCode.COPY_FAILED, False),
    ("block_list_destination_exists", "put_blocklist", ErrorCode.DESTINATION_EXISTS, False),
    ("block_list_if_match_mismatch", "put_blocklist", ErrorCode.DESTINATION_EXISTS, False),
    ("blob_from_url_leased_destination", "put_blocklist", ErrorCode.COPY_FAILED, False),
]


def answer_or_described(fact_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The answer as Azure gave it; a described failure: the documented failed copy's
    properties with the reference's other description."""
    if fact_id not in DESCRIBED:
        return answer(fact_id)
    status, headers, body = answer("props_after_remote_failure")
    said = [(name, DESCRIBED[fact_id] if name == "x-ms-copy-status-description" else value) for name, value in headers]
    return status, said, body


def attempt(deadline: datetime) -> Operation:
    """A copy's attempt under way, not overwriting (its copy id the answers' own)."""
    return Operation(
        id="8203450000000-0a0a0a0a",
        state=State.PENDING,
        source="https://partner.example.net/c/a.bin",
        destination=BlobRef("dst", "b.bin"),
        terms=Terms(deadline, retry_attempts=3),
        created_at=deadline - timedelta(hours=1),
        copy_id=COPY_ID,
        phase=Phase.COPYING,
    )


def failure_of(
    request_kind: str, outcome: CopyOpsError | CopyObservation | None, op: Operation
) -> OperationError | None:
    """What the app records of an attempt that met ``outcome``, as its steps do: Copy Blob's
    start (copy_ops/copies/start.py), the block engine's sends (block_engine.py, whose
    failures are block_lifecycle.failure's), the sweep's check (lifecycle.decide)."""
    if not isinstance(outcome, CopyOpsError):
        decision = lifecycle.decide(op, outcome, datetime.now(UTC), Timing(*(timedelta(seconds=300),) * 3))
        return decision.error
    if request_kind in ("copy_blob", "acquire_lease"):
        transient = isinstance(outcome, StorageUnavailable)
        code = ErrorCode.STORAGE_UNAVAILABLE if transient else ErrorCode.START_REFUSED
        return OperationError(code, f"{outcome.title}: {outcome.detail}")
    if isinstance(outcome, StorageUnavailable):
        return None  # sent again: a block back on the queue, a commit or a check looked at again
    return block_lifecycle.failure(op, outcome)


@pytest.mark.parametrize(
    ("fact", "request_kind", "code", "transient"), RETRY_ROWS, ids=[f"{r[0]}-{r[1]}" for r in RETRY_ROWS]
)
def test_each_answer_is_judged_as_the_issue_lists_it(
    settings: Settings,
    proxy: PendingCopyProxy,
    blobs: Blobs,
    fact: str,
    request_kind: str,
    code: ErrorCode | None,
    transient: bool,
) -> None:
    storage = open_storage(settings)
    kind, call = ATTEMPT_CALLS[request_kind]
    proxy.inject(kind, mode="answer", answer=answer_or_described(fact), times=10)
    source = f"{proxy.url}/devstoreaccount1/{blobs.src}/private.bin"
    try:
        outcome = run(call(storage, source, BlobRef(blobs.dst, "b.bin")))
    except CopyOpsError as exc:
        outcome = exc
    error = failure_of(request_kind, outcome, attempt(datetime.now(UTC) + timedelta(hours=1)))
    assert (error.code if error else None) == code, (outcome, error)
    assert (error is None or retry.cause_of(error) is not None) is transient, error


def test_every_refusal_and_failed_copy_is_judged() -> None:
    """Each refusal (and each failed copy) of the answers has a row above, or is met by no
    attempt: a new answer added to tests/data/azure-answers is judged, or said why not."""

    def judged(fact: dict[str, Any]) -> bool:
        response = fact["response"]
        return bool(response["status"] >= 400 or response["headers"].get("x-ms-copy-status") == "failed")

    answers = {fact_id for fact_id, fact in (FACTS | DOCUMENTED).items() if judged(fact)}
    rows = {row[0] for row in RETRY_ROWS}
    assert answers - rows == set(NOT_MET) | set(NOT_AN_ATTEMPT)
    assert rows - answers == set(DESCRIBED)
