"""A job's moves: each change of a job record that moves its phase, with the fields that
change with it, made by the job's one table (:data:`copy_ops.jobs.phases.MACHINE`) and
written as a line of its history, in the write that records the change. Pure: ``now`` is
passed in. The listing (:mod:`copy_ops.jobs.listing`), the job's check
(:mod:`copy_ops.jobs.settle`) and the abort call these, and only these move a job.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from copy_ops.copies.model import State
from copy_ops.jobs import progress
from copy_ops.jobs.model import Enumeration, Job, JobState
from copy_ops.jobs.phases import MACHINE, JobEvent


def _moved(
    job: Job, event: JobEvent, now: datetime, reason: str | None = None, by: str | None = None, **fields: Any
) -> Job:
    """``job`` with ``fields`` changed, moved on ``event`` (an illegal move raises); ``by``:
    the caller who asked for the move, if one did."""
    return dataclasses.replace(job, **fields, **MACHINE.moved(job.phase, job.history, event, now, reason, by=by))


def checkpoint_moved(job: Job, enumeration: Enumeration, now: datetime) -> Job:
    """The job with its checkpoint moved (a page listed, a chunk started, the listing
    stopped); once that checkpoint is done and was not before, the listing's end moves the
    job on: listed to its end, or stopped early (and why)."""
    if not enumeration.done or job.enumeration.done:
        return dataclasses.replace(job, enumeration=enumeration)
    if enumeration.stopped is not None:
        return _moved(job, JobEvent.LISTING_STOPPED, now, enumeration.stopped, enumeration=enumeration)
    return _moved(job, JobEvent.LISTING_DONE, now, f"{enumeration.items} items found", enumeration=enumeration)


def stopped_by_check(job: Job, reason: str, now: datetime) -> Job:
    """Stopped by its check (an abort, the deadline), whatever a page is doing: it ends
    once the batches under way are done (:func:`copy_ops.jobs.progress.stopped_by_check`)."""
    stopped = progress.stopped_by_check(job.enumeration, reason, now)
    return _moved(job, JobEvent.STOPPED, now, reason, enumeration=stopped)


def batches_done(job: Job, soon: Enumeration, now: datetime) -> Job:
    """A stopped job whose batches are all done: it ends once the index caught up
    (``soon``: :func:`copy_ops.jobs.progress.settling_soon`'s checkpoint)."""
    return _moved(job, JobEvent.BATCHES_DONE, now, enumeration=soon)


def reporting(job: Job, end: JobState, digits: int, now: datetime, check_at: datetime) -> Job:
    """Every item ended: its end decided, its report's ``16 ** digits`` parts sent now."""
    reason = f"{end}: the report in {progress.part_count(digits)} parts"
    return _moved(
        job,
        JobEvent.ITEMS_ENDED,
        now,
        reason,
        closing=end,
        report_digits=digits,
        report_sent_at=now,
        next_check_at=check_at,
    )


def finished(job: Job, end: JobState, report: str, now: datetime, *, owed: bool) -> Job:
    """The final state, its report written whole; ``owed``: its event is to be sent (now)."""
    counts = job.counts
    reason = f"{end}: {counts.items} items, {counts.of(State.SUCCEEDED)} succeeded"
    return _moved(
        job,
        JobEvent.FINISHED,
        now,
        reason,
        state=end,
        closing=None,
        finished_at=now,
        report=report,
        next_check_at=now if owed else None,
        announce_owed=owed,
    )


def announced(job: Job, now: datetime) -> Job:
    """The final state's event taken by a target: nothing owed, nothing due."""
    return _moved(job, JobEvent.ANNOUNCED, now, announce_owed=False, next_check_at=None)


def abort_requested(job: Job, now: datetime, by: str | None = None) -> Job:
    """An abort asked for (``by`` that caller): recorded, and the job due now (its check
    carries it out)."""
    return _moved(job, JobEvent.ABORT_REQUESTED, now, by=by, abort_requested_at=now, next_check_at=now)
