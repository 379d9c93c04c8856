"""The jobs' handlers, called as the host calls them (func.HttpRequest in), against
Azurite through the proxy: statuses, headers, problem+json naming fields, idempotency,
the report before and after the end; and the queue trigger carrying a job through."""

from __future__ import annotations

import json
from typing import Any

from azure.storage.queue import QueueClient

from copy_ops.edges import runtime
from copy_ops.edges.http_jobs import MAX_JOB_BODY_BYTES
from devkit import PendingCopyProxy
from devkit.app import payload, request
from tests.conftest import Blobs, Handlers
from tests.support.jobs import drain_through
from tests.support.requests import is_problem


def job_body(blobs: Blobs, **fields: Any) -> dict[str, Any]:
    return {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        **fields,
    }


def call(handlers: Handlers, name: str, method: str, route: str, body: Any = None, **kwargs: Any) -> Any:
    return handlers[name](request(method, route, body, **kwargs))


def test_a_job_from_post_to_report(handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    for name in ("in/a.bin", "in/b.bin"):
        blobs.put(blobs.src, name, b"xy")
    started = call(handlers, "start_job", "POST", "jobs", job_body(blobs), headers={"Idempotency-Key": "j-1"})
    assert started.status_code == 202, started.get_body()
    job = payload(started)
    assert started.headers["Location"] == f"/api/jobs/{job['id']}" and started.headers["Retry-After"] == "10"
    assert (job["state"], job["source"]["prefix"], job["report"]) == ("enumerating", "in/", None)
    replay = call(handlers, "start_job", "POST", "jobs", job_body(blobs), headers={"Idempotency-Key": "j-1"})
    assert replay.status_code == 200 and payload(replay)["id"] == job["id"]
    other = call(
        handlers, "start_job", "POST", "jobs", job_body(blobs, overwrite=True), headers={"Idempotency-Key": "j-1"}
    )
    assert is_problem(other, 409)["code"] == "IdempotencyKeyReused"

    route = {"id": job["id"]}
    early = call(handlers, "job_report", "GET", f"jobs/{job['id']}/report", route_params=route)
    assert is_problem(early, 409)["code"] == "JobNotFinished"

    queue = QueueClient.from_connection_string(proxy.connection_string, runtime.settings().work_queue)
    # The page, its batch, then the look the batch asked for (the last): the job ends with
    # its items, no sweep needed.
    assert drain_through(handlers["work"], queue) == 3
    done = payload(call(handlers, "get_job", "GET", f"jobs/{job['id']}", route_params=route))
    assert done["state"] == "succeeded" and done["counts"]["succeeded"] == 2, done
    assert done["report"] == f"/api/jobs/{job['id']}/report"
    report = call(handlers, "job_report", "GET", done["report"][5:], route_params=route)
    assert report.status_code == 200 and report.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in report.get_body().decode().splitlines()]
    assert sorted(line["destination"]["blob"] for line in lines) == ["out/a.bin", "out/b.bin"]
    # One part (a job of up to 5,000 items): no link to a next one; a part it has not is 404.
    assert done["report_parts"] == 1 and "Link" not in report.headers
    path = done["report"][5:]
    assert call(handlers, "job_report", "GET", path, route_params=route, params={"part": "0"}).get_body() == (
        report.get_body()
    )
    for missing in ("1", "9999999", "9" * 5000):
        assert is_problem(call(handlers, "job_report", "GET", path, route_params=route, params={"part": missing}), 404)
    for bad in ("-1", "x", "1e3", "²", "", " 1"):
        refused = is_problem(call(handlers, "job_report", "GET", path, route_params=route, params={"part": bad}), 400)
        assert [error["field"] for error in refused["errors"]] == ["part"], (bad, refused)
    odd = call(handlers, "job_report", "GET", path, route_params=route, params={"parts": "1"})
    assert [error["field"] for error in is_problem(odd, 400)["errors"]] == ["parts"]
    items = payload(
        call(handlers, "job_items", "GET", f"jobs/{job['id']}/items", route_params=route, params={"state": "succeeded"})
    )
    assert {item["job"] for item in items["items"]} == {job["id"]} and len(items["items"]) == 2
    listed = payload(call(handlers, "list_jobs", "GET", "jobs", params={"limit": "1"}))
    assert [item["id"] for item in listed["items"]] == [job["id"]]
    # An item is an ordinary operation.
    item_id = items["items"][0]["id"]
    one = call(handlers, "get_copy", "GET", f"copies/{item_id}", route_params={"id": item_id})
    assert one.status_code == 200 and payload(one)["job"] == job["id"]


def test_bad_job_requests_are_problems_naming_the_fields(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    bad = call(
        handlers,
        "start_job",
        "POST",
        "jobs",
        {"source": {"container": blobs.src}, "destination": {"container": blobs.src, "prefix": "x/"}, "z": 1},
    )
    assert {item["field"] for item in is_problem(bad, 400)["errors"]} == {"destination.prefix", "z"}
    raw = b'{"source": {"blobs": ["' + b"x" * MAX_JOB_BODY_BYTES + b'"]}}'
    assert {
        item["field"] for item in is_problem(call(handlers, "start_job", "POST", "jobs", raw=raw), 413)["errors"]
    } == {"body"}
    assert proxy.log.counts["put_message"] == 0 and proxy.queue_proxy is not None
    assert sum(proxy.queue_proxy.log.counts.values()) == 0


def test_unknown_jobs_and_bad_queries(handlers: Handlers) -> None:
    for job_id in ("nope", "8204449641235-961417d6", "8204449641235-961417d6-0123456789abcdef"):
        for name, route in (
            ("get_job", f"jobs/{job_id}"),
            ("abort_job", f"jobs/{job_id}/abort"),
            ("job_report", f"jobs/{job_id}/report"),
            ("job_items", f"jobs/{job_id}/items"),
        ):
            method = "POST" if name == "abort_job" else "GET"
            assert is_problem(call(handlers, name, method, route, route_params={"id": job_id}), 404)
    bad = call(handlers, "list_jobs", "GET", "jobs", params={"state": "failed", "limit": "0"})
    assert {item["field"] for item in is_problem(bad, 400)["errors"]} == {"state", "limit"}
