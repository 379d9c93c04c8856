"""Another attempt while time remains: which failures may pass, how long the next attempt
waits, and whether the deadline leaves it room to end. Pure: functions of a record, an
error and ``now``.

**Which failures may pass** is one table, :data:`CAUSES`, by the failure's code (and, for a
copy Azure reported failed, by the status its description begins with: Azure writes the
status of the request that failed the copy, ``500 InternalServerError "Copy failed."``).
Everything not in it is permanent: the source missing, forbidden or changed, the destination
existing, written by someone else or gone, a name refused. Policy refusals and bad input are
4xx at the request and never become a record.

**The wait** after attempt k fails is ``backoff_seconds * 2 ** (k - 1)``, at most
:data:`LONGEST_BACKOFF`, times a jitter between one half and one, derived from the
operation's id and k (so two copies failing together spread apart, and a replayed decision
is the same decision). A start whose outcome is unknown waits at least the start grace: its
Copy Blob may still land, and the next attempt then adopts it.

**Room** for an attempt: it starts at the end of its wait and needs :func:`needed`: the
last attempt's pace over what the attempt has to move (Copy Blob moves the whole blob
again; the block engine only the blocks not staged), and never less than
:data:`ATTEMPT_FLOOR`. An attempt without that room is not started: the copy ends
``failed`` with the last attempt's error, at once rather than at its deadline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from copy_ops.copies.model import Attempt, Cause, Engine, ErrorCode, Operation, OperationError
from copy_ops.copies.phases import Event, Phase, moved
from copy_ops.core.errors import CopyOpsError
from copy_ops.core.problems import Problems
from copy_ops.core.redaction import redact
from copy_ops.core.settings import AZURE_COPY_LIMIT_SECONDS, LONGEST_BACKOFF_SECONDS, MOST_ATTEMPTS, Settings

__all__ = ["MOST_ATTEMPTS", "backoff", "cause_of", "may_retry", "needed", "retried", "retrying"]

# The longest any wait grows to: the longest first backoff a request may ask (more is
# refused, 400, as more than MOST_ATTEMPTS attempts are): a copy waiting longer between
# attempts is a copy that should have been started later.
LONGEST_BACKOFF = timedelta(seconds=LONGEST_BACKOFF_SECONDS)
# The least time an attempt is given to end: its start, a check, and (the block engine) its commit.
ATTEMPT_FLOOR = timedelta(seconds=15)
# How long a reason in the history may be (an error's message is storage's, and long).
REASON_LENGTH = 160

# Why a source given with a SAS is tried once (a request asking more attempts is refused).
SAS_TRIED_ONCE = (
    "a source given with a SAS is tried once: the app keeps no SAS to try it again "
    "(give the source by container and blob, or by account, read with the app's identity)"
)

# The failures that may pass, by code: what caused them, as metrics count retries.
CAUSES: dict[ErrorCode, Cause] = {
    # Storage answered a copy's start with a 5xx, 429 or not at all (its outcome unknown).
    ErrorCode.STORAGE_UNAVAILABLE: Cause.STORAGE_BUSY,
    # A start that never got its copy sent (its request died with its host, or was lost).
    ErrorCode.NOT_STARTED: Cause.NOT_STARTED,
    # The block engine's blocks kept failing (the staging found stalled, again and again).
    ErrorCode.BLOCKS_FAILED: Cause.BLOCKS_FAILED,
}
# A copy Azure ended ``failed``: transient when the status its description begins with is.
_SERVER_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_LEADING_STATUS = re.compile(r"\s*(\d{3})\b.*", re.DOTALL)


def cause_of(error: OperationError) -> Cause | None:
    """Why an attempt failed, if that may pass (None: permanent, never retried)."""
    if error.code is ErrorCode.COPY_FAILED:
        said = _LEADING_STATUS.fullmatch(error.message)
        return Cause.COPY_FAILED if said is not None and int(said.group(1)) in _SERVER_STATUSES else None
    return CAUSES.get(error.code)


def unanswered(fault: CopyOpsError) -> OperationError:
    """The error of an attempt whose start storage did not answer (its outcome unknown)."""
    return OperationError(ErrorCode.STORAGE_UNAVAILABLE, f"{fault.title}: {redact(fault.detail)}")


def backoff(op: Operation, failed: int) -> timedelta:
    """The wait after attempt ``failed`` of ``op`` (1 for the first), jittered."""
    first = op.terms.retry_backoff_seconds
    grown = min(LONGEST_BACKOFF.total_seconds(), first * (1 << min(failed - 1, 20)))
    digest = hashlib.sha256(f"{op.id}:{failed}".encode()).digest()
    jitter = 0.5 + int.from_bytes(digest[:4], "big") / 2**33  # one half to (nearly) one
    return timedelta(seconds=grown * jitter)


def needed(op: Operation) -> timedelta:
    """How long the next attempt of ``op`` is judged to need: its last failed attempt's pace
    over what is left to move, never less than the floor."""
    last = op.failed_attempts[-1] if op.failed_attempts else None
    if last is None or last.bytes_copied <= 0 or last.seconds <= 0:
        return ATTEMPT_FLOOR
    rate = last.bytes_copied / last.seconds
    # Copy Blob copies the whole blob again; the block engine keeps the blocks it staged.
    left = last.bytes_total if op.terms.engine is Engine.ASYNC else last.bytes_total - last.bytes_copied
    # At most Azure's longest copy (no deadline is further away): a crawl never overflows a time.
    return max(ATTEMPT_FLOOR, timedelta(seconds=min(left / rate, AZURE_COPY_LIMIT_SECONDS)))


def may_retry(op: Operation, at: datetime) -> bool:
    """Whether ``op``, its failed attempts recorded, may get another, starting at ``at``:
    attempts left, no abort asked for, and the deadline's room for it to end."""
    if len(op.failed_attempts) >= op.terms.retry_attempts or op.abort_requested_at is not None:
        return False
    return at + needed(op) <= op.terms.deadline


def retrying(op: Operation, error: OperationError, now: datetime, start_grace: timedelta) -> Operation | None:
    """``op`` with its attempt failed and its next one scheduled, if the failure may pass
    and another attempt has room; else None (the failure is the copy's end)."""
    cause = cause_of(error)
    if cause is None:
        return None
    progress, began = op.progress, op.attempt_at or op.created_at
    # A later attempt whose own send failed has no copy known: the record's copy id is still
    # the failed attempt's leftover, not this attempt's.
    copy_id = None if op.phase is Phase.RETRYING else op.copy_id
    failed = Attempt(
        op.attempt,
        now,
        cause,
        error,
        copy_id,
        bytes_copied=progress.bytes_copied if progress is not None else 0,
        bytes_total=progress.bytes_total if progress is not None else 0,
        seconds=max(0.0, (now - began).total_seconds()),
    )
    recorded = dataclasses.replace(op, failed_attempts=(*op.failed_attempts, failed))
    at = now + backoff(op, op.attempt)
    if error.code in (ErrorCode.STORAGE_UNAVAILABLE, ErrorCode.NOT_STARTED) and copy_id is None:
        # Its Copy Blob may still land: the next attempt looks for it, once it cannot land any more.
        at = max(at, began + start_grace)
    if not may_retry(recorded, at):
        return None
    reason = f"attempt {op.attempt} of {op.terms.retry_attempts}: {error.code.value}: {error.message}"
    return dataclasses.replace(
        recorded,
        next_check_at=at,
        checks=0,
        **moved(op.phase, op.history, Event.ATTEMPT_FAILED, now, reason[:REASON_LENGTH]),
    )


def retried(op: Operation, now: datetime, start_grace: timedelta) -> Operation:
    """The next attempt recorded before anything of it is sent: its number and start; if
    this process dies before its send is recorded, the sweep comes back once the start grace
    is over (and adopts a copy of it it finds)."""
    number = len(op.failed_attempts) + 1
    return dataclasses.replace(
        op,
        attempt=number,
        attempt_at=now,
        progress=None,
        checks=0,
        next_check_at=min(op.terms.deadline, now + start_grace),
        **moved(op.phase, op.history, Event.RETRIED, now, f"attempt {number} of {op.terms.retry_attempts}"),
    )


def last_error(op: Operation) -> OperationError | None:
    """The error of the latest attempt that failed, if one did."""
    return op.failed_attempts[-1].error if op.failed_attempts else None


def earlier_copy(op: Operation, copy_id: str | None) -> bool:
    """Whether ``copy_id`` is the copy of an attempt that failed (never adopted as the current one's)."""
    return copy_id is not None and any(attempt.copy_id == copy_id for attempt in op.failed_attempts)


def retry_asked(
    body: Mapping[str, Any], settings: Settings, problems: Problems, no_retry: str | None
) -> tuple[int, float]:
    """How many attempts at most, and the first wait between them: as asked, else the
    settings'; a source that cannot be tried again (``no_retry``: why) is tried once."""
    if "retry" not in body:
        return (1 if no_retry else settings.retry_attempts), float(settings.retry_backoff_seconds)
    # Given, it is an object: a null is refused as the document's schema refuses it.
    value = body["retry"]
    if not isinstance(value, Mapping):
        problems.bad("retry", "must be an object with attempts and, optionally, backoff_seconds")
        return 1, 0.0
    for name in sorted(set(value) - {"attempts", "backoff_seconds"}, key=str):
        problems.bad(f"retry.{name}", "unknown field")
    attempts = value.get("attempts", settings.retry_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MOST_ATTEMPTS:
        problems.bad("retry.attempts", f"must be a whole number from 1 to {MOST_ATTEMPTS}")
        attempts = 1
    elif no_retry and "attempts" in value and attempts > 1:
        problems.bad("retry.attempts", no_retry)
    backoff = value.get("backoff_seconds", settings.retry_backoff_seconds)
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not 0 <= backoff <= LONGEST_BACKOFF_SECONDS:
        # (NaN and the infinities fail the range too.)
        problems.bad("retry.backoff_seconds", f"must be a number of seconds from 0 to {LONGEST_BACKOFF_SECONDS}")
        backoff = 0
    return (1 if no_retry else attempts), float(backoff)
