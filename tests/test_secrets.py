"""No secret leaves the process (invariant 6), whatever credential the app holds.

One run touches every path that produces output: starts from the app's own account
and from SAS-bearing URLs, an Idempotency-Key (a claim blob), refusals by validation
and by storage, a read, a list, a requested abort, a deadline abort by the sweep, a
lease. Then every response (body and headers), every blob in the ledger container
(records and claims, with their tags) and every log line at DEBUG, the SDK's included,
is searched for every secret the run used."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import azure.functions as func
import pytest
from azure.storage.blob import generate_blob_sas
from azure.storage.queue import QueueClient

from copy_ops.background.sweep import sweep
from copy_ops.copies import blocks
from copy_ops.edges import runtime
from devkit import DEV_ACCOUNT, DEV_KEY, PendingCopyProxy
from devkit.app import payload, request
from devkit.worker import run
from tests.conftest import Blobs, Handlers, credential_connection_string
from tests.support.jobs import drain_through
from tests.support.partner import Partner
from tests.support.requests import copy_body


def blob_sas(container: str, blob: str) -> str:
    return generate_blob_sas(
        DEV_ACCOUNT, container, blob, account_key=DEV_KEY, permission="r", expiry=datetime.now(UTC) + timedelta(hours=1)
    )


def secrets_of(connection: str, *sas_tokens: str) -> set[str]:
    """Every form in which the run's secrets could leak."""
    found = {DEV_KEY, "AccountKey=", "SharedAccessSignature=", "PASSWORD", "user:PASSWORD@", connection}
    for token in sas_tokens:
        for signature in parse_qs(token).get("sig", []):
            found |= {signature, quote(signature, safe=""), quote(signature)}
    return {item for item in found if item}


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    azure = logging.getLogger("azure")
    level = azure.level
    azure.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        yield caplog
    azure.setLevel(level)


def test_no_secret_in_any_response_record_claim_or_log(
    handlers_by_credential: Handlers,
    credential: str,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    everything_logged: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers = handlers_by_credential
    connection = credential_connection_string(credential, proxy)
    for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
        blobs.put(blobs.src, name, b"x" * 100)
    for name in ("b.bin", "d.bin"):  # another account's: a copy from there stays pending
        partner.put(name, b"x" * 100)
    sas_b, sas_d = blob_sas(blobs.src, "b.bin"), blob_sas(blobs.src, "d.bin")
    base = f"http://127.0.0.1:{proxy.port}/{DEV_ACCOUNT}/{blobs.src}"
    responses: list[func.HttpResponse] = []

    def call(name: str, method: str, route: str, body: object = None, **kwargs: object) -> func.HttpResponse:
        response: func.HttpResponse = handlers[name](request(method, route, body, **kwargs))  # type: ignore[arg-type]
        responses.append(response)
        return response

    def start_from(source: str, dest_name: str, **fields: Any) -> int:
        body = {**copy_body(blobs.src, blobs.dst, dest_name, **fields), "source": source}
        return int(call("start_copy", "POST", "copies", body).status_code)

    # Finishes at once, from the app's own account, with an idempotency claim.
    own = call("start_copy", "POST", "copies", copy_body(blobs.src, blobs.dst), headers={"Idempotency-Key": "k-1"})
    assert own.status_code == 201
    call("start_copy", "POST", "copies", copy_body(blobs.src, blobs.dst), headers={"Idempotency-Key": "k-1"})
    # With a lease on the source.
    call("start_copy", "POST", "copies", copy_body(blobs.src, blobs.dst, "c.bin", lease_source=True))
    # Pending, from a SAS-bearing URL of another account (on Copy Blob: auto would take
    # the block engine for it); read, listed, aborted on request.
    proxy.pending_copies = True
    assert start_from(partner.url("b.bin"), "b.bin", engine="async") == 202
    pending = responses[-1]
    op_id = payload(pending)["id"]
    call("get_copy", "GET", f"copies/{op_id}", route_params={"id": op_id})
    call("list_copies", "GET", "copies")
    call("abort_copy", "POST", f"copies/{op_id}/abort", route_params={"id": op_id})
    # Pending past its deadline: the sweep aborts it.
    assert start_from(partner.url("d.bin"), "d.bin", timeout_seconds=5, engine="async") == 202
    summary = run(sweep(runtime.built(), datetime.now(UTC) + timedelta(seconds=60)))
    assert summary.outcomes["aborted"] == 1
    # Refused by storage: a tampered SAS, a missing source behind a SAS.
    assert start_from(f"{base}/b.bin?{sas_b}A", "e.bin") in (403, 404)
    assert start_from(f"{base}/missing.bin?{sas_b}", "f.bin") in (403, 404)
    # Refused by validation: user info, a SAS on a host that is not allowed.
    assert start_from(f"http://user:PASSWORD@127.0.0.1:{proxy.port}/{DEV_ACCOUNT}/{blobs.src}/a.bin", "g.bin") == 400
    assert start_from(f"https://partner.example.net/c/b.bin?{sas_b}", "h.bin") == 403

    # Jobs: a prefix by a URL with a container SAS (the app's own account: listed with its
    # own credential), one in an account storage does not know (its listing refused, the
    # reason recorded), and a manifest of SAS URLs; their work done by the queue trigger.
    sas_c = blobs.container_sas(blobs.src)
    jobs = [
        {"url": f"{base}/?{sas_c}"},
        {"url": f"http://127.0.0.1:{proxy.port}/nosuchacct/{blobs.src}/?{sas_c}"},
        {"blobs": [f"{base}/b.bin?{sas_b}", f"{base}/missing.bin?{sas_d}"]},
    ]
    job_ids = []
    for index, source in enumerate(jobs):
        job_body = {"source": source, "destination": {"container": blobs.dst, "prefix": f"job{index}/"}}
        reply = call("start_job", "POST", "jobs", {**job_body, "timeout_seconds": 5})
        assert reply.status_code == 202, reply.get_body()
        job_ids.append(payload(reply)["id"])
    # The test's own queue client holds the key (in a header): its log lines are no leak.
    queue = QueueClient.from_connection_string(proxy.connection_string, runtime.settings().work_queue)
    assert drain_through(handlers["work"], queue) >= 3
    run(sweep(runtime.built(), datetime.now(UTC) + timedelta(seconds=60)))
    run(sweep(runtime.built(), datetime.now(UTC) + timedelta(seconds=120)))
    for job_id in job_ids:
        ended = call("get_job", "GET", f"jobs/{job_id}", route_params={"id": job_id})
        assert payload(ended)["state"] in ("succeeded", "failed", "aborted"), payload(ended)
        call("job_items", "GET", f"jobs/{job_id}/items", route_params={"id": job_id})
        assert call("job_report", "GET", f"jobs/{job_id}/report", route_params={"id": job_id}).status_code == 200
    call("list_jobs", "GET", "jobs")

    # The block engine: from the app's own account (read with a SAS the app signs with its
    # key, or the connection's own), and from a caller's SAS URL, whose SAS rides in its
    # staging messages; small blocks, so that both take the work queue.
    monkeypatch.setattr(blocks, "BLOCK_SIZE", 64 * 1024)
    big = os.urandom(3 * 64 * 1024 + 5)
    blobs.put(blobs.src, "big.bin", big)
    sas_big = blob_sas(blobs.src, "big.bin")
    for name, source in (
        ("k.bin", {"container": blobs.src, "blob": "big.bin"}),
        ("l.bin", f"{base}/big.bin?{sas_big}"),
    ):
        body = {**copy_body(blobs.src, blobs.dst, name, engine="blocks", timeout_seconds=600), "source": source}
        assert call("start_copy", "POST", "copies", body).status_code == 202
    assert drain_through(handlers["work"], queue) >= 2
    assert blobs.read(blobs.dst, "k.bin") == big == blobs.read(blobs.dst, "l.bin")
    read_with = [url.partition("?")[2] for kind, url in proxy.log.sources if kind == "put_block_from_url"]
    assert len(read_with) == 8 and all("sig=" in query for query in read_with)

    ledger = blobs.direct.get_container_client(f"ledger-{blobs.src[-10:]}")
    stored = [
        ledger.download_blob(item.name).readall() + str(ledger.get_blob_client(item.name).get_blob_tags()).encode()
        for item in ledger.list_blobs()
    ]
    assert any(item.name.startswith("idempotency/") for item in ledger.list_blobs())
    outputs = [r.get_body() + str(dict(r.headers)).encode() for r in responses] + stored
    outputs.append(everything_logged.text.encode())
    everything = b"\n".join(outputs)
    own_sas = connection.partition("SharedAccessSignature=")[2]
    for secret in secrets_of(connection, sas_b, sas_d, sas_c, sas_big, own_sas, partner.sas, *read_with):
        at = everything.find(secret.encode())
        assert at < 0, (secret, everything[max(0, at - 300) : at + 100])
    # And the run did show what may be shown: the source and destination URLs, without a query.
    shown = payload(pending)
    assert shown["source"] == partner.url("b.bin").partition("?")[0] and "?" not in shown["destination"]["url"]
