"""Identity mode, for real (issue: run it the Azure way). The app runs in the development
host with only the settings Azure's templates give it (the host's storage by a
user-assigned identity), against Azurite with bearer tokens over HTTPS, through the
pending-copy proxy over TLS, with a second account whose container is private. Its
DefaultAzureCredential is the unchanged one, on its managed-identity path."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, BlobServiceClient, generate_blob_sas

from devkit import DEV_ACCOUNT, identity
from devkit.identity import make_token
from tests.support.devhost_process import DevHostProcess
from tests.support.identity import CLIENT_ID, PARTNER, IdentityWorld, identity_world

pytestmark = pytest.mark.system

MANUAL = "0 0 0 1 1 *"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityWorld]:
    with identity_world(tmp_path_factory.mktemp("identity")) as made:
        yield made


@pytest.fixture(scope="module")
def app(world: IdentityWorld) -> Iterator[DevHostProcess]:
    host = world.host(verbose=True, COPY_SWEEP_SCHEDULE=MANUAL)
    yield host
    host.stop()


class Containers:
    def __init__(self, world: IdentityWorld) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.own, self.partner = world.client(), world.client(PARTNER)
        self.src, self.dst, self.private = f"src-{suffix}", f"dst-{suffix}", f"private-{suffix}"
        self.own.create_container(self.src)
        self.own.create_container(self.dst)
        self.partner.create_container(self.private)  # no public access: a SAS or nothing
        self.own.get_blob_client(self.src, "a.bin").upload_blob(b"own bytes")
        self.partner.get_blob_client(self.private, "a.bin").upload_blob(b"partner bytes")

    def read(self, name: str) -> bytes:
        return bytes(self.own.get_blob_client(self.dst, name).download_blob().readall())


@pytest.fixture
def c(world: IdentityWorld) -> Iterator[Containers]:
    world.proxy.reset()
    yield Containers(world)
    world.proxy.reset()


def copy(c: Containers, source: Any, name: str, **fields: Any) -> dict[str, Any]:
    return {"source": source, "destination": {"container": c.dst, "blob": name}, **fields}


def wait_for_state(app: DevHostProcess, op_id: str, state: str) -> dict[str, Any]:
    reply = app.wait_for(f"/api/copies/{op_id}", lambda r: r.json()["state"] == state)
    body: dict[str, Any] = reply.json()
    assert body["state"] == state, body
    return body


def test_the_template_settings_alone_start_index_and_work(world: IdentityWorld) -> None:
    """No connection string, no copy-ops setting at all: the app finds its storage through
    AzureWebJobsStorage__blobServiceUri and its user-assigned identity."""
    c = Containers(world)
    before = len(world.identity.requests)
    host = world.host()
    try:
        assert host.wait_for_log(lambda log: "route /api/copies" in log and "timer sweep" in log)
        started = host.call("POST", "/api/copies", copy(c, {"container": c.src, "blob": "a.bin"}, "a.bin"))
        assert started.status == 201, started.body
        listed = host.call("GET", "/api/copies")
        assert listed.status == 200 and listed.json()["items"][0]["id"] == started.json()["id"]
        assert c.read("a.bin") == b"own bytes"
    finally:
        host.stop()
    asked = world.identity.requests[before:]
    assert asked and all(request.get("client_id") == CLIENT_ID for request in asked)
    assert asked[0]["resource"] == "https://storage.azure.com"


@pytest.mark.parametrize("form", ["object", "url"])
def test_a_private_blob_of_another_account_is_copied_through_a_minted_sas(
    app: DevHostProcess, world: IdentityWorld, c: Containers, form: str
) -> None:
    source = (
        {"account": PARTNER, "container": c.private, "blob": "a.bin"}
        if form == "object"
        else f"{world.proxy.url}/{PARTNER}/{c.private}/a.bin"
    )
    reply = app.call("POST", "/api/copies", copy(c, source, f"{form}.bin", engine="async"))
    assert reply.status == 201, reply.body
    assert reply.json()["source"] == f"{world.proxy.url}/{PARTNER}/{c.private}/a.bin"
    assert c.read(f"{form}.bin") == b"partner bytes"
    [request] = [p for k, _, p in world.proxy.log.paths if k == "copy_blob"]
    assert request == f"/{DEV_ACCOUNT}/{c.dst}/{form}.bin"


def test_pending_read_listed_aborted_on_request_and_at_the_deadline(
    app: DevHostProcess, world: IdentityWorld, c: Containers
) -> None:
    world.proxy.pending_copies = True
    first = app.call(
        "POST",
        "/api/copies",
        copy(c, {"account": PARTNER, "container": c.private, "blob": "a.bin"}, "p1", engine="async"),
    )
    assert first.status == 202, first.body
    op_id = first.json()["id"]
    assert app.call("GET", f"/api/copies/{op_id}").json()["progress"] == {"bytes_copied": 0, "bytes_total": 13}
    listed = app.call("GET", "/api/copies?state=pending").json()["items"]
    assert op_id in [item["id"] for item in listed]
    aborted = app.call("POST", f"/api/copies/{op_id}/abort")
    assert aborted.status == 200 and aborted.json()["abort_reason"] == "requested"
    # A deadline abort: the sweep finds the record by its tags, over bearer tokens.
    source = {"account": PARTNER, "container": c.private, "blob": "a.bin"}  # another account's: pending
    late = app.call("POST", "/api/copies", copy(c, source, "p2", timeout_seconds=1, engine="async"))
    late_id = late.json()["id"]
    deadline = datetime.fromisoformat(late.json()["deadline"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 1.1)
    assert app.call("POST", "/admin/functions/sweep", {"input": ""}).status == 202
    ended = wait_for_state(app, late_id, "aborted")
    assert ended["abort_reason"] == "deadline"
    state = world.proxy.copy_state(c.dst, "p2")
    assert state is not None and state.status == "aborted"
    assert [k for k, _, _ in world.proxy.log.paths].count("find_by_tags") >= 1


class StandInCredential:
    """A token from the managed-identity stand-in, for the test's own client."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(make_token("https://storage.azure.com", CLIENT_ID), int(time.time()) + 3600)


def test_storage_refuses_a_missing_or_tampered_sas(world: IdentityWorld, c: Containers) -> None:
    """What makes the cross-account copy work is the SAS, checked by storage itself."""
    url = f"https://127.0.0.1:{world.azurite.port}/{PARTNER}/{c.private}/a.bin"
    partner = BlobServiceClient(
        f"https://127.0.0.1:{world.azurite.port}/{PARTNER}",
        credential=StandInCredential(),
        connection_verify=str(world.tls.ca),
    )
    now = datetime.now(UTC)
    key = partner.get_user_delegation_key(now - timedelta(minutes=5), now + timedelta(hours=1))
    sas = generate_blob_sas(
        PARTNER, c.private, "a.bin", user_delegation_key=key, permission=BlobSasPermissions(read=True),
        start=now - timedelta(minutes=5), expiry=now + timedelta(hours=1),
    )  # fmt: skip
    signature = parse_qs(sas)["sig"][0]
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]  # always differs
    tampered = "&".join(f"sig={quote(forged, safe='')}" if part.startswith("sig=") else part for part in sas.split("&"))
    assert tampered != sas

    def status(query: str | None) -> int:
        from azure.storage.blob import BlobClient

        blob = BlobClient.from_blob_url(url + (f"?{query}" if query else ""), connection_verify=str(world.tls.ca))
        try:
            blob.get_blob_properties()
        except HttpResponseError as exc:
            return exc.status_code or 0
        return 200

    assert status(sas) == 200
    assert status(None) in (403, 404)
    assert status(tampered) == 403


def test_a_caller_given_tampered_sas_starts_nothing(app: DevHostProcess, world: IdentityWorld, c: Containers) -> None:
    url = f"{world.proxy.url}/{PARTNER}/{c.private}/a.bin?sv=2024-08-04&sr=b&sp=r&se=2099-01-01&sig=Zm9vYmFy"
    reply = app.call("POST", "/api/copies", copy(c, url, "forged.bin"))
    assert reply.status in (403, 404), reply.body
    assert not c.own.get_blob_client(c.dst, "forged.bin").exists()


@pytest.mark.parametrize(
    ("kind", "code", "role"),
    [
        ("user_delegation_key", "AuthorizationPermissionMismatch", "Storage Blob Delegator"),
        ("copy_blob", "CannotVerifyCopySource", "Storage Blob Data Reader"),
    ],
)
def test_a_missing_role_is_403_naming_source_and_the_role(
    world: IdentityWorld, c: Containers, kind: str, code: str, role: str
) -> None:
    # A fresh host: no delegation key cached yet. Azurite has no RBAC, so storage's refusal is injected.
    host = world.host(COPY_SWEEP_SCHEDULE=MANUAL)
    try:
        world.proxy.inject(kind, status=403, code=code, times=5)
        reply = host.call(
            "POST",
            "/api/copies",
            copy(c, {"account": PARTNER, "container": c.private, "blob": "a.bin"}, "r", engine="async"),
        )
    finally:
        host.stop()
    assert reply.status == 403, reply.body
    [error] = reply.json()["errors"]
    assert error["field"] == "source" and role in error["message"] and PARTNER in error["message"]
    assert not c.own.get_blob_client(c.dst, "r").exists()


TRAVERSALS = ["../{victim}/precious", "a/../../{victim}/precious", "%2e%2e/{victim}/precious", "..\\{victim}\\x"]


@pytest.mark.parametrize("template", TRAVERSALS)
def test_no_name_escapes_its_container_with_a_bearer_token(
    app: DevHostProcess, world: IdentityWorld, c: Containers, template: str
) -> None:
    """A bearer token signs no path: only copy-ops stands between the name and another container."""
    victim = f"forbidden-{uuid.uuid4().hex[:8]}"
    c.own.create_container(victim)
    c.own.get_blob_client(victim, "precious").upload_blob(b"precious")
    body = copy(c, {"container": c.src, "blob": "a.bin"}, template.format(victim=victim), overwrite=True)
    reply = app.call("POST", "/api/copies", body)
    assert reply.status == 400 and reply.json()["errors"][0]["field"] == "destination.blob"
    assert c.own.get_blob_client(victim, "precious").download_blob().readall() == b"precious"
    assert not [k for k, _, _ in world.proxy.log.paths if k == "copy_blob"]


def test_no_secret_in_any_response_record_or_log_line(app: DevHostProcess, world: IdentityWorld, c: Containers) -> None:
    """Identity mode's secrets: the bearer tokens, the identity header, and every SAS the app
    minted (its signature). The host logs at DEBUG, the SDK's too. (The identity's object
    id, which a SAS also names, is an identifier, not a secret: azure-identity logs it.)"""
    world.proxy.pending_copies = True
    replies = [
        app.call("POST", "/api/copies", copy(c, {"account": PARTNER, "container": c.private, "blob": "a.bin"}, "s1")),
        app.call("POST", "/api/copies", copy(c, {"container": c.src, "blob": "a.bin"}, "s2", on_abort="delete")),
        app.call(
            "POST",
            "/api/copies",
            copy(c, {"account": PARTNER, "container": c.private, "blob": "a.bin"}, "s3", engine="async"),
        ),
    ]
    # The block engine's bearer token, and Copy Blob's minted SAS (own account, and another).
    assert [reply.json()["engine"] for reply in replies] == ["blocks", "async", "async"], [r.body for r in replies]
    for reply in list(replies):
        op_id = reply.json()["id"]
        replies += [app.call("GET", f"/api/copies/{op_id}"), app.call("POST", f"/api/copies/{op_id}/abort")]
    replies.append(app.call("GET", "/api/copies"))
    # Every SAS the app minted for a Copy Blob's source, as storage received it (s2's, within
    # the account, ended at once; s3's, from another, stayed pending).
    minted = [url for kind, url in world.proxy.log.sources if kind == "copy_blob"]
    assert len(minted) == 2 and all("sig=" in url for url in minted), minted
    secrets = {world.identity.secret, *world.identity.tokens}
    for url in minted:
        query = parse_qs(url.split("?", 1)[1])
        secrets.add(query["sig"][0])
    ledger = [
        blob
        for container in world.client().list_containers(name_starts_with="ledger-")
        for blob in world.client().get_container_client(container.name).list_blobs()
    ]
    records = b"".join(
        world.client().get_blob_client(blob.container, blob.name).download_blob().readall() for blob in ledger
    )
    app.wait_for_log(lambda log: "copy_aborted" in log)
    everything = b"\n".join([*(r.body + str(r.headers).encode() for r in replies), records, app.log().encode()])
    for secret in secrets:
        at = everything.find(secret.encode())
        assert at < 0, everything[max(0, at - 400) : at + 50]
    # A signature shown at all is the SDK's log of a request to a caller's SAS URL, its value redacted.
    shown = re.search(rb"sig=(?!REDACTED)", everything)
    assert shown is None, everything[max(0, shown.start() - 600) : shown.start() + 100]


def test_a_source_in_another_account_is_read_by_a_bearer_token_and_no_sas(world: IdentityWorld, c: Containers) -> None:
    """The stand-in's Put Block From URL and Put Blob From URL (devkit/from_url.py) read a
    source with the token the request carries as its source authorization, as Azure does;
    Azurite (OAuth mode) checks the token. No SAS is made or sent for that source."""
    own = BlobServiceClient(world.endpoint, credential=StandInCredential(), connection_verify=str(world.tls.ca))
    source = f"{world.proxy.url}/{PARTNER}/{c.private}/a.bin"
    token = f"Bearer {make_token('https://storage.azure.com', CLIENT_ID)}"
    target = own.get_blob_client(c.dst, "by-token.bin")
    target.stage_block_from_url("MDAwMDAw", source, source_offset=0, source_length=13, source_authorization=token)
    target.commit_block_list([BlobBlock("MDAwMDAw")])
    own.get_blob_client(c.dst, "whole.bin").upload_blob_from_url(source, source_authorization=token)
    assert c.read("by-token.bin") == c.read("whole.bin") == b"partner bytes"
    kinds = [kind for kind, _, _ in world.proxy.log.paths]
    assert kinds.count("put_block_from_url") == 1 and kinds.count("put_blob_from_url") == 1
    read = [url for kind, url in world.proxy.log.sources if kind in ("put_block_from_url", "put_blob_from_url")]
    assert read == [source, source]  # the source as named: no SAS made, none sent
    # A token for another audience reads nothing: refused as Azure refuses a source it cannot read.
    wrong = f"Bearer {make_token('https://management.azure.com', CLIENT_ID)}"
    with pytest.raises(HttpResponseError) as refused:
        own.get_blob_client(c.dst, "refused.bin").upload_blob_from_url(source, source_authorization=wrong)
    assert getattr(refused.value, "error_code", None) == "CannotVerifyCopySource"
    with pytest.raises(HttpResponseError) as refused_block:
        own.get_blob_client(c.dst, "refused.bin").stage_block_from_url(
            "MDAwMDAw", source, source_offset=0, source_length=13, source_authorization=wrong
        )
    assert getattr(refused_block.value, "error_code", None) == "CannotVerifyCopySource"
    assert not c.own.get_blob_client(c.dst, "refused.bin").exists()
    with pytest.raises(ResourceNotFoundError):  # no block staged either: no blob at all
        c.own.get_blob_client(c.dst, "refused.bin").get_block_list("uncommitted")


def test_a_copy_from_another_account_on_the_block_engine_sends_its_bearer_token_and_no_sas(
    app: DevHostProcess, world: IdentityWorld, c: Containers
) -> None:
    """auto's engine for another account: the app's own token authorizes the source, as
    Azure's synchronous copies allow; no delegation key is asked for, no SAS is sent."""
    reply = app.call(
        "POST", "/api/copies", copy(c, {"account": PARTNER, "container": c.private, "blob": "a.bin"}, "token.bin")
    )
    assert reply.status == 201, reply.body
    assert reply.json()["engine"] == "blocks" and reply.json()["blocks"] == {"staged": 1, "total": 1}
    assert c.read("token.bin") == b"partner bytes"
    sent = [(kind, scheme) for kind, scheme in world.proxy.log.source_authorizations if kind.endswith("_from_url")]
    assert sent == [("put_blob_from_url", "Bearer")]
    assert not [url for _, url in world.proxy.log.sources if "sig=" in url]
    assert "user_delegation_key" not in [kind for kind, _, _ in world.proxy.log.paths]


def test_a_large_blob_of_another_account_is_staged_block_by_block_with_the_token(
    world: IdentityWorld, c: Containers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many blocks, each read with the token, in this process (the identity suite's host has
    no queue service: the staging messages are delivered here, the storage is Azurite's)."""
    import os

    import aiohttp.connector

    from copy_ops.app_service import AppService
    from copy_ops.background.dispatch import do_work
    from copy_ops.copies import blocks
    from copy_ops.copies.request import parse_copy_request
    from copy_ops.core.settings import Settings
    from copy_ops.storage import BlobStorage
    from devkit.worker import run
    from tests.support.memory import MemoryQueue

    monkeypatch.setattr(blocks, "BLOCK_SIZE", 64 * 1024)
    for name, value in world.identity.env.items():
        monkeypatch.setenv(name, value)
    # What SSL_CERT_FILE does for the host: this process trusts the test's CA (aiohttp made
    # its default context when it was imported, before any test could set the variable).
    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(str(world.tls.ca))
    data = os.urandom(5 * 64 * 1024 + 1)
    c.partner.get_blob_client(c.private, "big.bin").upload_blob(data)
    settings = Settings.from_env(
        {
            "COPY_STORAGE__blobServiceUri": world.endpoint,
            "COPY_STORAGE__clientId": CLIENT_ID,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
        }
    )
    queue = MemoryQueue()

    async def scenario() -> str:
        storage = await BlobStorage.connect(settings.storage)
        service = AppService(settings, storage, queue)
        try:
            now = datetime.now(UTC)
            body = {"source": {"account": PARTNER, "container": c.private, "blob": "big.bin"}}
            body["destination"] = {"container": c.dst, "blob": "big.bin"}
            op = (await service.start(parse_copy_request(body, settings, now), now)).operation
            for _ in range(10):
                for text in queue.take():
                    await do_work(service, text, now)
            return (await service.get(op.id, now)).state.value
        finally:
            await service.close()

    assert run(scenario()) == "succeeded"
    assert c.read("big.bin") == data
    sent = [(kind, scheme) for kind, scheme in world.proxy.log.source_authorizations if kind.endswith("_from_url")]
    assert sent == [("put_block_from_url", "Bearer")] * 6
    assert not [url for _, url in world.proxy.log.sources if "sig=" in url]


def test_a_source_account_that_refuses_the_apps_token_is_403_naming_source_and_writes_nothing(
    world: IdentityWorld, c: Containers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block engine's token refused for real, by the source's account: a token whose
    audience is the app's own account (Azurite, as Azure, holds such a token to that
    account) reads and writes the app's storage, but the other account refuses it. The
    caller is told the source cannot be read, and why (the role), and nothing is written."""
    own_audience = f"https://{DEV_ACCOUNT}.blob.core.windows.net"
    issue = identity.make_token
    monkeypatch.setattr(
        identity, "make_token", lambda _, client_id, lifetime=3600: issue(own_audience, client_id, lifetime)
    )
    host = world.host(COPY_SWEEP_SCHEDULE=MANUAL)  # a fresh host: it asks for its token now
    try:
        own = host.call(
            "POST", "/api/copies", copy(c, {"container": c.src, "blob": "a.bin"}, "own.bin", engine="blocks")
        )
        source = {"account": PARTNER, "container": c.private, "blob": "a.bin"}
        refused = host.call("POST", "/api/copies", copy(c, source, "refused.bin", engine="blocks"))
    finally:
        host.stop()
    assert own.status == 201 and c.read("own.bin") == b"own bytes", own.body
    assert not c.own.get_blob_client(c.dst, "refused.bin").exists()
    assert refused.status == 403, refused.body
    [error] = refused.json()["errors"]
    assert error["field"] == "source" and "Storage Blob Data Reader" in error["message"], error
