"""HTTP adapter of the jobs: requests in, responses out, as :mod:`copy_ops.edges.http` does for
single copies (whose input checks, problem+json and views it shares)."""

from __future__ import annotations

import azure.functions as func

from copy_ops.core.callers import Caller
from copy_ops.core.errors import FieldError, InvalidRequest
from copy_ops.edges import runtime
from copy_ops.edges.http import handled, idempotency_key, json_body, json_response, list_query, view
from copy_ops.jobs.model import Job
from copy_ops.jobs.permits import permit_job
from copy_ops.jobs.report import REPORT_TYPE
from copy_ops.jobs.request import parse_job_request
from copy_ops.jobs.rerun_request import parse_retry_request
from copy_ops.jobs.views import job_view

# A manifest of COPY_JOB_MANIFEST_MAX (at most 5,000) sources with long SAS URLs.
MAX_JOB_BODY_BYTES = 2 * 1024 * 1024
# A retry's few fields, a SAS among them.
MAX_RETRY_BODY_BYTES = 64 * 1024


def _job_response(status: int, job: Job) -> func.HttpResponse:
    headers = {"Location": f"/api/jobs/{job.id}"}
    if not job.is_final:
        headers["Retry-After"] = "10"
    return json_response(status, job_view(job), headers)


@handled
async def start_job(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    now = runtime.utc_now()
    request = parse_job_request(json_body(req, MAX_JOB_BODY_BYTES), runtime.settings(), now)
    permit_job(request, caller, runtime.settings())
    outcome = await (await runtime.service()).jobs.start(request, now, idempotency_key(req.headers), caller=caller)
    return _job_response(200 if outcome.replayed else 202, outcome.job)


@handled
async def get_job(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    jobs = (await runtime.service()).jobs
    return _job_response(200, await jobs.get(req.route_params.get("id", ""), runtime.utc_now(), caller=caller))


@handled
async def list_jobs(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    query = list_query(req.params, states=False)
    page = await (await runtime.service()).jobs.list(query.limit, query.continuation, caller=caller)
    return json_response(200, {"items": [job_view(job) for job in page.items], "continuation": page.continuation})


@handled
async def job_items(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    jobs = (await runtime.service()).jobs
    page = await jobs.items(req.route_params.get("id", ""), list_query(req.params), caller=caller)
    return json_response(200, {"items": [view(op) for op in page.items], "continuation": page.continuation})


@handled
async def abort_job(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    jobs = (await runtime.service()).jobs
    return _job_response(202, await jobs.abort(req.route_params.get("id", ""), runtime.utc_now(), caller=caller))


@handled
async def job_report(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    """The report, or part ``part`` of it (a job of more than 5,000 items has several): each
    part links the next (``Link: <...>; rel="next"``, RFC 8288), the last links none."""
    job_id = req.route_params.get("id", "")
    unknown = sorted(set(req.params) - {"part", "code"})
    if unknown:
        raise InvalidRequest.of(*(FieldError(name, "unknown query parameter") for name in unknown))
    text = req.params.get("part", "0")
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest.of(FieldError("part", "must be a whole number from 0, the part of the report"))
    # A whole number past the report's parts is a part that is not there: 404 (the service
    # says so; a number too long to be any report's part is cut short before int() reads it).
    page = await (await runtime.service()).jobs.report(job_id, int(text) if len(text) <= 9 else 10**9, caller=caller)
    headers = {"Link": f'</api/jobs/{job_id}/report?part={page.next}>; rel="next"'} if page.next is not None else {}
    return func.HttpResponse(page.lines, status_code=200, mimetype=REPORT_TYPE, headers=headers)


@handled
async def retry_job(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    """The job's failed items run again as a new job, linked to the first (docs/jobs.md)."""
    now, job_id = runtime.utc_now(), req.route_params.get("id", "")
    body = json_body(req, MAX_RETRY_BODY_BYTES) if req.get_body() else None  # none: every default
    ask = parse_retry_request(body, job_id, runtime.settings(), now)
    jobs = (await runtime.service()).jobs
    outcome = await jobs.reruns.retry(job_id, ask, now, idempotency_key(req.headers), caller=caller)
    return _job_response(200 if outcome.replayed else 202, outcome.job)
