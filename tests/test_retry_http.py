"""A copy's attempts over HTTP (issue 32, item 3), through the app's own functions on Azurite
and the stand-in: GET /api/copies/{id} shows ``attempt`` right on the first attempt, while
the copy waits for its next (``retrying``), on the next, and at the end; every view is
valid under the OpenAPI document's Operation schema; the final event carries the attempts
and a failed attempt announces nothing. And no SAS reaches a record, a view, an event or
a log line through an attempt's error or a history reason, whatever storage writes in a
failed copy's status description. The source is another account's public blob (no
SAS: a source given with one is tried once), so the stand-in holds its copy pending and
ends it ``failed`` as Azure does (``fail``)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import jsonschema_rs  # schemathesis's own validator, so a dev requirement already
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from copy_ops.background.sweep import sweep
from copy_ops.copies.phases import Event
from copy_ops.edges import runtime
from devkit import PendingCopyProxy
from devkit.app import ROOT, payload, request
from devkit.failures import SOURCE_READS_FAILED, description
from devkit.worker import run
from tests.conftest import Blobs, Handlers
from tests.support.partner import Partner
from tests.support.retries import Public

SCHEMAS = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))["components"]
OPERATION = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/Operation", "components": SCHEMAS})


def conforms(view: dict[str, Any]) -> dict[str, Any]:
    """``view``, checked against the Operation schema (every error said at once)."""
    errors = [str(error).splitlines()[0] for error in OPERATION.iter_errors(view)]
    assert not errors, errors
    return view


@pytest.fixture
def events_queue(handlers: Handlers, blobs: Blobs, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app's settings with an events queue of the test's own (the service built again)."""
    name = f"events-{blobs.src[-10:]}"
    monkeypatch.setenv("COPY_EVENTS_QUEUE", name)
    run(runtime.reset())
    yield name


def delivered(proxy: PendingCopyProxy, queue: str) -> list[dict[str, Any]]:
    client = QueueClient.from_connection_string(proxy.connection_string, queue)
    with contextlib.closing(client):
        try:
            return [json.loads(str(message.content)) for message in client.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def get(handlers: Handlers, op_id: str) -> dict[str, Any]:
    response = handlers["get_copy"](request("GET", f"copies/{op_id}", route_params={"id": op_id}))
    assert response.status_code == 200, response.get_body()
    return conforms(payload(response))


def sweep_now(seconds: float = 1) -> None:
    """The timer's sweep, a moment from now (a backoff of 0 is due at once)."""
    run(sweep(runtime.built(), datetime.now(UTC) + timedelta(seconds=seconds)))


def test_the_history_events_in_the_schema_are_the_machines() -> None:
    history = SCHEMAS["schemas"]["Operation"]["properties"]["history"]["items"]["properties"]["event"]
    assert history["enum"] == [event.value for event in Event]


def test_each_attempt_is_in_the_view_the_schema_and_the_final_event_alone(
    handlers: Handlers, events_queue: str, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    source = Public(proxy).put("a.bin", b"x" * 2048)
    proxy.pending_copies = True
    body = {
        "source": source,
        "destination": {"container": blobs.dst, "blob": "a.bin"},
        "timeout_seconds": 3600,
        "engine": "async",
        "retry": {"attempts": 3, "backoff_seconds": 0},
    }
    started = handlers["start_copy"](request("POST", "copies", body))
    assert started.status_code == 202, started.get_body()
    first = conforms(payload(started))
    assert first["attempt"] == {"number": 1, "of": 3, "last_error": None, "failed": []}
    assert get(handlers, first["id"])["attempt"] == first["attempt"]

    proxy.fail(blobs.dst, "a.bin", SOURCE_READS_FAILED)
    waiting = get(handlers, first["id"])  # the read finds the attempt failed
    assert (waiting["state"], waiting["phase"], waiting["error"]) == ("pending", "retrying", None)
    attempt = waiting["attempt"]
    assert (attempt["number"], attempt["of"]) == (1, 3)
    assert attempt["last_error"] == {"code": "copy_failed", "message": SOURCE_READS_FAILED}
    [failed] = attempt["failed"]
    assert (failed["number"], failed["cause"], failed["copy_id"]) == (1, "copy_failed", first["copy_id"])
    assert failed["error"] == attempt["last_error"]
    assert [move["event"] for move in waiting["history"]][-1] == "attempt_failed"
    assert delivered(proxy, events_queue) == []  # a failed attempt is no end: nothing announced

    sweep_now()
    second = get(handlers, first["id"])
    assert (second["state"], second["phase"]) == ("pending", "copying")
    assert second["copy_id"] not in (None, first["copy_id"])
    assert second["attempt"]["number"] == 2 and second["attempt"]["failed"] == attempt["failed"]
    assert second["attempt"]["last_error"] == attempt["last_error"]
    assert delivered(proxy, events_queue) == []

    proxy.finish(blobs.dst, "a.bin")
    done = get(handlers, first["id"])
    assert (done["state"], done["error"]) == ("succeeded", None)
    assert done["attempt"] == {**second["attempt"], "number": 2}
    assert [move["event"] for move in done["history"]] == [
        "started",
        "attempt_failed",
        "retried",
        "started",
        "finished",
    ]
    assert blobs.read(blobs.dst, "a.bin") == b"x" * 2048
    sweep_now()  # a read that finds the end leaves its event owed, to the sweep
    [event] = delivered(proxy, events_queue)
    assert event["type"] == "copyops.copy.succeeded"
    assert event["data"]["attempt"] == done["attempt"]
    conforms(event["data"])


def secrets_of(sas: str) -> list[str]:
    signature = parse_qs(sas)["sig"][0]
    return [signature, quote(signature, safe=""), sas]


def everything(handlers: Handlers, proxy: PendingCopyProxy, blobs: Blobs, events: str, op_id: str) -> bytes:
    """What left the app of one copy: its view and list, its records, its events."""
    records = blobs.direct.get_container_client(f"ledger-{blobs.src[-10:]}")
    stored = b"".join(records.download_blob(item.name).readall() for item in records.list_blobs())
    view = handlers["get_copy"](request("GET", f"copies/{op_id}", route_params={"id": op_id})).get_body()
    listed = handlers["list_copies"](request("GET", "copies")).get_body()
    return b"".join([view, listed, stored, json.dumps(delivered(proxy, events)).encode()])


def test_no_sas_of_a_source_given_with_one_reaches_anything_through_its_error(
    handlers: Handlers,
    events_queue: str,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = partner.put("a.bin", b"x" * 512)  # with the partner's SAS: tried once
    proxy.pending_copies = True
    body = {"source": url, "destination": {"container": blobs.dst, "blob": "a.bin"}, "engine": "async"}
    with caplog.at_level(logging.DEBUG):
        started = payload(handlers["start_copy"](request("POST", "copies", body)))
        assert started["attempt"]["of"] == 1
        # Storage quoting the source as it read it, SAS and all, and its signature bare.
        said = description(500, "OperationCancelled", f"Copy failed reading {url} (sig={partner.sas[-12:]})")
        proxy.fail(blobs.dst, "a.bin", said)
        ended = get(handlers, started["id"])
        sweep_now()
    assert (ended["state"], ended["error"]["code"]) == ("failed", "copy_failed")
    assert url.split("?", 1)[0] in ended["error"]["message"]  # the source is said, its query is not
    sent = everything(handlers, proxy, blobs, events_queue, started["id"]) + caplog.text.encode()
    assert b"copyops.copy.failed" in sent
    for secret in [*secrets_of(partner.sas), partner.sas[-12:]]:
        assert secret.encode() not in sent, secret


def test_no_sas_reaches_anything_through_a_retried_attempts_error_or_its_history(
    handlers: Handlers,
    events_queue: str,
    blobs: Blobs,
    partner: Partner,
    proxy: PendingCopyProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A source read without a SAS of the caller's (here a public blob; on Azure, in identity
    mode, one the app mints for the copy) is retried: its failed attempts' errors, quoting
    the source with a SAS as storage read it, go into the history and the attempts."""
    source = Public(proxy).put("a.bin", b"x" * 512)
    proxy.pending_copies = True
    body = {
        "source": source,
        "destination": {"container": blobs.dst, "blob": "a.bin"},
        "engine": "async",
        "retry": {"attempts": 2, "backoff_seconds": 0},
    }
    with caplog.at_level(logging.DEBUG):
        started = payload(handlers["start_copy"](request("POST", "copies", body)))
        proxy.fail(
            blobs.dst, "a.bin", description(500, "OperationCancelled", f"Copy failed reading {source}?{partner.sas}")
        )
        waiting = get(handlers, started["id"])
        sweep_now()
        proxy.fail(blobs.dst, "a.bin", description(503, "ServerBusy", f"source sig={parse_qs(partner.sas)['sig'][0]}"))
        ended = get(handlers, started["id"])
        sweep_now()
    assert waiting["phase"] == "retrying" and waiting["history"][-1]["reason"].startswith("attempt 1 of 2: copy_failed")
    assert (ended["state"], ended["attempt"]["number"], len(ended["attempt"]["failed"])) == ("failed", 2, 1)
    sent = everything(handlers, proxy, blobs, events_queue, started["id"]) + caplog.text.encode()
    assert b"copyops.copy.failed" in sent and b"attempt_failed" in sent
    for secret in secrets_of(partner.sas):
        assert secret.encode() not in sent, secret
