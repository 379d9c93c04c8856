"""A job's decisions: its items' ids and names, when to check it again, whether its
enumeration stalled, and how it ended. Pure: ``now`` is passed in."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from copy_ops.copies import lifecycle
from copy_ops.copies.model import ItemClaim, Operation, State
from copy_ops.copies.phases import Phase
from copy_ops.core import names
from copy_ops.jobs.model import Counts, Enumeration, Job, JobState

# A job is checked this long after it starts, doubling per check up to the longest...
FIRST_CHECK = timedelta(seconds=10)
LONGEST_CHECK = timedelta(seconds=60)
# ...and soon after its deadline, when its items are aborted and it can end.
AFTER_DEADLINE = timedelta(seconds=5)
# No page done for this long: the enumeration is checked (resumed, or given up). Well
# above a page's few seconds and the host's retries of a failing message (5 x 10 s).
STALL = timedelta(minutes=5)
# Failed items named in a job's view (the report names every one).
FAILURES_SHOWN = 10


def item_id(job_id: str, name: str) -> str:
    """The id of the job's item that lands on ``name``: derived, so starting a page twice
    finds the item recorded and starts nothing twice (invariant 8)."""
    return f"{job_id}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def item_prefix(job_id: str) -> str:
    """What every item id of the job begins with."""
    return f"{job_id}-"


def source_name_problem(name: str) -> str | None:
    """Why copy-ops will not address the listed source blob ``name`` (legal in Azure, but a
    URL client could read it as another path), or None. Its item fails, ``unsafe_name``."""
    problem = names.blob_problem(name)
    return f"the source name {problem}" if problem is not None else None


def destination_name_problem(name: str) -> str | None:
    """Why the destination prefix and the blob's name below the source prefix make no
    name copy-ops accepts (empty, ending in ``/``, too long...), or None."""
    problem = names.blob_problem(name)
    if problem is None:
        return None
    return f"the destination name (destination prefix + the name below the source prefix) {problem}"


# A batch or page in flight when its job's check stops the job is done within this: no item
# starts past the deadline (nor, the job read again every second, after an abort), and one
# claimed before sends its copy within half a claim or gives up (a record write held up by
# retries is the longest part). A job listed whole waits only for its batches' marks, then
# CATCH_UP for the index (jobs/watch.py says why 2 s). After an abort, the job is checked
# every ABORT_LOOK (a check message it sends itself) for IN_FLIGHT, each check aborting the
# items the index shows pending: those a batch started just before it stopped, too.
IN_FLIGHT = timedelta(minutes=1)
CATCH_UP = timedelta(seconds=2)
ABORT_LOOK = timedelta(seconds=2)


def stopped_by_check(enumeration: Enumeration, reason: str, now: datetime) -> Enumeration:
    """Stopped by the job's check (an abort, the deadline), whatever a page is doing."""
    return dataclasses.replace(stopped(enumeration, reason, None, now), settle_after=now + IN_FLIGHT)


def listed_whole(enumeration: Enumeration) -> bool:
    """A prefix job listed to its end: each batch it handed out counted (and marked once done)."""
    return enumeration.page > 0 and enumeration.marker is None and not enumeration.chunks


def settling_soon(enumeration: Enumeration, now: datetime) -> Enumeration | None:
    """A stopped job listed whole whose batches are all marked ends once the index caught up,
    not IN_FLIGHT after its stop; None if that changes nothing."""
    after = enumeration.settle_after
    if after is None or not listed_whole(enumeration) or after <= now + CATCH_UP:
        return None
    return dataclasses.replace(enumeration, settle_after=now + CATCH_UP)


def aborting(job: Job, now: datetime) -> bool:
    """Whether the job is checked every ABORT_LOOK (an abort asked within IN_FLIGHT)."""
    return job.abort_requested_at is not None and now < job.abort_requested_at + IN_FLIGHT


DEADLINE_PASSED = "the deadline passed before the source was listed to its end"
UNSTARTED = "before every listed item was started"


def stopped_reason(reason: str, listed: bool) -> str:
    """Why a job stopped, said of what it stopped: its listing, or (``listed``: the listing
    was done) the batches of its items not started yet, which start nothing any more."""
    if not listed:
        return reason
    if reason == DEADLINE_PASSED:
        return f"the deadline passed {UNSTARTED}"
    return f"{reason} {UNSTARTED}"


def stop_reason(job: Job, now: datetime) -> str | None:
    """Why no more of the job's items are to be started, or None: an abort, or its deadline
    (an item started now could not finish in time, and the job ends with what it has)."""
    if job.abort_requested_at is not None:
        return "the job was aborted"
    if now >= job.terms.deadline:
        return DEADLINE_PASSED
    return None


def destination_name(job: Job, relative: str) -> str:
    return job.destination_prefix + relative


def relative_name(source_prefix: str, name: str) -> str:
    """A listed blob's name below the source's prefix: where it lands under the destination's."""
    return name[len(source_prefix) :] if name.startswith(source_prefix) else name


def next_check(job: Job, now: datetime) -> datetime:
    """Every ABORT_LOOK after an abort; else doubling from the first check up to the longest
    while the job runs; soon after its deadline, when its items end; then at every sweep."""
    if aborting(job, now):
        return now + ABORT_LOOK
    if now >= job.terms.deadline:
        return now + FIRST_CHECK
    interval = min(LONGEST_CHECK, FIRST_CHECK * (1 << min(job.checks, 10)))
    return min(now + interval, job.terms.deadline + AFTER_DEADLINE)


def stalled(job: Job, now: datetime) -> bool:
    progressed = job.enumeration.progressed_at or job.created_at
    return not job.enumeration.done and now - progressed >= STALL


def page_done(
    enumeration: Enumeration, found: int, marker: str | None, now: datetime, attempt: str, *, batches: int = 0
) -> Enumeration:
    """The checkpoint after a page of ``found`` items, handed out in ``batches``, whose next
    page starts at ``marker``, moved by the page's listing attempt ``attempt``."""
    return dataclasses.replace(
        enumeration,
        page=enumeration.page + 1,
        marker=marker,
        items=enumeration.items + found,
        batches=enumeration.batches + batches,
        done=marker is None,
        progressed_at=now,
        moved_by=attempt,
    )


def part_count(digits: int) -> int:
    """How many parts a job's report has whose part names have ``digits`` hex digits."""
    return 16**digits if digits else 1


def chunk_done(enumeration: Enumeration, index: int, now: datetime, late: int = 0) -> Enumeration:
    """The checkpoint after a manifest chunk, ``late`` of whose items came past the deadline
    and were not started: the job does not wait for them."""
    done = tuple(sorted({*enumeration.chunks_done, index}))
    return dataclasses.replace(
        enumeration,
        chunks_done=done,
        done=len(done) >= enumeration.chunks,
        progressed_at=now,
        items=enumeration.items - late,
    )


def stopped(enumeration: Enumeration, reason: str, items: int | None, now: datetime) -> Enumeration:
    """No more pages: the job is the items found so far (``items``: as counted, when the
    messages that knew of more were lost)."""
    return dataclasses.replace(
        enumeration,
        done=True,
        stopped=reason,
        items=enumeration.items if items is None else items,
        progressed_at=now,
    )


def ending(job: Job, counts: Counts, now: datetime) -> JobState | None:
    """The job's final state once every item it found has ended, else None. The counts
    come from the blob index, which may lag: fewer items than found means wait; and a job
    whose enumeration its check stopped waits until a page still in flight is done."""
    enumeration = job.enumeration
    if not enumeration.done or counts.of(State.PENDING):
        return None
    if enumeration.settle_after is not None:
        # Stopped by its check: the job is the items its pages started; once those pages
        # are done (and the index has caught up with them), whatever the listing found.
        if now < enumeration.settle_after:
            return None
    elif counts.items < enumeration.items:
        return None
    if job.abort_requested_at is not None:
        return JobState.ABORTED
    if job.enumeration.stopped is None and counts.of(State.SUCCEEDED) == counts.items:
        return JobState.SUCCEEDED
    return JobState.FAILED


def running_state(job: Job) -> JobState:
    return JobState.RUNNING if job.enumeration.done else JobState.ENUMERATING


class Claim(StrEnum):
    """What a job's item recorded by another start attempt is to a new attempt."""

    # Started, ended, asked to abort, or past its deadline: nothing for a page to start.
    SETTLED = "settled"
    # Claimed recently: that attempt may be starting it right now.
    HELD = "held"
    # Claimed long ago and never started: that attempt died between record and Copy Blob.
    ABANDONED = "abandoned"


# How long a start attempt holds the item it recorded (COPY_JOB_ITEM_CLAIM_SECONDS: this at
# most and by default). An attempt sends its Copy Blob within half of its claim or not at
# all (copy_ops.jobs.items), so an older claim without a copy id is an attempt that died,
# and a later delivery of its page takes the item over. Short enough to be over by the
# host's third or fourth delivery of a page (10 s apart), and well within IN_FLIGHT.
ITEM_CLAIM = timedelta(seconds=30)
# The shortest: a Copy Blob sent at the end of its window still has 5 s (the storage
# client's connection timeout) to reach storage before another attempt may take over.
SHORTEST_ITEM_CLAIM = timedelta(seconds=10)


def item_claim(op: Operation, now: datetime, claim: timedelta = ITEM_CLAIM) -> Claim:
    # An item whose attempt failed waits for its next attempt, which the sweep runs, not a batch.
    retrying = op.phase is Phase.RETRYING
    if op.is_final or op.started or retrying or op.abort_requested_at is not None or now >= op.terms.deadline:
        return Claim.SETTLED
    if now < lifecycle.claimed_at(op) + claim:
        return Claim.HELD
    return Claim.ABANDONED


def claimed(op: Operation, token: str, now: datetime) -> Operation:
    """``op`` taken over by the start attempt ``token``: its claim, and the sweep's check
    for a start that never came, moved on from now."""
    taken = dataclasses.replace(op, claim=ItemClaim(token, now))
    return dataclasses.replace(taken, next_check_at=min(op.terms.deadline, now + lifecycle.ITEM_START_GRACE))
