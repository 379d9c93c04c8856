"""How an operation is shown to callers: the API's JSON shape, no bookkeeping, no secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from copy_ops.jobs.model import Job
from copy_ops.model import Cleanup, Operation
from copy_ops.times import format_time


def _when(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def operation_view(op: Operation, destination_url: str | None) -> dict[str, Any]:
    return {
        "id": op.id,
        "state": op.state.value,
        "source": op.source,
        "destination": {**op.destination.as_dict(), "url": destination_url},
        "copy_id": op.copy_id,
        "deadline": _when(op.deadline),
        "created_at": _when(op.created_at),
        "updated_at": _when(op.updated_at),
        "finished_at": _when(op.finished_at),
        "progress": op.progress.as_dict() if op.progress else None,
        "on_abort": op.on_abort.value,
        "lease_source": op.lease_source,
        "metadata": op.metadata,
        "abort_reason": op.abort_reason.value if op.abort_reason else None,
        "error": op.error.as_dict() if op.error else None,
        # Cleanup that failed for now and that the sweep retries (e.g. a lease release).
        # (The event still owed is not cleanup the caller can see or wait for.)
        "cleanup_pending": [task.value for task in op.cleanup if task is not Cleanup.ANNOUNCE],
        # The job this operation is an item of, if any.
        "job": op.job,
    }


def job_view(job: Job) -> dict[str, Any]:
    source = job.source
    shown: dict[str, Any] = (
        {"url": source.url, "prefix": source.prefix} if source is not None else {"manifest": job.manifest_size}
    )
    enumeration = job.enumeration
    return {
        "id": job.id,
        "state": job.state.value,
        "source": shown,
        "destination": {"container": job.destination_container, "prefix": job.destination_prefix},
        "deadline": _when(job.deadline),
        "created_at": _when(job.created_at),
        "updated_at": _when(job.updated_at),
        "finished_at": _when(job.finished_at),
        "abort_requested_at": _when(job.abort_requested_at),
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
        "on_abort": job.on_abort.value,
        "overwrite": job.overwrite,
        "lease_source": job.lease_source,
        "metadata": job.metadata,
    }
