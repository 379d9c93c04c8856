"""How a job is shown to callers: the API's JSON shape, no bookkeeping, no secret."""

from __future__ import annotations

from typing import Any

from copy_ops.copies.views import when_shown
from copy_ops.jobs.model import Job
from copy_ops.jobs.progress import part_count


def job_view(job: Job) -> dict[str, Any]:
    source = job.source
    shown: dict[str, Any] = (
        {"url": source.url, "prefix": source.prefix} if source is not None else {"manifest": job.manifest_size}
    )
    enumeration = job.enumeration
    return {
        "id": job.id,
        "state": job.state.value,
        # Where it is in its machine (docs/machines/job.md), and its moves: when, to which
        # phase, on what, why.
        "phase": job.phase.value,
        "history": [move.as_dict() for move in job.history],
        # Whose it is, and its items' (null: no caller known, as for an operation).
        "caller": job.caller.as_dict() if job.caller is not None else None,
        "source": shown,
        "destination": {"container": job.destination_container, "prefix": job.destination_prefix},
        "deadline": when_shown(job.terms.deadline),
        "created_at": when_shown(job.created_at),
        "updated_at": when_shown(job.updated_at),
        "finished_at": when_shown(job.finished_at),
        "abort_requested_at": when_shown(job.abort_requested_at),
        "counts": job.counts.as_dict(),
        "enumeration": {
            "done": enumeration.done,
            "items": enumeration.items,
            "pages": enumeration.page if source is not None else len(enumeration.chunks_done),
            "stopped": enumeration.stopped,
        },
        # The first failures; the report names every item.
        "failures": [failure.as_dict() for failure in job.failures],
        "report": f"/api/jobs/{job.id}/report" if job.report is not None else None,
        # Every item ended, the final state decided, while the report's parts are written.
        "closing": job.closing.value if job.closing is not None else None,
        # Parts of the report, each served at ?part=N and linking the next: one up to 5,000 items.
        "report_parts": part_count(job.report_digits) if job.report is not None else None,
        "on_abort": job.terms.on_abort.value,
        "overwrite": job.terms.overwrite,
        "lease_source": job.terms.lease_source,
        "engine": job.terms.engine.value,
        "metadata": job.terms.metadata,
        # Its attempts per item, and a retry of the first job's failed items: the first
        # job's id; on the first job, its latest retry's (docs/jobs.md, "Retry a job's failures").
        "retry": {"attempts": job.terms.retry_attempts, "backoff_seconds": job.terms.retry_backoff_seconds},
        "retry_of": job.retry_of,
        "retried_by": job.retried_by,
    }
