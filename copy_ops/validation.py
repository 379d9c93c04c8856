"""Validation of a start request: every violation found, each naming its field.

Pure: no storage, no clock (``now`` is passed in). Nothing starts unless this passes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote, urlsplit

from copy_ops.errors import FieldError, Forbidden, InvalidRequest
from copy_ops.model import RESERVED_METADATA_PREFIX, BlobRef, CopyRequest, OnAbort
from copy_ops.settings import Settings

KNOWN_FIELDS = frozenset(
    {"source", "destination", "timeout_seconds", "deadline", "metadata", "overwrite", "lease_source", "on_abort"}
)
CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Copy Blob takes the source in a header, URL-encoded: no spaces, controls or raw non-ASCII.
HEADER_SAFE_URL = re.compile(r"^[\x21-\x7e]+$")
# Azure's limit on all metadata names and values of a blob together.
METADATA_MAX_BYTES = 8 * 1024
BLOB_NAME_MAX = 1024
# A deadline closer than this could pass before the copy has even been started.
MIN_TIMEOUT_SECONDS = 1
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_copy_request(body: Any, settings: Settings, now: datetime) -> CopyRequest:
    """The validated request, or :class:`InvalidRequest`/:class:`Forbidden` listing every problem."""
    if not isinstance(body, Mapping):
        raise InvalidRequest(
            "the request body must be a JSON object", errors=(FieldError("body", "must be a JSON object"),)
        )
    errors: list[FieldError] = []
    forbidden: list[FieldError] = []
    for name in sorted(set(body) - KNOWN_FIELDS):
        errors.append(FieldError(name, "unknown field"))

    destination = _destination(body.get("destination"), settings, errors, forbidden)
    source_url, source_blob = _source(body.get("source"), settings, errors, forbidden)
    deadline = _deadline(body, settings, now, errors)
    metadata = _metadata(body.get("metadata"), errors)
    overwrite = _boolean(body, "overwrite", errors)
    lease_source = _boolean(body, "lease_source", errors)
    on_abort = _on_abort(body.get("on_abort", "keep"), errors)

    if lease_source and source_url is not None and source_blob is None:
        errors.append(
            FieldError(
                "lease_source",
                "a lease can be held only on a source in the app's own storage account "
                "(its SAS is not kept, so the lease could not be released later)",
            )
        )
    if destination is not None and source_blob is not None and source_blob == destination:
        errors.append(FieldError("destination", "must differ from the source"))

    if errors:
        raise InvalidRequest(_summary(errors), errors=tuple(errors))
    if forbidden:
        raise Forbidden(_summary(forbidden), errors=tuple(forbidden))
    assert destination is not None and deadline is not None and on_abort is not None
    return CopyRequest(
        source_url=source_url,
        source_blob=source_blob,
        destination=destination,
        deadline=deadline,
        metadata=metadata,
        overwrite=overwrite,
        lease_source=lease_source,
        on_abort=on_abort,
        fingerprint=fingerprint(body),
    )


def fingerprint(body: Mapping[str, Any]) -> str:
    """A digest of the body as given: a replay with the same body matches, any change does not."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _summary(errors: list[FieldError]) -> str:
    return "; ".join(f"{error.field}: {error.message}" for error in errors)


def _blob_ref(value: Any, field: str, errors: list[FieldError]) -> BlobRef | None:
    if not isinstance(value, Mapping):
        errors.append(FieldError(field, "must be an object with container and blob"))
        return None
    extra = sorted(set(value) - {"container", "blob"})
    for name in extra:
        errors.append(FieldError(f"{field}.{name}", "unknown field"))
    container, blob = value.get("container"), value.get("blob")
    ok = not extra
    if not isinstance(container, str) or not CONTAINER_NAME.match(container):
        errors.append(
            FieldError(
                f"{field}.container",
                "must be a container name: 3-63 lowercase letters, digits and single hyphens",
            )
        )
        ok = False
    if not isinstance(blob, str) or not blob_name_ok(blob):
        errors.append(FieldError(f"{field}.blob", f"must be a blob name of 1-{BLOB_NAME_MAX} characters"))
        ok = False
    return BlobRef(container, blob) if ok else None  # type: ignore[arg-type]


def blob_name_ok(name: str) -> bool:
    return (
        0 < len(name) <= BLOB_NAME_MAX
        and not name.endswith((".", "/"))
        and all(ch.isprintable() for ch in name)
        and "\\" not in name
    )


def _destination(
    value: Any, settings: Settings, errors: list[FieldError], forbidden: list[FieldError]
) -> BlobRef | None:
    if value is None:
        errors.append(FieldError("destination", "is required"))
        return None
    ref = _blob_ref(value, "destination", errors)
    if ref is None:
        return None
    if ref.container == settings.ledger_container:
        forbidden.append(FieldError("destination.container", "is the ledger's own container"))
    elif not any(fnmatchcase(ref.container, pattern) for pattern in settings.allowed_destination_containers):
        forbidden.append(FieldError("destination.container", "is not in COPY_ALLOWED_DESTINATION_CONTAINERS"))
    return ref


def _source(
    value: Any, settings: Settings, errors: list[FieldError], forbidden: list[FieldError]
) -> tuple[str | None, BlobRef | None]:
    if value is None:
        errors.append(FieldError("source", "is required"))
        return None, None
    if isinstance(value, Mapping):
        ref = _blob_ref(value, "source", errors)
        if ref is not None and ref.container == settings.ledger_container:
            forbidden.append(FieldError("source.container", "is the ledger's own container"))
        return None, ref
    if not isinstance(value, str):
        errors.append(FieldError("source", "must be a blob URL or an object with container and blob"))
        return None, None
    if not HEADER_SAFE_URL.match(value):
        errors.append(FieldError("source", "must be URL-encoded: no spaces, control or non-ASCII characters"))
        return None, None
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        errors.append(FieldError("source", "must be an absolute https URL of a blob"))
        return None, None
    if parts.scheme == "http" and not _is_loopback(host):
        errors.append(FieldError("source", "must use https (http only for the local emulator on loopback)"))
        return None, None
    if len(parts.path.strip("/").split("/")) < 2:
        errors.append(FieldError("source", "must name a container and a blob in its path"))
        return None, None
    netloc = parts.netloc.rsplit("@", 1)[-1].lower()
    if not any(fnmatchcase(netloc, pattern) or fnmatchcase(host, pattern) for pattern in settings.allowed_source_hosts):
        forbidden.append(FieldError("source", f"host {netloc} is not in COPY_ALLOWED_SOURCE_HOSTS"))
        return None, None
    return value, _own_account_blob(value, settings)


def _own_account_blob(url: str, settings: Settings) -> BlobRef | None:
    """The source as a blob of the app's own account, when the URL points there."""
    endpoint = urlsplit(settings.storage.blob_endpoint)
    parts = urlsplit(url)
    if parts.netloc.lower() != endpoint.netloc.lower():
        return None
    path = unquote(parts.path)
    prefix = endpoint.path.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    container, _, blob = path[len(prefix) :].partition("/")
    if not CONTAINER_NAME.match(container) or not blob_name_ok(blob):
        return None
    return BlobRef(container, blob)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _deadline(body: Mapping[str, Any], settings: Settings, now: datetime, errors: list[FieldError]) -> datetime | None:
    has_timeout, has_deadline = "timeout_seconds" in body, "deadline" in body
    if has_timeout and has_deadline:
        errors.append(FieldError("deadline", "give either timeout_seconds or deadline, not both"))
        return None
    low, high = MIN_TIMEOUT_SECONDS, settings.max_timeout_seconds
    if has_deadline:
        text = body["deadline"]
        if not isinstance(text, str) or not _RFC3339.match(text):
            errors.append(
                FieldError("deadline", "must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T03:00:00Z")
            )
            return None
        try:
            deadline = datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            errors.append(FieldError("deadline", "is not a valid date-time"))
            return None
        seconds = (deadline - now).total_seconds()
        if not low <= seconds <= high:
            errors.append(FieldError("deadline", f"must be between {low} s and {high} s from now"))
            return None
        return deadline
    timeout = body.get("timeout_seconds", settings.default_timeout_seconds)
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        errors.append(FieldError("timeout_seconds", "must be a whole number of seconds"))
        return None
    if not low <= timeout <= high:
        errors.append(FieldError("timeout_seconds", f"must be between {low} and {high}"))
        return None
    return now + timedelta(seconds=timeout)


def _metadata(value: Any, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(FieldError("metadata", "must be an object of string names to string values"))
        return {}
    size = 0
    seen: set[str] = set()
    ok = True
    for name, item in value.items():
        field = f"metadata.{name}"
        if not METADATA_NAME.match(name):
            errors.append(
                FieldError(field, "names must be C# identifiers: letters, digits and _, not starting with a digit")
            )
            ok = False
        elif name.lower().startswith(RESERVED_METADATA_PREFIX):
            errors.append(FieldError(field, f"names starting with {RESERVED_METADATA_PREFIX!r} are reserved"))
            ok = False
        elif name.lower() in seen:
            errors.append(FieldError(field, "names are case-insensitive and must be unique"))
            ok = False
        seen.add(name.lower())
        if not isinstance(item, str):
            errors.append(FieldError(field, "must be a string"))
            ok = False
            continue
        if not item.isascii() or not item.isprintable() or item != item.strip():
            errors.append(FieldError(field, "must be printable ASCII without leading or trailing spaces"))
            ok = False
        size += len(name) + len(item)
    if size > METADATA_MAX_BYTES:
        errors.append(FieldError("metadata", f"names and values together exceed {METADATA_MAX_BYTES} bytes"))
        ok = False
    return dict(value) if ok else {}


def _boolean(body: Mapping[str, Any], name: str, errors: list[FieldError]) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        errors.append(FieldError(name, "must be true or false"))
        return False
    return value


def _on_abort(value: Any, errors: list[FieldError]) -> OnAbort | None:
    try:
        return OnAbort(value)
    except (ValueError, TypeError):
        errors.append(FieldError("on_abort", "must be one of keep, delete, restore"))
        return None
