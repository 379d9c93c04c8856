"""Shared fixtures: Azurite (started here, never skipped), the pending-copy proxy, and a
service wired to storage through that proxy, as a user's app would be."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from copy_ops.app_service import AppService
from copy_ops.core.settings import Settings
from copy_ops.edges import runtime
from copy_ops.storage import BlobStorage
from devkit import (
    DEV_ACCOUNT,
    DEV_KEY,
    PARTNER_ACCOUNT,
    PARTNER_KEY,
    Azurite,
    PendingCopyProxy,
    account_sas,
    connection_string,
    serve,
)
from devkit.app import functions, load_function_app
from devkit.worker import run
from tests.support import tiers
from tests.support.partner import Partner


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test in its tier, before ``-m`` selects (tests/support/tiers.py)."""
    tiers.classify(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """The tier of the test whose setup, call or teardown runs now (tiers.require_system)."""
    tiers.running.append(tiers.tier_of(item))
    try:
        return (yield)
    finally:
        tiers.running.pop()


# Quick retries so fault tests stay fast; the production values are in copy_ops.storage.
TEST_CLIENT_OPTIONS: dict[str, Any] = {
    "retry": {"retry_total": 2, "backoff": 0.02, "random_jitter_range": 0},
    "read_timeout": 3,
    "connection_timeout": 2,
}


@pytest.fixture(scope="session")
def azurite_ports() -> Iterator[tuple[int, int]]:
    """The blob and queue ports of the suite's Azurite."""
    # A developer may point the suite at an Azurite they run themselves.
    given = os.environ.get("COPY_OPS_TEST_AZURITE_PORT")
    if given:
        yield int(given), int(os.environ.get("COPY_OPS_TEST_AZURITE_QUEUE_PORT", int(given) + 1))
        return
    # Two accounts, as Azure has many: a copy from the second is a copy from another account.
    with Azurite(queue=True, accounts={DEV_ACCOUNT: DEV_KEY, PARTNER_ACCOUNT: PARTNER_KEY}) as azurite:
        assert azurite.queue_port is not None
        yield azurite.port, azurite.queue_port


@pytest.fixture(scope="session")
def azurite_port(azurite_ports: tuple[int, int]) -> int:
    return azurite_ports[0]


@pytest.fixture(scope="session")
def _proxy(azurite_ports: tuple[int, int]) -> Iterator[PendingCopyProxy]:
    proxy = serve(azurite_ports[0])
    proxy.queue_proxy = serve(azurite_ports[1])
    yield proxy
    proxy.queue_proxy.stop()
    proxy.stop()


@pytest.fixture
def proxy(_proxy: PendingCopyProxy) -> Iterator[PendingCopyProxy]:
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture
def direct(azurite_port: int) -> BlobServiceClient:
    """Azurite without the proxy: for arranging and checking, uncounted and fault-free."""
    return BlobServiceClient.from_connection_string(connection_string(azurite_port))


class Blobs:
    """Arrange and inspect blobs directly in Azurite, in containers unique to one test."""

    def __init__(self, direct: BlobServiceClient) -> None:
        self.direct = direct
        suffix = uuid.uuid4().hex[:10]
        self.src = f"src-{suffix}"
        self.dst = f"dst-{suffix}"
        direct.create_container(self.src)
        direct.create_container(self.dst)

    def put(self, container: str, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.direct.get_blob_client(container, name).upload_blob(data, overwrite=True, metadata=metadata)

    def read(self, container: str, name: str) -> bytes:
        return self.direct.get_blob_client(container, name).download_blob().readall()

    def exists(self, container: str, name: str) -> bool:
        return bool(self.direct.get_blob_client(container, name).exists())

    def metadata(self, container: str, name: str) -> dict[str, str]:
        return dict(self.direct.get_blob_client(container, name).get_blob_properties().metadata)

    def lease_state(self, container: str, name: str) -> str:
        return str(self.direct.get_blob_client(container, name).get_blob_properties().lease.state)

    def container_sas(self, container: str) -> str:
        """A SAS that lists and reads the container, as a partner would hand out."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=2),
        )

    def put_raw(self, container: str, name: str, data: bytes) -> None:
        """A blob whose name a URL client would rewrite (``..``, ``%2e``, look-alikes), put
        with a raw request whose path is the name percent-encoded and never normalised, as
        a careless or hostile partner could; checked to be stored under exactly that name."""
        import http.client
        from urllib.parse import quote, urlsplit

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        sas = generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=2),
        )
        parts = urlsplit(self.direct.url)
        path = f"{parts.path.rstrip('/')}/{container}/{quote(name, safe='/')}?{sas}"
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"}
            connection.request("PUT", path, body=data, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        assert response.status == 201, (name, response.status, answer[:300])
        listed = [blob.name for blob in self.direct.get_container_client(container).list_blobs(name_starts_with=name)]
        assert name in listed, (name, listed)

    def snapshots(self, container: str, name: str) -> list[str]:
        items = self.direct.get_container_client(container).list_blobs(name_starts_with=name, include=["snapshots"])
        return [item.snapshot for item in items if item.snapshot and item.name == name]


@pytest.fixture
def blobs(direct: BlobServiceClient) -> Blobs:
    return Blobs(direct)


@pytest.fixture
def partner(proxy: PendingCopyProxy, blobs: Blobs) -> Partner:
    """The test's container in the second account (named as its own source container): the
    sources of the copies that stay pending (tests/support/partner.py)."""
    return Partner(proxy, blobs.src)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(proxy: PendingCopyProxy) -> SettingsFactory:
    ledger = f"ledger-{uuid.uuid4().hex[:10]}"

    def build(**overrides: str) -> Settings:
        env = {
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": ledger,
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*,partner.example.net",
            "COPY_SWEEP_CONCURRENCY": "8",
            # Copy Blob's behaviour is what most tests hold (pending copies, aborts); the
            # engines' own tests name theirs (tests/test_blocks_engine.py, test_blocks_jobs.py).
            "COPY_ENGINE": "async",
        }
        env.update(overrides)
        return Settings.from_env(env)

    return build


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


_opened: list[BlobStorage] = []


def open_storage(settings: Settings) -> BlobStorage:
    """A storage client for the test, closed when the test ends."""
    storage = run(BlobStorage.connect(settings.storage, **TEST_CLIENT_OPTIONS))
    _opened.append(storage)
    return storage


def connect(settings: Settings) -> AppService:
    return AppService(settings, open_storage(settings))


@pytest.fixture(autouse=True)
def _close_storage() -> Iterator[None]:
    yield
    while _opened:
        run(_opened.pop().close())


@pytest.fixture
def service(settings: Settings) -> AppService:
    return connect(settings)


Handlers = dict[str, Callable[..., Any]]

# Every kind of credential the app can hold for its own account, as a connection string.
CREDENTIAL_KINDS = ("account_key", "sas_connection_string")


def sas_connection_string(port: int, queue_port: int | None = None) -> str:
    """A connection string that carries an account SAS instead of the key, as
    ``BlobEndpoint=...;SharedAccessSignature=...`` from the portal does (for the blob
    service, and the queue service when ``queue_port`` is given)."""
    sas = account_sas(timedelta(hours=6), queue=queue_port is not None)
    queue = f"QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};" if queue_port is not None else ""
    return f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};{queue}SharedAccessSignature={sas}"


def credential_connection_string(kind: str, proxy: PendingCopyProxy) -> str:
    if kind == "account_key":
        return proxy.connection_string
    return sas_connection_string(proxy.port, proxy.queue_proxy.port if proxy.queue_proxy is not None else None)


@pytest.fixture(params=CREDENTIAL_KINDS)
def credential(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every credential kind (identity mode has its own harness)."""
    return str(request.param)


def use_app_settings(monkeypatch: pytest.MonkeyPatch, blobs: Blobs, connection: str) -> Handlers:
    monkeypatch.setenv("COPY_STORAGE", connection)
    monkeypatch.setenv("COPY_LEDGER_CONTAINER", f"ledger-{blobs.src[-10:]}")
    # A work queue of the test's own, as its ledger: a message left by another test names a
    # job of another ledger, which this one would take for a job not recorded yet.
    monkeypatch.setenv("COPY_WORK_QUEUE", f"work-{blobs.src[-10:]}")
    monkeypatch.setenv("COPY_ALLOWED_SOURCE_HOSTS", "127.0.0.1:*")
    monkeypatch.setenv("COPY_ALLOWED_DESTINATION_CONTAINERS", "dst-*")
    return functions(load_function_app())


@pytest.fixture
def handlers(proxy: PendingCopyProxy, blobs: Blobs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handlers]:
    yield use_app_settings(monkeypatch, blobs, proxy.connection_string)
    run(runtime.reset())


@pytest.fixture
def handlers_by_credential(
    proxy: PendingCopyProxy, blobs: Blobs, monkeypatch: pytest.MonkeyPatch, credential: str
) -> Iterator[Handlers]:
    """The app's functions, holding each kind of credential in turn."""
    yield use_app_settings(monkeypatch, blobs, credential_connection_string(credential, proxy))
    run(runtime.reset())
