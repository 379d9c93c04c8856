"""How the app reaches its storage account, read as the Functions runtime names it.

Two families of settings, in this order, the first one present wins:

* ``COPY_STORAGE``: a connection string, or, identity-based, ``COPY_STORAGE__blobServiceUri``
  (or ``__accountName``), with ``__queueServiceUri``, ``__credential`` and ``__clientId``;
* ``AzureWebJobsStorage``, the host's own storage, in the same two forms (the standard
  Flex Consumption templates give an app only ``AzureWebJobsStorage__blobServiceUri``,
  ``__credential=managedidentity`` and ``__clientId``: that is enough).

Within a family, a connection string and an identity endpoint together, or an
``__accountName`` beside a ``__blobServiceUri``, contradict each other: one error,
naming both. Every name is read on every call (see :mod:`copy_ops.core.settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from copy_ops.core import urls
from copy_ops.core.errors import ConfigurationError

FAMILIES = ("COPY_STORAGE", "AzureWebJobsStorage")
IDENTITY_SUFFIXES = ("__blobServiceUri", "__accountName", "__queueServiceUri", "__credential", "__clientId")
# The only value of __credential that the Functions runtime defines for identity connections.
MANAGED_IDENTITY = "managedidentity"
# The emulator's well-known endpoints, as the SDK expands ``UseDevelopmentStorage=true``.
_DEVELOPMENT = {"blob": "http://127.0.0.1:10000/devstoreaccount1", "queue": "http://127.0.0.1:10001/devstoreaccount1"}


@dataclass(frozen=True)
class StorageConnection:
    """A connection string, or an identity and the account's endpoints."""

    connection_string: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    # A user-assigned managed identity; None: the system-assigned one (or a developer's login).
    client_id: str | None = None
    # The setting family it was read from, for error messages.
    setting: str = "COPY_STORAGE"

    def __repr__(self) -> str:
        # The connection string holds the account key or a SAS: never print it.
        kind = "connection string" if self.connection_string else "identity"
        return f"StorageConnection({kind}, {self.setting}, endpoint={self.blob_endpoint!r})"

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    @property
    def shared_access_signature(self) -> str | None:
        """The SAS of a connection string that carries one instead of a key."""
        return pairs_of(self.connection_string or "").get("sharedaccesssignature")

    @property
    def blob_endpoint(self) -> str:
        if self.blob_service_uri:
            return self.blob_service_uri.rstrip("/")
        return endpoint_of(self.connection_string or "", "blob")

    @property
    def queue_endpoint(self) -> str:
        if self.queue_service_uri:
            return self.queue_service_uri.rstrip("/")
        if self.connection_string:
            return endpoint_of(self.connection_string, "queue")
        return _sibling(self.blob_endpoint, "queue")

    @property
    def account(self) -> urls.Account:
        return urls.endpoint_account(self.blob_endpoint)


def read_connection(raw: Callable[[str], str | None]) -> StorageConnection:
    """The connection from the settings ``raw`` returns (None for unset or blank)."""
    found = [_family(raw, family) for family in FAMILIES]  # every name read, always
    for connection in found:
        if connection is not None:
            return connection
    raise ConfigurationError(
        "no storage configured: set COPY_STORAGE (a connection string) or COPY_STORAGE__blobServiceUri "
        "(an identity), or the host's AzureWebJobsStorage in either form",
        code="COPY_STORAGE",
    )


def binding_connection(raw: Callable[[str], str | None]) -> str:
    """The name a trigger binding's ``connection`` gives the host: the family the app's own
    storage comes from, so that its queue trigger reads the queue the app writes to."""
    copy_storage = (raw(FAMILIES[0]), *(raw(FAMILIES[0] + suffix) for suffix in IDENTITY_SUFFIXES))
    return FAMILIES[0] if any(copy_storage) else FAMILIES[1]


def _family(raw: Callable[[str], str | None], family: str) -> StorageConnection | None:
    string = raw(family)
    uri, account, queue, credential, client_id = (raw(family + suffix) for suffix in IDENTITY_SUFFIXES)
    identity = uri or account
    if string and identity:
        given = f"{family}__blobServiceUri" if uri else f"{family}__accountName"
        raise _error(f"{family} and {given} are both set: give a connection string or an identity, not both", family)
    if uri and account:
        raise _error(f"{family}__blobServiceUri and {family}__accountName are both set: give one", family)
    if credential is not None and credential.lower() != MANAGED_IDENTITY:
        raise _error(f"{family}__credential must be {MANAGED_IDENTITY!r} or unset, not {credential!r}", family)
    if string:
        if client_id or credential:
            raise _error(f"{family}__clientId and __credential go with an identity, not a connection string", family)
        try:
            endpoint_of(string, "blob")
        except ValueError as exc:
            raise _error(f"{family} is not a usable storage connection string: {exc}", family) from None
        return StorageConnection(connection_string=string, setting=family)
    if not identity:
        if queue or credential or client_id:
            raise _error(
                f"{family}__blobServiceUri (or __accountName) is needed with the other {family}__ settings", family
            )
        return None
    blob_uri = uri or f"https://{account}.blob.core.windows.net"
    for name, value in ((f"{family}__blobServiceUri", blob_uri), (f"{family}__queueServiceUri", queue)):
        if value is not None and not _is_endpoint(value):
            raise _error(f"{name} must be the account's endpoint URL (https; http only on loopback)", family)
    return StorageConnection(blob_service_uri=blob_uri, queue_service_uri=queue, client_id=client_id, setting=family)


def _is_endpoint(value: str) -> bool:
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and urls.is_loopback(host)))


def _error(detail: str, family: str) -> ConfigurationError:
    return ConfigurationError(detail, code=family)


def pairs_of(connection_string: str) -> dict[str, str]:
    """A connection string's ``key=value`` pairs, keys lower-cased."""
    pairs: dict[str, str] = {}
    for part in connection_string.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            pairs[key.strip().lower()] = value.strip()
    return pairs


def endpoint_of(connection_string: str, service: str) -> str:
    """The ``blob`` or ``queue`` endpoint a connection string names, without touching the network."""
    pairs = pairs_of(connection_string)
    if pairs.get("usedevelopmentstorage", "").lower() == "true":
        return _DEVELOPMENT[service]
    if f"{service}endpoint" in pairs:
        return pairs[f"{service}endpoint"].rstrip("/")
    if service != "blob" and "blobendpoint" in pairs:
        return _sibling(pairs["blobendpoint"].rstrip("/"), service)
    account = pairs.get("accountname")
    if not account:
        raise ValueError(f"it names neither {service.capitalize()}Endpoint nor AccountName")
    protocol = pairs.get("defaultendpointsprotocol", "https")
    suffix = pairs.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.{service}.{suffix}"


def _sibling(blob_endpoint: str, service: str) -> str:
    """Another service's endpoint of the same account: ``.blob.`` becomes ``.queue.``; on
    the emulator (path-style), the next port (10000 blob, 10001 queue)."""
    parts = urlsplit(blob_endpoint)
    if urls.is_path_style((parts.hostname or "").lower()) and parts.port:
        return blob_endpoint.replace(f":{parts.port}", f":{parts.port + 1}", 1)
    return blob_endpoint.replace(".blob.", f".{service}.", 1)
