"""No name escapes its container (invariant 7), under every credential the app can hold.

With an account key, storage refuses a rewritten path by accident (the signature
covers the raw path); with a SAS or a bearer token nothing signs the path, so only
copy-ops stands between ``../forbidden/precious`` and another container. These tests
go through the app's functions, the real SDK and real HTTP to Azurite, and check what
storage received (the proxy logs every path)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copy_ops.app_service import AppService
from copy_ops.copies.model import BlobRef
from copy_ops.core.errors import Forbidden, InvalidRequest, UnsafeName
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.app import payload, request
from devkit.worker import collected, run
from tests.conftest import Blobs, Handlers, SettingsFactory, connect, credential_connection_string
from tests.support.requests import copy_body, start

TRAVERSALS = [
    "../{victim}/precious",
    "a/../../{victim}/precious",
    "./../{victim}/precious",
    "%2e%2e/{victim}/precious",
    "%2E%2E%2F{victim}%2Fprecious",
    "..\\{victim}\\precious",
    "\uff0e\uff0e/{victim}/precious",
    "..;/{victim}/precious",
    "..%3F/{victim}/precious",
]

LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def victim(blobs: Blobs) -> str:
    """A container outside COPY_ALLOWED_DESTINATION_CONTAINERS (dst-*) holding something precious."""
    name = f"forbidden-{uuid.uuid4().hex[:8]}"
    blobs.direct.create_container(name)
    blobs.put(name, "precious", b"precious")
    return name


@pytest.mark.parametrize("template", TRAVERSALS)
def test_a_destination_name_cannot_reach_another_container(
    handlers_by_credential: Handlers, blobs: Blobs, proxy: PendingCopyProxy, victim: str, template: str
) -> None:
    blobs.put(blobs.src, "a.bin", b"the source's bytes")
    body = copy_body(blobs.src, blobs.dst, dest_name=template.format(victim=victim), overwrite=True)
    response = handlers_by_credential["start_copy"](request("POST", "copies", body))
    assert response.status_code == 400, response.get_body()
    assert [error["field"] for error in payload(response)["errors"]] == ["destination.blob"]
    assert blobs.read(victim, "precious") == b"precious"
    assert proxy.log.counts["copy_blob"] == 0 and proxy.log.counts["put_blob"] == 0  # nothing started


def test_a_destination_name_cannot_replace_a_ledger_record(
    handlers_by_credential: Handlers, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    first = payload(handlers_by_credential["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst))))
    ledger = f"ledger-{blobs.src[-10:]}"
    attack = copy_body(blobs.src, blobs.dst, dest_name=f"../{ledger}/ops/{first['id']}.json", overwrite=True)
    assert handlers_by_credential["start_copy"](request("POST", "copies", attack)).status_code == 400
    again = handlers_by_credential["get_copy"](
        request("GET", f"copies/{first['id']}", route_params={"id": first["id"]})
    )
    assert again.status_code == 200 and payload(again)["state"] == "succeeded"


@pytest.mark.parametrize(
    "source",
    [
        "http://127.0.0.1:{port}/devstoreaccount1/{ledger}/ops/x.json",
        "http://localhost:{port}/devstoreaccount1/{ledger}/ops/x.json",
        "http://127.0.0.1:{port}/devstoreaccount1/%6c{ledger_tail}/ops/x.json",
    ],
)
def test_a_url_source_may_not_name_the_ledger_either(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.setenv("COPY_ALLOWED_SOURCE_HOSTS", "127.0.0.1:*,localhost:*")
    ledger = f"ledger-{blobs.src[-10:]}"
    url = source.format(port=proxy.port, ledger=ledger, ledger_tail=ledger[1:])
    from devkit.app import functions, load_function_app

    response = functions(load_function_app())["start_copy"](
        request("POST", "copies", {**copy_body(blobs.src, blobs.dst), "source": url})
    )
    assert response.status_code == 403, response.get_body()
    assert payload(response)["errors"][0]["field"] == "source"
    assert proxy.log.counts["copy_blob"] == 0


# -- defence in depth: the adapter refuses what validation should have refused ---------


@pytest.mark.parametrize("credential_kind", ["account_key", "sas_connection_string"])
def test_the_adapter_refuses_to_address_another_container(
    proxy: PendingCopyProxy, blobs: Blobs, victim: str, credential_kind: str
) -> None:
    from copy_ops.core.connection import StorageConnection
    from tests.conftest import TEST_CLIENT_OPTIONS

    storage = run(
        BlobStorage.connect(
            StorageConnection(connection_string=credential_connection_string(credential_kind, proxy)),
            **TEST_CLIENT_OPTIONS,
        )
    )
    try:
        blobs.put(blobs.src, "a.bin", b"x")
        for name in (f"../{victim}/precious", f"a/../../{victim}/precious", "./x"):
            with pytest.raises(UnsafeName):
                run(
                    storage.start_copy(
                        BlobRef(blobs.dst, name), BlobRef(blobs.src, "a.bin"), {}, overwrite=True, readable_until=LATER
                    )
                )
            with pytest.raises(UnsafeName):
                run(storage.delete_blob(BlobRef(blobs.dst, name)))
            with pytest.raises(UnsafeName):
                run(storage.create_document(blobs.dst, name, b"{}", {}))
        with pytest.raises(UnsafeName):
            run(collected(storage.find_by_tags(f"{blobs.dst}/../{victim}", "\"due\" <= 'z'", 10)))
        assert proxy.log.paths == []
        assert blobs.read(victim, "precious") == b"precious"
    finally:
        run(storage.close())


# -- property: what reaches the wire is exactly what was validated --------------------

names_that_matter = st.lists(
    st.sampled_from([".", "..", "/", "\\", "%2e", "%2f", "%25", "\uff0e", ";", "?", "#", "a", "b", "-", "é", " "]),
    min_size=1,
    max_size=10,
).map("".join)
containers = st.sampled_from(["{dst}", "{dst}\n", "{dst}/..", "..", "Dst", "{victim}"])
metadata = st.dictionaries(
    st.sampled_from(["a", "b_1", "abc\n", "1x", "copyops_x", "ok"]),
    st.sampled_from(["v", " v", "v\n", "é", "x" * 20]),
    max_size=3,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(container=containers, name=names_that_matter, meta=metadata)
def test_storage_receives_exactly_the_validated_container_and_name(
    service: AppService, blobs: Blobs, proxy: PendingCopyProxy, victim: str, container: str, name: str, meta: Any
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    proxy.log.paths.clear()
    target = container.format(dst=blobs.dst, victim=victim)
    body = {
        "source": {"container": blobs.src, "blob": "a.bin"},
        "destination": {"container": target, "blob": name},
        "metadata": meta,
        "overwrite": True,
    }
    try:
        outcome = start(service, body, datetime.now(UTC))
    except (InvalidRequest, Forbidden):
        assert not [p for p in proxy.log.paths if p[0] == "copy_blob"]
        return
    copies = [path for kind, _, path in proxy.log.paths if kind == "copy_blob"]
    assert copies == [f"/devstoreaccount1/{target}/{name}"]
    assert blobs.metadata(target, name) == {**meta, "copyops_operation": outcome.operation.id}


@pytest.fixture
def service(make_settings: SettingsFactory) -> AppService:
    return connect(make_settings(COPY_ALLOWED_DESTINATION_CONTAINERS="dst-*"))


def test_the_transport_refuses_any_path_a_client_would_rewrite(storage: BlobStorage, proxy: PendingCopyProxy) -> None:
    """The last check, below every SDK client: even a client the adapter did not vet."""
    client = storage._service.get_blob_client("dst-x", "a/../../victim/precious")
    with pytest.raises(UnsafeName):
        run(storage._run(client.get_blob_properties()))
    assert proxy.log.paths == []


@pytest.fixture
def storage(settings_for_storage: Any) -> BlobStorage:
    from tests.conftest import open_storage

    return open_storage(settings_for_storage)


@pytest.fixture
def settings_for_storage(make_settings: SettingsFactory) -> Any:
    return make_settings()
