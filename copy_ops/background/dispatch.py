"""The work queue's messages, each done: what the queue trigger runs; and what the poison
queue's trigger does with a message the host gave up on.

Every message is checked first: one the app did not seal is
:class:`~copy_ops.core.errors.NotOurs`, before a byte of it is parsed, and counted; one
that is sealed but not a message of this version is
:class:`~copy_ops.core.errors.InvalidRequest`. The adapter logs either and drops it. One
that could not be done raises, so the host delivers it again and, after
``maxDequeueCount``, moves it to the poison queue. Whatever it carried stays
findable: due records stay due, a job's checkpoint stays where it was.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from copy_ops.app_service import AppService
from copy_ops.background.sweep import settle_batch
from copy_ops.copies.settle import Settled
from copy_ops.core.errors import NotOurs, StorageUnavailable
from copy_ops.work.messages import Abort, Batch, Check, Chunk, Page, ReportPart, Settle, Stage, decode


async def do_work(
    service: AppService, text: str, now: datetime, sent_at: datetime | None = None
) -> tuple[str, Counter[str]]:
    """Do one message; its kind and outcomes, counted. ``sent_at``: when it was put on the
    queue, if the trigger says (a job's message may arrive before its job's record)."""
    work = decode(await _ours(service, text, sent_at, now))
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
    if isinstance(work, Batch):
        return "batch", Counter([await service.jobs.batch(work, now)])
    if isinstance(work, Chunk):
        return "chunk", Counter([await service.jobs.chunk(work, now, sent_at)])
    if isinstance(work, ReportPart):
        return "report", Counter([await service.jobs.report_part(work, now)])
    if isinstance(work, Stage):
        return "stage", Counter([await service.copies.stage(work.op, work.blocks, work.sas, now)])
    assert isinstance(work, Check)
    return "check", Counter([await service.jobs.check(work.job, now, asked=True, item=work.item)])


async def do_poisoned(
    service: AppService, text: str, now: datetime, sent_at: datetime | None = None
) -> tuple[str, Counter[str]]:
    """A message the host gave up on (``<queue>-poison``). A batch's or a manifest chunk's
    items not recorded yet are recorded as failed (``not_started``), so the job ends and
    its report names them; every other kind left its work findable (due records stay due,
    a job's check sends its listing or report parts again), and is only logged."""
    work = decode(await _ours(service, text, sent_at, now))
    if isinstance(work, Batch | Chunk):
        return "poisoned", Counter([await service.jobs.poisoned(work, now)])
    return "poisoned", Counter(["left"])


async def _ours(service: AppService, text: str, sent_at: datetime | None, now: datetime) -> str:
    """``text``, if the app sealed it; else :class:`NotOurs`, counted by why."""
    try:
        await service.keys.check(text, sent_at, now)
    except NotOurs as refused:
        service.telemetry.work_refused(refused.code or "")
        raise
    return text
