"""Ownership over HTTP, through the development host with real signed tokens (it plays App
Service Authentication, COPY_AUTH=entra) under a policy that lets both copy into one
container (the test's own): alice's copies and jobs are hers; bob cannot read,
list, abort them, nor their items or report, and is answered 404 exactly as for an id that
names nothing; carol, an admin, sees every one; a caller's list in one state costs its page.
The service's rules on the in-memory fakes: tests/test_ownership.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devkit import PendingCopyProxy, Reply
from devkit.issuer import CALLERS, LocalIssuer
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.support.jobs import job_body
from tests.support.partner import Partner
from tests.support.queues import FAST_QUEUES
from tests.support.requests import copy_body
from tests.support.waiting import until

pytestmark = pytest.mark.system

AUDIENCE = "api://copy-ops-tests"
# Where the callers' copies land (the policy names a container, a module's host outlives a
# test's): each test writes under a prefix of its own.
INTO = f"owned-{uuid.uuid4().hex[:10]}"
# Alice and bob (Copies.Start) may copy any blob of the app's account or the partner's into it.
POLICY = {
    "rules": [
        {
            "name": "starters",
            "role": "Copies.Start",
            "read": [{}, {"account": "partner"}],
            "write": [{"container": INTO}],
        }
    ]
}
ALICE, BOB, CAROL = (CALLERS[name].object_id for name in ("alice", "bob", "carol"))


class Callers:
    """The host, and each named caller's requests to it with a token of its own."""

    def __init__(self, host: DevHostProcess, issuer: LocalIssuer) -> None:
        self.host = host
        self.tokens = {name: issuer.token(name, AUDIENCE) for name in CALLERS}

    def call(self, who: str, method: str, path: str, body: Any = None) -> Reply:
        return self.host.call(method, path, body, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def ok(self, who: str, method: str, path: str, body: Any = None) -> Any:
        reply = self.call(who, method, path, body)
        assert reply.status in (200, 201, 202), (who, path, reply.status, reply.body)
        return reply.json()

    def ids(self, who: str, path: str) -> list[str]:
        return [item["id"] for item in self.ok(who, "GET", path)["items"]]


@pytest.fixture(scope="module")
def callers(_proxy: PendingCopyProxy) -> Iterator[Callers]:
    _proxy.direct.create_container(INTO)
    with LocalIssuer() as issuer:
        host = DevHostProcess(
            env={
                "COPY_STORAGE": _proxy.connection_string,
                "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
                "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
                "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
                "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
                "COPY_AUTH": "entra",
                "COPY_POLICY": json.dumps(POLICY),
                "DEVHOST_AUTH_ISSUER": issuer.url,
                "DEVHOST_AUTH_AUDIENCE": AUDIENCE,
            },
            host_json=FAST_QUEUES,
        )
        try:
            yield Callers(host, issuer)
        finally:
            host.stop()


def not_found(reply: Reply, record_id: str) -> dict[str, Any]:
    """A 404 problem, with the id it names put aside: what an unknown id is answered."""
    assert reply.status == 404, reply.body
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem: dict[str, Any] = json.loads(reply.body.decode().replace(record_id, "ID"))
    return problem


def into(name: str) -> dict[str, str]:
    """A destination of the test's own (its blob names are unique to it)."""
    return {"container": INTO, "blob": f"{uuid.uuid4().hex[:10]}/{name}"}


def from_partner(partner: Partner, name: str) -> dict[str, Any]:
    """A copy of the partner's blob ``name`` on Copy Blob (pending while the proxy holds
    copies from another account) to a destination of the test's own."""
    return {**partner.body(INTO, name, engine="async"), "destination": into(name)}


def unknown_like(record_id: str) -> str:
    return record_id[:-8] + ("0" * 8 if not record_id.endswith("0" * 8) else "1" * 8)


def test_alices_copy_and_job_are_hers_bob_finds_nothing_and_carol_sees_all(callers: Callers, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"data")
    for index in range(3):
        blobs.put(blobs.src, f"in/{index}.bin", b"x")
    copy = callers.ok("alice", "POST", "/api/copies", {**copy_body(blobs.src, INTO), "destination": into("a.bin")})
    assert copy["state"] == "succeeded"
    assert copy["caller"] == {"id": ALICE, "name": "Alice"}
    assert [(move["event"], move.get("by")) for move in copy["history"]] == [("started", ALICE), ("finished", None)]
    destination = {"container": INTO, "prefix": f"{uuid.uuid4().hex[:10]}/"}
    job = callers.ok("alice", "POST", "/api/jobs", job_body(blobs, engine="async", destination=destination))
    assert job["caller"] == {"id": ALICE, "name": "Alice"}
    job_path = f"/api/jobs/{job['id']}"

    def finished() -> bool:
        return bool(callers.ok("alice", "GET", job_path)["state"] == "succeeded")

    assert until(finished, 30), callers.ok("alice", "GET", job_path)
    items = callers.ids("alice", f"{job_path}/items")
    assert len(items) == 3
    assert callers.call("alice", "GET", f"{job_path}/report").status == 200

    # Bob: every one of alice's ids answers as an id that names nothing.
    copy_path = f"/api/copies/{copy['id']}"
    unknown_copy = not_found(
        callers.call("bob", "GET", f"/api/copies/{unknown_like(copy['id'])}"), unknown_like(copy["id"])
    )
    assert not_found(callers.call("bob", "GET", copy_path), copy["id"]) == unknown_copy
    assert not_found(callers.call("bob", "POST", f"{copy_path}/abort"), copy["id"]) == unknown_copy
    for item in items:
        assert not_found(callers.call("bob", "GET", f"/api/copies/{item}"), item) == not_found(
            callers.call("bob", "GET", f"/api/copies/{unknown_like(item)}"), unknown_like(item)
        )
    unknown_job = not_found(callers.call("bob", "GET", f"/api/jobs/{unknown_like(job['id'])}"), unknown_like(job["id"]))
    for method, path in (
        ("GET", job_path),
        ("GET", f"{job_path}/items"),
        ("GET", f"{job_path}/items?state=succeeded"),
        ("GET", f"{job_path}/report"),
        ("POST", f"{job_path}/abort"),
    ):
        assert not_found(callers.call("bob", method, path), job["id"]) == unknown_job, path
    for path in ("/api/copies", "/api/copies?state=succeeded", "/api/jobs"):
        assert callers.ids("bob", path) == [], path

    # Alice lists her own; carol, an admin, every one.
    mine = {copy["id"], *items}
    for who in ("alice", "carol"):
        assert set(callers.ids(who, "/api/copies")) >= mine, who
        assert set(callers.ids(who, "/api/copies?state=succeeded")) >= mine, who
        assert job["id"] in callers.ids(who, "/api/jobs"), who
        assert callers.ok(who, "GET", copy_path)["caller"]["id"] == ALICE
        assert callers.call(who, "GET", f"{job_path}/report").status == 200


def test_only_its_caller_or_an_admin_aborts_a_pending_copy_and_the_history_says_who(
    callers: Callers, blobs: Blobs, partner: Partner
) -> None:
    partner.put("p.bin", b"x")
    partner.proxy.pending_copies = True
    copy = callers.ok("alice", "POST", "/api/copies", from_partner(partner, "p.bin"))
    assert copy["state"] == "pending"
    path = f"/api/copies/{copy['id']}"
    assert callers.call("bob", "POST", f"{path}/abort").status == 404
    assert callers.ok("alice", "GET", path)["state"] == "pending"  # bob's abort asked for nothing
    aborted = callers.ok("carol", "POST", f"{path}/abort")
    assert aborted["state"] == "aborted" and aborted["caller"]["id"] == ALICE
    moves = [(move["event"], move.get("by")) for move in aborted["history"]]
    assert moves == [("started", ALICE), ("abort_requested", CAROL), ("finished", None)]


def test_a_callers_page_in_one_state_costs_its_page_not_what_others_hold(
    callers: Callers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    proxy.pending_copies = True
    mine = []
    for index in range(3):
        partner.put(f"a{index}.bin", b"x")
        mine.append(callers.ok("alice", "POST", "/api/copies", from_partner(partner, f"a{index}.bin")))
    # Bob's copies, pending too and newer: the first a listing by state alone would name.
    partner.put("b.bin", b"x")
    for _ in range(30):
        callers.ok("bob", "POST", "/api/copies", from_partner(partner, "b.bin"))
    newest = sorted(op["id"] for op in mine)
    callers.ids("alice", "/api/copies?limit=1")  # the continuation tokens' key, read once per process
    before = proxy.log.counts.copy()
    page = callers.ok("alice", "GET", "/api/copies?state=pending&limit=2")
    spent = proxy.log.counts - before
    # One tag query and the page's two records: nothing of bob's thirty is read.
    assert (spent["find_by_tags"], spent["get_blob"]) == (1, 2), spent
    assert [op["id"] for op in page["items"]] == newest[:2] and page["continuation"]
    rest = callers.ok("alice", "GET", f"/api/copies?state=pending&limit=2&continuation={page['continuation']}")
    assert [op["id"] for op in rest["items"]] == newest[2:] and rest["continuation"] is None
    assert len(callers.ids("bob", "/api/copies?state=pending")) == 30
