"""The work queue's messages, each done: what the queue trigger runs.

A message that is not ours is :class:`~copy_ops.core.errors.InvalidRequest` (the adapter
logs and drops it); one that could not be done raises, so the host delivers it again
and, after ``maxDequeueCount``, moves it to the poison queue. Whatever it carried stays
findable: due records stay due, a job's checkpoint stays where it was.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from copy_ops.background.sweep import settle_batch
from copy_ops.copies.settle import Settled
from copy_ops.core.errors import StorageUnavailable
from copy_ops.service import CopyService
from copy_ops.work.messages import Abort, Check, Chunk, Page, Settle, Stage, decode


async def do_work(
    service: CopyService, text: str, now: datetime, sent_at: datetime | None = None
) -> tuple[str, Counter[str]]:
    """Do one message; its kind and outcomes, counted. ``sent_at``: when it was put on the
    queue, if the trigger says (a job's message may arrive before its job's record)."""
    work = decode(text)
    if isinstance(work, Settle | Abort):
        kind = "settle" if isinstance(work, Settle) else "abort"
        if isinstance(work, Settle):
            outcomes = await settle_batch(service, work.ids, now)
        else:
            outcomes = await service.jobs.abort_batch(work, now)
        if outcomes[Settled.DEFERRED] + outcomes[Settled.ERROR] == len(work.ids):
            # Nothing of it could be done (storage away): the host retries the message
            # after its visibility timeout; the records stay due meanwhile.
            raise StorageUnavailable(f"none of the {len(work.ids)} operations could be done", code="BatchDeferred")
        return kind, outcomes
    if isinstance(work, Page):
        return "page", Counter([await service.jobs.page(work, now, sent_at)])
    if isinstance(work, Chunk):
        return "chunk", Counter([await service.jobs.chunk(work, now, sent_at)])
    if isinstance(work, Stage):
        return "stage", Counter([await service.copies.stage(work.op, work.blocks, work.sas, now)])
    assert isinstance(work, Check)
    return "check", Counter([await service.jobs.check(work.job, now, asked=True, item=work.item)])
