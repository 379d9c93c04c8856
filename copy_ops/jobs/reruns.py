"""A job's failed items run again (``POST /api/jobs/{id}/retry``): a new manifest job of those
items' sources, to the same destinations, linked to the first (``retry_of``; on the first,
``retried_by``).

* Only an ended job with a failed item (or aborted, when asked) is retried (else 409); an
  item failed ``unsafe_name`` is not run again (a name copy-ops will never address).
* The failed items are found with the blob index (the job's items in state ``failed``), a page
  at a time, their records read at the sweep's concurrency: at most ``COPY_JOB_MANIFEST_MAX``
  of them, as a manifest's sources are (a job with more failed items: 409 ``TooManyFailed``,
  known from its final counts before anything is read). A manifest job's chunks carry them.
* The policy and the settings' allowed hosts and containers as they are now: a prefix job's
  retry first as that job was, before any item is read; then each item, as a manifest entry.
* A source the first job read with the caller's SAS (never kept) needs ``sas`` again (400
  naming ``sas`` without it, and with it when none does); it is tried once, as any such.
* Each item is a new operation (its id derived from the new job); it replaces exactly the
  first item's leftover on its destination (:func:`replacing_leftover`), never another's.
* While the first job's latest retry runs, another is 409 ``RetryRunning`` (but its replay).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Protocol

from copy_ops.aio.bounded import bounded_map
from copy_ops.aio.races import retried
from copy_ops.copies.engines import escalation_at
from copy_ops.copies.model import (
    BlobRef,
    CopyRequest,
    Engine,
    ErrorCode,
    ForeignBlob,
    ManifestEntry,
    Operation,
    State,
    Terms,
)
from copy_ops.copies.ports import BlobCopies
from copy_ops.copies.records import FIND_PAGE_SIZE, Ledger
from copy_ops.copies.retry import SAS_TRIED_ONCE
from copy_ops.copies.sources import too_far_for_minted_sas
from copy_ops.core.callers import KEY_CALLER, Caller
from copy_ops.core.errors import Conflict, CopyOpsError, FieldError, InvalidRequest, NotFound
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Job, JobOutcome, JobRequest, Listing
from copy_ops.jobs.permits import permit_job
from copy_ops.jobs.progress import item_id
from copy_ops.jobs.records import JobLedger
from copy_ops.jobs.rerun_request import RetryAsk, check_items_now

logger = logging.getLogger(__name__)

# How many times the first job's link to its retry is written again after losing a race.
LINK_ATTEMPTS = 5
LINEAGE_KEPT = 50  # the jobs of a line of retries a retry names (the latest)


class Start(Protocol):
    """How a job is started (copy_ops.jobs.job_service.JobService.start)."""

    async def __call__(
        self, request: JobRequest, now: datetime, idempotency_key: str | None = None, *, caller: Caller = KEY_CALLER
    ) -> JobOutcome: ...


class Reruns:
    def __init__(self, jobs: JobLedger, ledger: Ledger, settings: Settings, start: Start) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._settings = settings
        self._start = start

    async def retry(
        self, job_id: str, ask: RetryAsk, now: datetime, key: str | None = None, *, caller: Caller = KEY_CALLER
    ) -> JobOutcome:
        """The failed items run again as a new job (``key``: its Idempotency-Key), linked."""
        first = (await self._jobs.read(job_id, caller)).job
        if first.source is not None:  # as that job was: refused before any of its items is read
            permit_job(_prefix_request(first), caller, self._settings)
        await self._not_retrying(first, ask, key)
        request = await self.request(first, ask, now)
        permit_job(request, caller, self._settings)  # the policy as it is now, item by item
        outcome = await self._start(request, now, key, caller=caller)
        if not outcome.replayed:
            await self.link(job_id, outcome.job.id, now)
        return outcome

    async def request(self, first: Job, ask: RetryAsk, now: datetime) -> JobRequest:
        """The new job's request: the first job's failed items, its destination and terms,
        the new deadline and retry. :class:`Conflict` (409) or :class:`InvalidRequest` (400)."""
        if not first.is_final:
            raise Conflict(f"job {first.id} is still running: retry its failed items once it ended", code="JobRunning")
        states = (State.FAILED, State.ABORTED) if ask.include_aborted else (State.FAILED,)
        most = self._settings.job_manifest_max
        counted = sum(first.counts.of(state) for state in states)
        if counted > most:
            raise Conflict(
                f"job {first.id} has {counted} items to retry, more than one job takes (COPY_JOB_MANIFEST_MAX, {most})",
                code="TooManyFailed",
            )
        # A prefix job's terms and SAS are known from its record: checked before any item is read.
        prefix = first.source
        terms = None if prefix is None else self._checked(first, ask, now, prefix.needs_sas, foreign=False)
        found = [op for state in states for op in await self._items(first.id, state, most)]
        ops = [op for op in found if op.error is None or op.error.code is not ErrorCode.UNSAFE_NAME]
        if not ops:
            # Counted, but not found: the lifecycle rule deleted the records (by age).
            gone = f": its items' records are gone (deleted by age; {counted} counted)" if counted and not found else ""
            raise Conflict(f"job {first.id} has nothing failed to retry{gone}", code="NothingFailed")
        if terms is None:
            needs_sas, foreign = any(op.source_sas for op in ops), any(op.source_foreign for op in ops)
            terms = self._checked(first, ask, now, needs_sas, foreign=foreign)
        manifest = tuple(_entry(first, op, ask.sas) for op in ops)
        check_items_now(manifest, first.destination_container, self._settings)
        return JobRequest(
            source=None,
            manifest=manifest,
            sas=None,
            destination_container=first.destination_container,
            destination_prefix=first.destination_prefix,
            terms=terms,
            fingerprint=ask.fingerprint,
            lineage=(*first.lineage, first.id)[-LINEAGE_KEPT:],
        )

    async def _not_retrying(self, first: Job, ask: RetryAsk, key: str | None) -> None:
        """409 ``RetryRunning`` while the first job's latest retry runs (a second would run the same
        items to the same destinations beside it); a key with its body goes on, as its replay."""
        latest = None if first.retried_by is None else await self._jobs.read_or_none(first.retried_by)
        if latest is None or latest.job.is_final or (key is not None and latest.job.fingerprint == ask.fingerprint):
            return
        raise Conflict(
            f"job {first.id} is being retried by job {latest.job.id}: once it ended, retry that job's failures",
            code="RetryRunning",
        )

    async def link(self, first_id: str, retry_id: str, now: datetime) -> None:
        """The first job names its latest retry (shown, never relied on: a lost race is logged)."""

        async def attempt() -> None:
            stored = await self._jobs.read(first_id)
            if stored.job.retried_by != retry_id:
                await self._jobs.save(dataclasses.replace(stored.job, retried_by=retry_id), stored.etag, now)

        try:
            await retried(attempt, LINK_ATTEMPTS, "")
        except CopyOpsError as exc:
            # The new job stands either way (it names the first): only the first's view lacks it.
            logger.warning("job_retry_unlinked job=%s retry=%s error=%s", first_id, retry_id, exc.kind)

    def _checked(self, first: Job, ask: RetryAsk, now: datetime, needs_sas: bool, *, foreign: bool) -> Terms:
        """The new job's terms, once ``sas`` is given exactly when a source needs it (given
        for none: a secret sent for nothing, and a caller led to think it is used)."""
        if needs_sas and ask.sas is None:
            raise InvalidRequest.of(
                FieldError("sas", "is required: the job read its sources with a SAS, which copy-ops does not keep")
            )
        if not needs_sas and ask.sas is not None:
            raise InvalidRequest.of(FieldError("sas", "is not wanted: the job read none of the sources with a SAS"))
        return self._terms(first, ask, now, tried_once=needs_sas, foreign=foreign)

    def _terms(self, first: Job, ask: RetryAsk, now: datetime, *, tried_once: bool, foreign: bool) -> Terms:
        terms = first.terms
        problems: list[FieldError] = []
        if tried_once and ask.attempts_asked and ask.retry is not None and ask.retry[0] > 1:
            problems.append(FieldError("retry.attempts", SAS_TRIED_ONCE))
        minted = foreign or (first.source is not None and first.source.listing is Listing.IDENTITY)
        beyond = too_far_for_minted_sas(ask.deadline, now) if minted and terms.engine is not Engine.BLOCKS else None
        if beyond is not None:
            problems.append(FieldError("deadline", beyond))
        if problems:
            raise InvalidRequest.of(*problems)
        # Each field of retry not named is the first job's (not the settings', as for a new copy).
        attempts = ask.retry[0] if ask.retry is not None and ask.attempts_asked else terms.retry_attempts
        backoff = ask.retry[1] if ask.retry is not None and ask.backoff_asked else terms.retry_backoff_seconds
        auto = terms.engine is Engine.AUTO
        escalate_at = escalation_at(now, ask.deadline, self._settings.escalate_at) if auto else None
        return dataclasses.replace(
            terms,
            deadline=ask.deadline,
            escalate_at=escalate_at,
            retry_attempts=1 if tried_once else attempts,
            retry_backoff_seconds=backoff,
        )

    async def _items(self, job_id: str, state: State, most: int) -> list[Operation]:
        """The job's items in ``state``, by the index, a page at a time; at most ``most``."""
        found: list[Operation] = []
        continuation: str | None = None
        while True:
            ids, continuation = await self._jobs.items_page(job_id, state, FIND_PAGE_SIZE, continuation)
            read = await bounded_map(self._read, ids, self._settings.sweep_concurrency)
            found += [op for op in read if op is not None and op.state is state]
            if len(found) > most:
                raise Conflict(
                    f"job {job_id} has more than {most} items to retry (COPY_JOB_MANIFEST_MAX)", code="TooManyFailed"
                )
            if continuation is None:
                return found

    async def _read(self, operation_id: str) -> Operation | None:
        try:
            return await self._ledger.get(operation_id)
        except NotFound:
            return None


async def replacing_leftover(copies: BlobCopies, request: CopyRequest, lineage: tuple[str, ...]) -> CopyRequest:
    """An item of a job's retry, its request asked to replace the first job's item's leftover
    on its destination (an async copy's failed blob, kept by ``on_abort: keep``), by its ETag:
    only a blob whose owner metadata names the item of the same destination of a job in its
    ``lineage`` (the first job, or a job it retried in turn: each has ended, its item there
    failed or aborted, so nothing of it writes there any more). Anything else there is left
    to the terms (``overwrite: false``: refused, as for any item). One read per item."""
    seen = await copies.observe_copy(request.destination)
    name = request.destination.blob
    if seen is None or seen.etag is None or seen.owner not in {item_id(job, name) for job in lineage}:
        return request
    logger.info("job_item_replaces_leftover destination=%s owner=%s", request.destination.blob, seen.owner)
    return dataclasses.replace(request, replace_etag=seen.etag)


def _prefix_request(first: Job) -> JobRequest:
    """The first job's request as the policy saw it: its source prefix, to its destination."""
    return JobRequest(
        source=first.source,
        manifest=(),
        sas=None,
        destination_container=first.destination_container,
        destination_prefix=first.destination_prefix,
        terms=first.terms,
        fingerprint=first.fingerprint,
    )


def _entry(first: Job, op: Operation, sas: str | None) -> ManifestEntry:
    """The failed item as a manifest entry: its source as the first job read it (a caller's
    URL with the SAS given now), landing at its destination (below the first job's prefix)."""
    source: str | BlobRef | ForeignBlob
    if op.source_blob is not None:
        source = op.source_blob
    elif op.source_foreign is not None:
        source = op.source_foreign
    else:
        source = f"{op.source}?{sas}" if op.source_sas and sas else op.source
    return ManifestEntry(source, op.destination.blob[len(first.destination_prefix) :])
