"""Whether a job was stopped (aborted, ended) while its batches start items: asked before
each item starts, answered from one read of the job record a second, shared by every batch
of that job the instance runs, so that no item of an aborted job starts more than about a
second after its abort was answered, on any instance, however many batches are under way.

Cost: at most one read of the job record (Get Blob, a few KB) a second per instance running
the job's batches (docs/performance.md); a batch that ends within the second reads nothing
more than the read it starts with. A storage fault in that read stops nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from copy_ops.core.errors import CopyOpsError
from copy_ops.jobs.model import Job
from copy_ops.jobs.phases import DECIDED
from copy_ops.jobs.records import JobLedger

# Once this long has passed since the instance last read a job, the next of its items to
# start reads it again first.
RECHECK = timedelta(seconds=1)
# Reads one answer may take when each answers too late to vouch for the moment it is used:
# then the items go on (a storage this slow stops nothing, as a storage fault does not).
READS = 3
# Jobs whose last read an instance remembers, at most (a few run at once).
LOOKS_KEPT = 256


def stopped_for_good(job: Job) -> bool:
    """No more of the job's items start, whatever the clock says: it ended, its end is
    decided, or it was aborted (its deadline each item checks on its own clock)."""
    return job.phase in DECIDED or job.abort_requested_at is not None


@dataclass(frozen=True)
class _Read:
    """A read of a job record: begun at ``began`` (its reader's clock), and its answer."""

    began: datetime
    answer: asyncio.Future[bool]


class StopLooks:
    """Whether a job was stopped meanwhile, for every batch of it this instance runs. Once
    stopped, stopped for good.

    An item asking uses the last read of the job if it began less than RECHECK before (one
    under way is waited for), else reads it: so an item that starts relied on a read begun at
    most RECHECK before, and no item starts more than RECHECK after an abort was answered
    (the read would have seen it), however slow the reads or the loop."""

    def __init__(self, jobs: JobLedger) -> None:
        self._jobs = jobs
        self._reads: dict[str, _Read] = {}
        self._stopped: set[str] = set()

    def seen(self, job: Job, now: datetime) -> None:
        """The job as a batch read it, at ``now`` or later (it counts as the last read)."""
        if stopped_for_good(job):
            self._stopped.add(job.id)
        answer = asyncio.get_running_loop().create_future()
        answer.set_result(job.id in self._stopped)
        self._remember(job.id, _Read(now, answer))

    async def stopped(self, job_id: str, now: datetime) -> bool:
        """Whether job ``job_id`` was stopped, as a read begun at most RECHECK before the
        answer is given says: a read whose answer came late (a slow storage, a busy loop)
        vouches for nothing after RECHECK, so it is asked again (at most READS times)."""
        asked = time.monotonic()
        for _ in range(READS):
            began, stopped = await self._answer(job_id, now + timedelta(seconds=time.monotonic() - asked))
            if stopped or now + timedelta(seconds=time.monotonic() - asked) - began < RECHECK:
                return stopped
        return job_id in self._stopped

    async def _answer(self, job_id: str, now: datetime) -> tuple[datetime, bool]:
        """When the read that answers began, and its answer: the last one if it began less
        than RECHECK before ``now`` (one under way is waited for), else a new one."""
        if job_id in self._stopped:
            return now, True
        last = self._reads.get(job_id)
        if last is not None and abs(now - last.began) < RECHECK:
            if not last.answer.done():
                await asyncio.shield(last.answer)
            return last.began, last.answer.result() or job_id in self._stopped
        answer = asyncio.get_running_loop().create_future()
        self._remember(job_id, _Read(now, answer))
        try:
            stored = await self._jobs.read_or_none(job_id)
            if stored is None or stopped_for_good(stored.job):
                self._stopped.add(job_id)
        except CopyOpsError:
            pass  # not known: the items go on (a storage fault must not cut a batch)
        finally:
            answer.set_result(job_id in self._stopped)
        return now, job_id in self._stopped

    def _remember(self, job_id: str, read: _Read) -> None:
        if len(self._reads) >= LOOKS_KEPT:
            self._reads = {key: kept for key, kept in self._reads.items() if abs(read.began - kept.began) < RECHECK}
            self._stopped &= set(self._reads)
        self._reads[job_id] = read
