"""Names legal in Azure but odd, or valid alone and not under a prefix, in jobs (issue 16):
whatever the source's names and the prefixes, a job ends, each listed item ends once,
and every listing route answers 200 afterwards. Through the app's own functions, on
Azurite through the proxy; source blobs put with raw requests, names exactly as given."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copy_ops.background.sweep import sweep
from copy_ops.edges import runtime
from devkit import PendingCopyProxy
from devkit.app import payload, request
from devkit.worker import run
from tests.conftest import Blobs, Handlers
from tests.support.jobs import drain_through
from tests.support.requests import is_problem


@pytest.fixture
def app(handlers: Handlers) -> Handlers:
    """The app's functions (with a ledger and a work queue of this test's own)."""
    return handlers


def call(app: Handlers, name: str, method: str, route: str, body: Any = None, **kwargs: Any) -> Any:
    return app[name](request(method, route, body, **kwargs))


def run_job(app: Handlers, proxy: PendingCopyProxy, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST the job, deliver its work, sweep past its first look: its status and view."""
    started = call(app, "start_job", "POST", "jobs", body)
    if started.status_code != 202:
        return started.status_code, payload(started)
    job = payload(started)
    queue = QueueClient.from_connection_string(proxy.connection_string, runtime.settings().work_queue)
    try:
        drain_through(app["work"], queue)
    finally:
        queue.close()
    run(sweep(runtime.built(), datetime.now(UTC) + timedelta(seconds=30)))
    return 202, payload(call(app, "get_job", "GET", f"jobs/{job['id']}", route_params={"id": job["id"]}))


def assert_every_listing_answers(app: Handlers, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every route that lists or shows the job's items answers 200: the items."""
    route = {"id": job["id"]}
    for params in ({}, {"state": "failed"}, {"state": "succeeded"}, {"limit": "1"}):
        listed = call(app, "list_copies", "GET", "copies", params=params)
        assert listed.status_code == 200, (params, listed.get_body())
        page = call(app, "job_items", "GET", f"jobs/{job['id']}/items", route_params=route, params=params)
        assert page.status_code == 200, (params, page.get_body())
    items: list[dict[str, Any]] = payload(
        call(app, "job_items", "GET", f"jobs/{job['id']}/items", route_params=route, params={"limit": "100"})
    )["items"]
    for item in items:
        one = call(app, "get_copy", "GET", f"copies/{item['id']}", route_params={"id": item["id"]})
        assert one.status_code == 200, one.get_body()
    report = call(app, "job_report", "GET", f"jobs/{job['id']}/report", route_params=route)
    assert report.status_code == 200, report.get_body()
    lines = [json.loads(line) for line in report.get_body().decode().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(item["id"] for item in items)
    return items


def test_a_name_empty_under_the_destination_prefix_is_a_failed_item(
    app: Handlers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    blobs.put(blobs.src, "solo", b"x")
    blobs.put(blobs.src, "solo.bin", b"y")
    status, job = run_job(
        app, proxy, {"source": {"container": blobs.src, "prefix": "solo"}, "destination": {"container": blobs.dst}}
    )
    assert status == 202 and job["state"] == "failed", job
    assert (job["counts"]["items"], job["counts"]["failed"], job["counts"]["succeeded"]) == (2, 1, 1), job
    items = assert_every_listing_answers(app, job)
    [failed] = [item for item in items if item["state"] == "failed"]
    assert failed["error"]["code"] == "unsafe_name" and failed["destination"]["url"] is None, failed
    assert blobs.read(blobs.dst, ".bin") == b"y"


def test_forged_continuations_are_refused_before_storage(app: Handlers, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "in/a.bin", b"x")
    blobs.put(blobs.src, "in/b.bin", b"x")
    body = {"source": {"container": blobs.src, "prefix": "in/"}, "destination": {"container": blobs.dst}}
    _, job = run_job(app, proxy, body)
    route = {"id": job["id"]}
    page = payload(call(app, "list_copies", "GET", "copies", params={"limit": "1"}))
    genuine = page["continuation"]
    assert genuine
    # A real token goes on, in its own listing.
    assert call(app, "list_copies", "GET", "copies", params={"limit": "1", "continuation": genuine}).status_code == 200
    forged = ["djE6AA", "djE6b3BzLzk5", "v2.AA.AA", genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"), "x"]
    before = proxy.log.counts.copy()
    for token in [*forged, genuine]:  # the genuine one belongs to another listing below
        for name, path, params in (
            ("list_jobs", "jobs", {}),
            ("job_items", f"jobs/{job['id']}/items", {}),
            ("job_items", f"jobs/{job['id']}/items", {"state": "succeeded"}),
            ("list_copies", "copies", {"state": "succeeded"}),
        ):
            answer = call(app, name, "GET", path, route_params=route, params={**params, "continuation": token})
            problem = is_problem(answer, 400)
            assert [error["field"] for error in problem["errors"]] == ["continuation"], problem
    for token in forged:
        answer = call(app, "list_copies", "GET", "copies", params={"continuation": token})
        assert is_problem(answer, 400)["errors"][0]["field"] == "continuation"
    spent = proxy.log.counts - before
    # Only the job's own record was read (for the items' 404 check); no listing was asked.
    assert set(spent) <= {"get_blob"}, spent


# -- property: any names, any prefixes ------------------------------------------------

segments = st.lists(
    st.sampled_from(["a", "b.c", ".", "..", "a.", "%2e", "%2e%2e", "%25", "\uff0e\uff0e", "?", ";", "x;y", "é", "-"]),
    min_size=0,
    max_size=4,
)
suffixes = st.tuples(segments, st.booleans()).map(lambda parts: "/".join(parts[0]) + ("/" if parts[1] else ""))
destination_prefixes = st.one_of(
    st.sampled_from(["", "out/", "o", "deep/er/", "x" * 1000, "q/" * 450]),
    st.text(alphabet="ab/.", max_size=6),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    names=st.lists(suffixes, min_size=1, max_size=4, unique=True),
    prefix=destination_prefixes,
    slash=st.booleans(),
)
def test_whatever_the_names_a_job_ends_and_every_listing_answers(
    app: Handlers, blobs: Blobs, proxy: PendingCopyProxy, names: list[str], prefix: str, slash: bool
) -> None:
    # Each example in a folder of its own. A source prefix without its slash lists a blob
    # named exactly like it, which leaves an empty name below it.
    folder = f"e{uuid.uuid4().hex[:6]}"
    source_prefix = folder + "/" if slash else folder
    created = set()
    for suffix in names:
        name = folder + suffix
        if len(name) > 1024 or name.endswith("/"):
            continue  # Azure keeps no blob by such a name (a folder marker is not ours to test)
        blobs.put_raw(blobs.src, name, b"z")
        if name.startswith(source_prefix):
            created.add(name)
    body = {
        "source": {"container": blobs.src, "prefix": source_prefix},
        "destination": {"container": blobs.dst, "prefix": prefix},
        "timeout_seconds": 600,
    }
    status, job = run_job(app, proxy, body)
    if status != 202:
        # Refused at the request (a prefix that leaves no room, say): nothing started.
        assert status == 400 and [error["field"] for error in job["errors"]] == ["destination.prefix"], job
        return
    assert job["state"] in ("succeeded", "failed"), job
    assert job["counts"]["items"] == len(created) and job["counts"]["pending"] == 0, (job, created)
    items = assert_every_listing_answers(app, job)
    assert len(items) == len(created)
    for item in items:
        assert item["state"] in ("succeeded", "failed")
        if item["state"] == "failed":
            assert item["error"]["code"] in ("unsafe_name", "start_refused"), item
