"""``POST /api/jobs/{id}/retry`` called as the host calls it, against Azurite through the proxy:
a job of a partner's blobs read with the caller's SAS, one item failed by Azure (its failed
blob left on the destination), retried as a new job over that blob with the SAS given again;
the statuses, problem+json naming fields, the Idempotency-Key, and the 409s."""

from __future__ import annotations

from typing import Any

from azure.storage.queue import QueueClient

from copy_ops.edges import runtime
from devkit import PendingCopyProxy
from devkit.app import payload, request
from tests.conftest import Blobs, Handlers
from tests.support.jobs import drain_through
from tests.support.partner import Partner
from tests.support.requests import is_problem


def call(handlers: Handlers, name: str, method: str, route: str, body: Any = None, **kwargs: Any) -> Any:
    return handlers[name](request(method, route, body, **kwargs))


def retry(handlers: Handlers, job_id: str, body: Any = None, **kwargs: Any) -> Any:
    return call(handlers, "retry_job", "POST", f"jobs/{job_id}/retry", body, route_params={"id": job_id}, **kwargs)


def settle_items(handlers: Handlers, job_id: str) -> None:
    """Each item read once (a read records what it sees of a pending copy: its end)."""
    page = payload(call(handlers, "job_items", "GET", f"jobs/{job_id}/items", route_params={"id": job_id}))
    for item in page["items"]:
        call(handlers, "get_copy", "GET", f"copies/{item['id']}", route_params={"id": item["id"]})


def get_job(handlers: Handlers, job_id: str) -> dict[str, Any]:
    view: dict[str, Any] = payload(call(handlers, "get_job", "GET", f"jobs/{job_id}", route_params={"id": job_id}))
    return view


def test_a_jobs_failed_item_is_retried_as_a_new_job_over_its_failed_blob(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, partner: Partner
) -> None:
    for name in ("in/a.bin", "in/b.bin"):
        partner.put(name, b"xy" * 50)
    proxy.pending_copies = True  # copies from another account stay pending, as on Azure
    dst = {"container": blobs.dst, "prefix": "out/"}
    body = {"source": partner.listing("in/"), "destination": dst, "engine": "async"}  # Copy Blob: pending
    first = payload(call(handlers, "start_job", "POST", "jobs", body))
    queue = QueueClient.from_connection_string(proxy.connection_string, runtime.settings().work_queue)
    drain_through(handlers["work"], queue)
    assert is_problem(retry(handlers, first["id"]), 409)["code"] == "JobRunning", get_job(handlers, first["id"])

    proxy.fail(blobs.dst, "out/a.bin")  # Azure ends it failed: the failed blob stays
    proxy.finish(blobs.dst, "out/b.bin")
    settle_items(handlers, first["id"])
    drain_through(handlers["work"], queue)
    ended = get_job(handlers, first["id"])
    assert (ended["state"], ended["counts"]["failed"], ended["counts"]["retried"]) == ("failed", 1, 0), ended
    assert blobs.exists(blobs.dst, "out/a.bin")  # our leftover (on_abort: keep)

    # Bad input names its field; the SAS the first job read with is needed again.
    assert [e["field"] for e in is_problem(retry(handlers, first["id"], []), 400)["errors"]] == ["body"]
    unknown = is_problem(retry(handlers, first["id"], {"timeout": 60, "retry": {"attempts": 0}}), 400)
    assert {e["field"] for e in unknown["errors"]} == {"timeout", "retry.attempts"}
    assert [e["field"] for e in is_problem(retry(handlers, first["id"], {}), 400)["errors"]] == ["sas"]
    assert is_problem(retry(handlers, "8203450000000-0a0a0a0a", {"sas": partner.sas}), 404)

    asked = {"timeout_seconds": 900, "sas": partner.sas}
    started = retry(handlers, first["id"], asked, headers={"Idempotency-Key": "again-1"})
    assert started.status_code == 202, started.get_body()
    second = payload(started)
    assert started.headers["Location"] == f"/api/jobs/{second['id']}"
    assert (second["retry_of"], second["source"], second["retry"]["attempts"]) == (first["id"], {"manifest": 1}, 1)
    replay = retry(handlers, first["id"], asked, headers={"Idempotency-Key": "again-1"})
    assert replay.status_code == 200 and payload(replay)["id"] == second["id"]
    assert get_job(handlers, first["id"])["retried_by"] == second["id"]

    drain_through(handlers["work"], queue)
    # Its item started over the failed blob (overwrite is false): not refused as existing.
    proxy.finish(blobs.dst, "out/a.bin")
    settle_items(handlers, second["id"])
    drain_through(handlers["work"], queue)
    done = get_job(handlers, second["id"])
    assert (done["state"], done["counts"]["succeeded"]) == ("succeeded", 1), done
    assert blobs.read(blobs.dst, "out/a.bin") == b"xy" * 50
    assert is_problem(retry(handlers, second["id"], {"sas": partner.sas}), 409)["code"] == "NothingFailed"
