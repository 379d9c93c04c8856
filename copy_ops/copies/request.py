"""Validation of a start request: every violation found, each naming its field.

Pure: no storage, no clock (``now`` is passed in). Nothing starts unless this passes.
Each field is read under :func:`~copy_ops.core.problems.guarded`, so no exception raised
while reading input (an overflow, a recursion, a value of an unexpected type) can
become a 5xx. The source's own rules are in :mod:`copy_ops.copies.sources`, the retry's
in :mod:`copy_ops.copies.retry`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, TypeVar
from urllib.parse import urlsplit

from copy_ops.copies.engines import engine_for, engine_of, escalation_at
from copy_ops.copies.model import RESERVED_METADATA_PREFIX, BlobRef, CopyRequest, Engine, OnAbort, Terms
from copy_ops.copies.retry import SAS_TRIED_ONCE, retry_asked
from copy_ops.copies.sources import NOT_OWN_SOURCE, Source, blob_ref, minted_deadline_problem, read_source
from copy_ops.core.errors import FieldError, InvalidRequest
from copy_ops.core.problems import Problems, guarded
from copy_ops.core.settings import Settings
from copy_ops.core.times import parse_time

# The fields of a start request; a job's request has the same ones.
KNOWN_FIELDS = frozenset(
    {
        "source",
        "destination",
        "timeout_seconds",
        "deadline",
        "metadata",
        "overwrite",
        "lease_source",
        "on_abort",
        "engine",
        "retry",
    }
)

METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Azure's limit on all metadata names and values of a blob together.
METADATA_MAX_BYTES = 8 * 1024
# A deadline closer than this could pass before the copy has even been started.
MIN_TIMEOUT_SECONDS = 1
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

T = TypeVar("T")


def opened(body: Any) -> tuple[Mapping[str, Any], Problems]:
    """A request body that is a JSON object, and its problems so far: each unknown field
    (a typo never falls back to a default). Not an object: :class:`InvalidRequest`."""
    if not isinstance(body, Mapping):
        raise InvalidRequest.of(FieldError("body", "must be a JSON object"))
    problems = Problems()
    for name in sorted(set(body) - KNOWN_FIELDS):
        problems.bad(name, "unknown field")
    return body, problems


def terms_of(
    body: Mapping[str, Any],
    settings: Settings,
    now: datetime,
    problems: Problems,
    *,
    too_far: Callable[[datetime], str | None],
    no_lease: str | None,
    no_retry: str | None = None,
) -> Terms | None:
    """The terms of a copy's or a job's request (None when one is invalid: each problem kept);
    ``too_far``: what is wrong with a deadline beyond what a SAS the app mints for the source
    may cover, if anything; ``no_lease``: why its source cannot be leased, if it cannot;
    ``no_retry``: why its source cannot be tried more than once, if it cannot. ``auto``
    is left to each copy (copy_ops.copies.engines.engine_for), with the moment it escalates."""
    deadline = guarded("deadline", problems, lambda: deadline_of(body, settings, now, problems))
    beyond = too_far(deadline) if deadline is not None else None
    if beyond is not None:
        problems.bad("deadline" if "deadline" in body else "timeout_seconds", beyond)
    metadata = guarded("metadata", problems, lambda: metadata_of(body.get("metadata"), problems)) or {}
    overwrite = boolean_of(body, "overwrite", problems)
    lease_source = boolean_of(body, "lease_source", problems)
    on_abort = on_abort_of(body.get("on_abort", "keep"), problems)
    engine = engine_of(body.get("engine", settings.engine), problems)
    if lease_source and no_lease is not None:
        problems.bad("lease_source", no_lease)
    attempts, backoff = guarded("retry", problems, lambda: retry_asked(body, settings, problems, no_retry)) or (1, 0)
    if deadline is None or on_abort is None or engine is None:
        return None
    escalate_at = escalation_at(now, deadline, settings.escalate_at) if engine is Engine.AUTO else None
    return Terms(
        deadline=deadline,
        on_abort=on_abort,
        metadata=metadata,
        overwrite=overwrite,
        lease_source=lease_source,
        engine=engine,
        escalate_at=escalate_at,
        retry_attempts=attempts,
        retry_backoff_seconds=backoff,
    )


def parse_copy_request(body: Any, settings: Settings, now: datetime) -> CopyRequest:
    """The validated request, or :class:`InvalidRequest`/:class:`Forbidden` listing every problem."""
    body, problems = opened(body)
    destination = guarded("destination", problems, lambda: _destination(body.get("destination"), settings, problems))
    source = guarded("source", problems, lambda: read_source(body.get("source"), settings, problems)) or Source()
    own = source.blob is not None
    # The block engine reads with the app's token, not a SAS it mints: no key's lifetime limits it.
    asked = engine_of(body.get("engine", settings.engine), Problems())
    blocks = asked is Engine.BLOCKS or (asked is Engine.AUTO and not own)

    def too_far(deadline: datetime) -> str | None:
        return None if blocks else minted_deadline_problem(source, deadline, now, settings)

    source_url, source_blob = source.url, source.blob
    elsewhere = source_blob is None and (source_url is not None or source.foreign is not None)
    no_lease = NOT_OWN_SOURCE if elsewhere else None
    no_retry = SAS_TRIED_ONCE if source_url is not None and urlsplit(source_url).query else None
    terms = terms_of(body, settings, now, problems, too_far=too_far, no_lease=no_lease, no_retry=no_retry)
    if destination is not None and source_blob is not None and source_blob == destination:
        problems.bad("destination", "must differ from the source")

    problems.raise_any()
    assert destination is not None and terms is not None
    return CopyRequest(
        source_url=source_url,
        source_blob=source_blob,
        destination=destination,
        terms=engine_for(terms, own),
        fingerprint=fingerprint(body),
        source_foreign=source.foreign,
    )


def fingerprint(body: Mapping[str, Any]) -> str:
    """A digest of the body as given: a replay with the same body matches, any change does not."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _destination(value: Any, settings: Settings, problems: Problems) -> BlobRef | None:
    if value is None:
        problems.bad("destination", "is required")
        return None
    ref = blob_ref(value, "destination", problems)
    if ref is None:
        return None
    check_destination_container(ref.container, settings, problems)
    return ref


def check_destination_container(container: str, settings: Settings, problems: Problems) -> None:
    """The settings' say on a destination container (its name is valid already)."""
    if container == settings.ledger_container:
        problems.deny("destination.container", "is the ledger's own container")
    elif not any(fnmatchcase(container, pattern) for pattern in settings.allowed_destination_containers):
        problems.deny("destination.container", "is not in COPY_ALLOWED_DESTINATION_CONTAINERS")


def deadline_of(body: Mapping[str, Any], settings: Settings, now: datetime, problems: Problems) -> datetime | None:
    has_timeout, has_deadline = "timeout_seconds" in body, "deadline" in body
    if has_timeout and has_deadline:
        problems.bad("deadline", "give either timeout_seconds or deadline, not both")
        return None
    low, high = MIN_TIMEOUT_SECONDS, settings.max_timeout_seconds
    if has_deadline:
        text = body["deadline"]
        if not isinstance(text, str) or not _RFC3339.fullmatch(text):
            problems.bad("deadline", "must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T03:00:00Z")
            return None
        try:
            deadline = parse_time(text)
        except (ValueError, OverflowError):
            # 9999-12-31T23:59:59-23:59 is past the last datetime once in UTC.
            problems.bad("deadline", "is not a valid date-time")
            return None
        seconds = (deadline - now).total_seconds()
        if not low <= seconds <= high:
            problems.bad("deadline", f"must be between {low} s and {high} s from now")
            return None
        return deadline
    timeout = body.get("timeout_seconds", settings.default_timeout_seconds)
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        problems.bad("timeout_seconds", "must be a whole number of seconds")
        return None
    if not low <= timeout <= high:
        problems.bad("timeout_seconds", f"must be between {low} and {high}")
        return None
    return now + timedelta(seconds=timeout)


def metadata_of(value: Any, problems: Problems) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.bad("metadata", "must be an object of string names to string values")
        return {}
    size = 0
    seen: set[str] = set()
    ok = True
    for name, item in value.items():
        field = f"metadata.{name}"
        if not isinstance(name, str) or not METADATA_NAME.fullmatch(name):
            problems.bad(field, "names must be C# identifiers: letters, digits and _, not starting with a digit")
            ok = False
        elif name.lower().startswith(RESERVED_METADATA_PREFIX):
            problems.bad(field, f"names starting with {RESERVED_METADATA_PREFIX!r} are reserved")
            ok = False
        elif name.lower() in seen:
            problems.bad(field, "names are case-insensitive and must be unique")
            ok = False
        seen.add(str(name).lower())
        if not isinstance(item, str):
            problems.bad(field, "must be a string")
            ok = False
            continue
        if not item.isascii() or not item.isprintable() or item != item.strip():
            problems.bad(field, "must be printable ASCII without leading or trailing spaces")
            ok = False
        size += len(name) + len(item)
    if size > METADATA_MAX_BYTES:
        problems.bad("metadata", f"names and values together exceed {METADATA_MAX_BYTES} bytes")
        ok = False
    return dict(value) if ok else {}


def boolean_of(body: Mapping[str, Any], name: str, problems: Problems) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        problems.bad(name, "must be true or false")
        return False
    return value


def on_abort_of(value: Any, problems: Problems) -> OnAbort | None:
    try:
        return OnAbort(value)
    except (ValueError, TypeError):
        problems.bad("on_abort", "must be one of keep, delete, restore")
        return None
