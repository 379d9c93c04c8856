"""App settings, read once from the environment into a frozen object.

:meth:`Settings.from_env` reads every setting it knows on every call, so a test can
record exactly which names the code reads and check that ``local.settings.sample.json``
carries each of them. A missing or malformed setting raises one
:class:`~copy_ops.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from copy_ops import names, urls
from copy_ops.errors import ConfigurationError
from copy_ops.ncrontab import Schedule, ScheduleError

# The emulator's well-known endpoint, as the SDK expands ``UseDevelopmentStorage=true``.
_DEVELOPMENT_BLOB_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"

# Azure fails a copy still pending after two weeks; deadlines stay well below that.
AZURE_COPY_LIMIT_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class StorageConnection:
    """How to reach the account the copies go to: a connection string or an identity."""

    connection_string: str | None = None
    blob_service_uri: str | None = None
    client_id: str | None = None

    def __repr__(self) -> str:
        # The connection string holds the account key: never print it.
        kind = "connection string" if self.connection_string else "identity"
        return f"StorageConnection({kind}, endpoint={self.blob_endpoint!r})"

    @property
    def blob_endpoint(self) -> str:
        if self.blob_service_uri:
            return self.blob_service_uri.rstrip("/")
        return blob_endpoint_of(self.connection_string or "")

    @property
    def account(self) -> urls.Account:
        return urls.endpoint_account(self.blob_endpoint)


@dataclass(frozen=True)
class Settings:
    """Every app setting, parsed. The defaults here are the only ones: :meth:`from_env`
    reads them from these fields."""

    storage: StorageConnection
    sweep_schedule: str = "0 */1 * * * *"
    default_timeout_seconds: int = 3600
    max_timeout_seconds: int = 604800
    # Empty: the app's own account only (from_env puts its host here).
    allowed_source_hosts: tuple[str, ...] = ()
    allowed_destination_containers: tuple[str, ...] = ("*",)
    ledger_container: str = "copy-operations"
    # The measured best (docs/performance.md).
    sweep_concurrency: int = 32
    # Consumption's default functionTimeout is 5 minutes; host.json sets it to 5 minutes
    # too, so the default budget leaves a minute to finish in-flight work.
    sweep_budget_seconds: int = 240
    first_check_seconds: int = 15
    max_check_interval_seconds: int = 300
    start_grace_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        storage = _storage_connection(reader)
        limit = AZURE_COPY_LIMIT_SECONDS
        default_timeout = reader.integer("COPY_DEFAULT_TIMEOUT_SECONDS", "default_timeout_seconds", 1, limit)
        max_timeout = reader.integer("COPY_MAX_TIMEOUT_SECONDS", "max_timeout_seconds", 1, limit - 3600)
        if default_timeout > max_timeout:
            raise ConfigurationError(
                "COPY_DEFAULT_TIMEOUT_SECONDS must not exceed COPY_MAX_TIMEOUT_SECONDS",
                code="COPY_DEFAULT_TIMEOUT_SECONDS",
            )
        ledger = reader.text("COPY_LEDGER_CONTAINER", "ledger_container")
        if names.container_problem(ledger) is not None:
            raise ConfigurationError(
                f"COPY_LEDGER_CONTAINER {ledger!r} is not a valid container name",
                code="COPY_LEDGER_CONTAINER",
            )
        first_check = reader.integer("COPY_FIRST_CHECK_SECONDS", "first_check_seconds", 1, 86400)
        own_host = urlsplit(storage.blob_endpoint).netloc.lower()
        return cls(
            storage=storage,
            sweep_schedule=_schedule(reader.text("COPY_SWEEP_SCHEDULE", "sweep_schedule")),
            default_timeout_seconds=default_timeout,
            max_timeout_seconds=max_timeout,
            allowed_source_hosts=reader.host_patterns("COPY_ALLOWED_SOURCE_HOSTS", (own_host,)),
            allowed_destination_containers=reader.patterns(
                "COPY_ALLOWED_DESTINATION_CONTAINERS", "allowed_destination_containers"
            ),
            ledger_container=ledger,
            sweep_concurrency=reader.integer("COPY_SWEEP_CONCURRENCY", "sweep_concurrency", 1, 256),
            sweep_budget_seconds=reader.integer("COPY_SWEEP_BUDGET_SECONDS", "sweep_budget_seconds", 1, 3600),
            first_check_seconds=first_check,
            max_check_interval_seconds=reader.integer(
                "COPY_MAX_CHECK_INTERVAL_SECONDS", "max_check_interval_seconds", first_check, 86400
            ),
            start_grace_seconds=reader.integer("COPY_START_GRACE_SECONDS", "start_grace_seconds", 1, 3600),
        )


_DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(Settings)}


class _Reader:
    """Reads one setting at a time; an unset or blank setting is its field's default."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, field: str) -> str:
        return self.raw(name) or str(_DEFAULTS[field])

    def integer(self, name: str, field: str, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return int(_DEFAULTS[field])
        if not (value.isascii() and value.lstrip("-").isdigit()):
            raise ConfigurationError(f"{name} must be a whole number, not {value!r}", code=name)
        number = int(value)
        if not low <= number <= high:
            raise ConfigurationError(f"{name} must be between {low} and {high}, not {number}", code=name)
        return number

    def patterns(self, name: str, field: str) -> tuple[str, ...]:
        return self._patterns(name, tuple(_DEFAULTS[field]))

    def _patterns(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        items = tuple(item.strip().lower() for item in value.split(",") if item.strip())
        if not items:
            raise ConfigurationError(f"{name} lists no pattern", code=name)
        return items

    def host_patterns(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        items = self._patterns(name, default)
        for item in items:
            try:
                urls.check_host_pattern(item)
            except ValueError as exc:
                raise ConfigurationError(f"{name}: {exc}", code=name) from None
        return items


def _storage_connection(reader: _Reader) -> StorageConnection:
    uri = reader.raw("COPY_STORAGE__blobServiceUri")
    client_id = reader.raw("COPY_STORAGE__clientId")
    # In order of precedence; all are read so that every name the app reads is known.
    candidates = [(name, reader.raw(name)) for name in ("COPY_STORAGE", "AzureWebJobsStorage")]
    if uri:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigurationError(
                "COPY_STORAGE__blobServiceUri must be the account's blob endpoint URL",
                code="COPY_STORAGE__blobServiceUri",
            )
        return StorageConnection(blob_service_uri=uri, client_id=client_id)
    for name, value in candidates:
        if value:
            try:
                blob_endpoint_of(value)
            except ValueError as exc:
                raise ConfigurationError(
                    f"{name} is not a usable storage connection string: {exc}", code=name
                ) from None
            return StorageConnection(connection_string=value)
    raise ConfigurationError(
        "no storage configured: set COPY_STORAGE (a connection string), "
        "COPY_STORAGE__blobServiceUri (identity), or AzureWebJobsStorage",
        code="COPY_STORAGE",
    )


def blob_endpoint_of(connection_string: str) -> str:
    """The blob endpoint a connection string names, without touching the network."""
    pairs: dict[str, str] = {}
    for part in connection_string.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            pairs[key.strip().lower()] = value.strip()
    if pairs.get("usedevelopmentstorage", "").lower() == "true":
        return _DEVELOPMENT_BLOB_ENDPOINT
    if "blobendpoint" in pairs:
        return pairs["blobendpoint"].rstrip("/")
    account = pairs.get("accountname")
    if not account:
        raise ValueError("it names neither BlobEndpoint nor AccountName")
    protocol = pairs.get("defaultendpointsprotocol", "https")
    suffix = pairs.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.blob.{suffix}"


def _schedule(expression: str) -> str:
    try:
        Schedule.parse(expression)
    except ScheduleError as exc:
        raise ConfigurationError(
            f"COPY_SWEEP_SCHEDULE is not a six-field NCRONTAB expression: {exc}", code="COPY_SWEEP_SCHEDULE"
        ) from None
    return expression
