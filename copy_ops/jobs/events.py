"""The CloudEvent of a job's final state (:mod:`copy_ops.observability.events` builds them alike). Pure."""

from __future__ import annotations

from copy_ops.jobs.model import Job
from copy_ops.jobs.views import job_view
from copy_ops.observability.events import Event, event_of


def job_event(job: Job) -> Event:
    """``copyops.job.<state>`` for a job in its final state."""
    assert job.is_final, job.state
    when = job.finished_at or job.updated_at or job.created_at
    return event_of("job", "jobs", job.id, job.state.value, when=when, data=job_view(job))
