"""COPY_POLICY at the HTTP edge, on the memory storage watched call by call: a copy or a job
outside its caller's policy is a 403 problem+json naming the field and the rule, and nothing
of it reaches storage (no record, no idempotency claim, no listing, no message). The control:
the same caller inside its rule does reach storage, so "no call" is the refusal's doing.
Callers are the development kit's named ones, their principal as the platform passes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import azure.functions as func
import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.model import BlobRef
from copy_ops.edges import runtime
from copy_ops.jobs.ports import JobStorage
from devhost.auth import principal_headers
from devkit import DEV_ACCOUNT, DEV_KEY
from devkit.app import functions, load_function_app, payload, request
from devkit.issuer import CALLERS, LOCAL_POLICY
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage
from tests.support.requests import is_problem
from tests.support.watch import StorageWatch

# The storage the app would build: none is reachable there, the memory storage stands in.
NOWHERE = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT};QueueEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT}"
)
PARTNER = "http://127.0.0.1:1/partner"


class App:
    """The app's functions over one memory storage, watched, and its work queue."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, auth: str, policy: dict[str, Any] | None) -> None:
        monkeypatch.setenv("COPY_STORAGE", NOWHERE)
        monkeypatch.setenv("COPY_AUTH", auth)
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
        monkeypatch.setenv("COPY_POLICY", json.dumps(policy) if policy is not None else "")
        self.functions = functions(load_function_app())
        self.storage = MemoryStorage()
        self.storage.pending = False
        for name in ("drop/a.bin", "drop/b.bin", "secret.bin"):
            self.storage.put(BlobRef("incoming", name), b"data")
        self.watch = StorageWatch().wrap(cast(Any, self.storage))
        self.queue = MemoryQueue()
        service = AppService(runtime.settings(), cast(JobStorage, self.watch), self.queue)

        async def built() -> AppService:
            return service

        monkeypatch.setattr(runtime, "service", built)
        monkeypatch.setattr(runtime, "built", lambda: service)

    def post(self, route: str, body: Any, caller: str | None, key: str | None = None) -> func.HttpResponse:
        headers = principal_headers(CALLERS[caller].claims()) if caller else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        function = "start_copy" if route == "copies" else "start_job"
        response: func.HttpResponse = self.functions[function](request("POST", route, body, headers=headers))
        return response

    def untouched(self) -> bool:
        return not self.watch.calls and not self.queue.messages


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., App]]:
    yield lambda auth="entra", policy=LOCAL_POLICY: App(monkeypatch, auth, policy)
    run(runtime.reset())


def copy(source: Any, destination: str) -> dict[str, Any]:
    container, _, name = destination.partition("/")
    return {"source": source, "destination": {"container": container, "blob": name}}


def own(name: str) -> dict[str, str]:
    return {"container": "incoming", "blob": name}


def refused(response: func.HttpResponse) -> tuple[str | None, list[str]]:
    problem = is_problem(response, 403)
    return problem.get("code"), [item["field"] for item in problem["errors"]]


def test_a_copy_outside_reaches_no_storage_and_inside_it_does(app: Callable[..., App]) -> None:
    world = app()
    outside = world.post("copies", copy(own("drop/a.bin"), "backups/bob/a.bin"), "alice")
    assert refused(outside) == ("team-a", ["destination"])
    assert "outside what rule team-a let write" in payload(outside)["detail"]
    assert refused(world.post("copies", copy(own("drop/a.bin"), "backups/bob/a.bin"), "bob")) == ("team-b", ["source"])
    assert world.untouched(), world.watch.names()
    inside = world.post("copies", copy(own("drop/a.bin"), "backups/alice/a.bin"), "alice")
    assert inside.status_code == 201, inside.get_body()
    assert world.watch.calls and world.storage.blobs[BlobRef("backups", "alice/a.bin")].data == b"data"


def test_a_job_with_one_entry_outside_is_refused_whole_and_nothing_is_recorded_or_listed(
    app: Callable[..., App],
) -> None:
    world = app()
    blobs = [own("drop/a.bin"), own("secret.bin"), own("drop/b.bin")]
    destination = {"container": "backups", "prefix": "alice/"}
    one_outside = {"source": {"blobs": [*blobs, f"{PARTNER}/exports/c.bin"]}, "destination": destination}
    response = world.post("jobs", one_outside, "alice")
    assert refused(response) == ("team-a", ["source.blobs[3]"])
    assert "partner/exports/c.bin is outside what rule team-a let read" in payload(response)["detail"]
    # Bob may read the partner's exports, not into alice/: each entry outside said, in order.
    bobs = refused(world.post("jobs", one_outside, "bob"))
    assert bobs == ("team-b", ["source.blobs[0]", "source.blobs[1]", "source.blobs[2]", "destination"])
    prefix = {"source": {"container": "incoming", "prefix": "drop/"}, "destination": {"container": "backups"}}
    assert refused(world.post("jobs", prefix, "alice")) == ("team-a", ["destination"])
    assert world.untouched(), world.watch.names()
    # The control: the manifest less the entry outside is recorded and handed out.
    started = world.post("jobs", {"source": {"blobs": blobs}, "destination": destination}, "alice")
    assert started.status_code == 202, started.get_body()
    assert world.watch.calls and world.queue.messages


def test_a_refused_request_records_no_idempotency_key(app: Callable[..., App]) -> None:
    world = app()
    body = copy(own("secret.bin"), "backups/alice/secret.bin")
    assert refused(world.post("copies", body, "bob", key="k-1")) == ("team-b", ["source"])
    assert refused(world.post("copies", body, "bob", key="k-1")) == ("team-b", ["source"])  # no replay of a refusal
    assert world.untouched()
    # The key is free: another body under it starts a copy, neither replayed nor a conflict.
    first = world.post("copies", copy(own("secret.bin"), "backups/alice/s.bin"), "alice", key="k-1")
    assert first.status_code == 201, first.get_body()
    again = world.post("copies", copy(own("secret.bin"), "backups/alice/s.bin"), "alice", key="k-1")
    assert again.status_code == 200 and payload(again)["id"] == payload(first)["id"]


def test_the_hosts_and_the_apps_containers_are_refused_even_to_an_admin(app: Callable[..., App]) -> None:
    world = app(auth="both")  # carol signed in, and a key's holder
    for body, route, field in (
        (copy({"container": "azure-webjobs-hosts", "blob": "locks/x"}, "backups/x"), "copies", "source"),
        (copy(own("drop/a.bin"), "azure-webjobs-secrets/host.json"), "copies", "destination"),
        (copy(own("drop/a.bin"), "copy-ops-work/x"), "copies", "destination"),
        (
            {"source": {"container": "scm-releases"}, "destination": {"container": "backups", "prefix": "x/"}},
            "jobs",
            "source",
        ),
    ):
        for caller in ("carol", None):
            assert refused(world.post(route, body, caller)) == ("reserved", [field]), (body, caller)
    # The ledger is refused by the request's own checks already (403 naming its container).
    ledger = is_problem(world.post("copies", copy(own("drop/a.bin"), "copy-operations/x"), "carol"), 403)
    assert [item["field"] for item in ledger["errors"]] == ["destination.container"]
    assert world.untouched(), world.watch.names()


def test_with_no_policy_only_admins_copy_and_a_keys_holder_is_one(app: Callable[..., App]) -> None:
    world = app(auth="both", policy=None)
    response = world.post("copies", copy(own("drop/a.bin"), "backups/a.bin"), "alice")
    assert refused(response) == (None, ["source"])
    assert "only admins may copy" in payload(response)["detail"]
    assert world.untouched()
    assert world.post("copies", copy(own("drop/a.bin"), "backups/a.bin"), "carol").status_code == 201
    assert world.post("copies", copy(own("drop/b.bin"), "backups/b.bin"), None).status_code == 201  # a key's holder


def test_keys_mode_copies_as_before(app: Callable[..., App]) -> None:
    """A key's holder is an admin: with the policy or without, key mode starts what it did."""
    for policy in (None, LOCAL_POLICY):
        world = app(auth="keys", policy=policy)
        assert world.post("copies", copy(own("drop/a.bin"), "elsewhere/a.bin"), "alice").status_code == 201
        job = {"source": {"container": "incoming", "prefix": "drop/"}, "destination": {"container": "elsewhere"}}
        assert world.post("jobs", job, None).status_code == 202
