"""How an operation is shown to callers: the API's JSON shape, no bookkeeping, no secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from copy_ops.copies import block_lifecycle
from copy_ops.copies.model import Attempt, Cleanup, Operation
from copy_ops.core.times import format_time


def when_shown(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def operation_view(op: Operation, destination_url: str | None) -> dict[str, Any]:
    return {
        "id": op.id,
        "state": op.state.value,
        # Where it is in its machine (docs/machines/copy.md).
        "phase": op.phase.value,
        # Its moves, the latest ones: when, to which phase, on what, why it ended, and by
        # which caller, where a caller's request made the move.
        "history": [move.as_dict() for move in op.history],
        # Whose it is (a job's item: its job's caller): the object id, and the name the token
        # gave; null when no caller is known (a key's holder started it, or it predates callers).
        "caller": op.caller.as_dict() if op.caller is not None else None,
        "source": op.source,
        "destination": {**op.destination.as_dict(), "url": destination_url},
        "copy_id": op.copy_id,
        "deadline": when_shown(op.terms.deadline),
        "created_at": when_shown(op.created_at),
        "updated_at": when_shown(op.updated_at),
        "finished_at": when_shown(op.finished_at),
        "progress": op.progress.as_dict() if op.progress else None,
        "on_abort": op.terms.on_abort.value,
        "lease_source": op.terms.lease_source,
        "metadata": op.terms.metadata,
        "abort_reason": op.abort_reason.value if op.abort_reason else None,
        "error": op.error.as_dict() if op.error else None,
        # Cleanup that failed for now and that the sweep retries (e.g. a lease release).
        # (The event still owed is not cleanup the caller can see or wait for.)
        "cleanup_pending": [task.value for task in op.cleanup if task is not Cleanup.ANNOUNCE],
        # The job this operation is an item of, if any.
        "job": op.job,
        # The engine moving the bytes (an escalated copy: blocks, its async copy_id kept)
        # and, for the block engine once it has planned, its blocks staged of all.
        "engine": op.terms.engine.value,
        "blocks": _blocks(op),
        # The attempt under way of how many at most, and each that failed for a cause that
        # may pass (docs/retry.md); the last one's error, while the copy goes on.
        "attempt": {
            "number": op.attempt,
            "of": op.terms.retry_attempts,
            "last_error": op.failed_attempts[-1].error.as_dict() if op.failed_attempts else None,
            "failed": [_failed(attempt) for attempt in op.failed_attempts],
        },
    }


def _failed(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "at": when_shown(attempt.at),
        "cause": attempt.cause.value,
        "error": attempt.error.as_dict(),
        "copy_id": attempt.copy_id,
    }


def _blocks(op: Operation) -> dict[str, int] | None:
    counts = block_lifecycle.counts(op)
    return {"staged": counts[0], "total": counts[1]} if counts is not None else None
