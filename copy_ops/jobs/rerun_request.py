"""Validation of a request to retry a job's failed items (``POST /api/jobs/{id}/retry``):
every violation found, each naming its field. Pure.

The body asks for a new deadline (``timeout_seconds`` or ``deadline``, defaulted as a job's
is), optionally the items' ``retry`` (else the first job's), ``include_aborted`` (the first
job's aborted items too), and ``sas``: the query string to read again sources the first job
read with the caller's SAS, which copy-ops never keeps. Everything else (destination,
``overwrite``, ``on_abort``, metadata, the engine) is the first job's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from copy_ops.copies.model import ForeignBlob, ManifestEntry
from copy_ops.copies.request import check_destination_container, deadline_of, fingerprint
from copy_ops.copies.retry import retry_asked
from copy_ops.copies.sources import account_readable, read_source
from copy_ops.core.errors import FieldError, InvalidRequest
from copy_ops.core.problems import Problems, guarded
from copy_ops.core.settings import Settings

RETRY_FIELDS = frozenset({"timeout_seconds", "deadline", "retry", "sas", "include_aborted"})
# A SAS as a query string: name=value pairs joined by &, URL-encoded (printable ASCII, no
# space), with no ? or # of their own. It is appended to each source's URL and sent in Copy
# Blob's header, so anything else (a newline, a second query) would be read differently there.
_NAME, _VALUE = r"""[!"$%'-<>@-~]+""", r"""[!"$%'->@-~]*"""
# Printable ASCII but for # & ? = in a name, # & ? in a value. (The API document's
# JobRetryRequest.sas has the same pattern.)
SAS_QUERY = re.compile(rf"\??{_NAME}={_VALUE}(?:&{_NAME}={_VALUE})*")


@dataclass(frozen=True)
class RetryAsk:
    """A validated retry request: the new deadline, the retry asked (None: the first job's),
    whether aborted items are run again too, the caller's SAS (here and in messages only)."""

    deadline: datetime
    retry: tuple[int, float] | None
    include_aborted: bool
    sas: str | None
    # Of the body and the first job's id: a key replayed on another job's retry does not match.
    fingerprint: str
    # Whether the body named retry.attempts (a SAS source refuses more than one), and
    # retry.backoff_seconds: a field not named is the first job's.
    attempts_asked: bool
    backoff_asked: bool = False


def parse_retry_request(body: Any, job_id: str, settings: Settings, now: datetime) -> RetryAsk:
    """The validated request, or :class:`InvalidRequest` listing every problem."""
    if body is None:
        body = {}  # no body: every default
    if not isinstance(body, dict):
        raise InvalidRequest.of(FieldError("body", "must be a JSON object"))
    problems = Problems()
    for name in sorted(set(body) - RETRY_FIELDS, key=str):
        problems.bad(name, "unknown field")
    deadline = guarded("deadline", problems, lambda: deadline_of(body, settings, now, problems))
    asked = None
    if "retry" in body:
        asked = guarded("retry", problems, lambda: retry_asked(body, settings, problems, None))
    include_aborted = body.get("include_aborted", False)
    if not isinstance(include_aborted, bool):
        problems.bad("include_aborted", "must be true or false")
    sas = body.get("sas")
    if "sas" in body and not (isinstance(sas, str) and SAS_QUERY.fullmatch(sas)):
        problems.bad("sas", "must be the URL-encoded query string of a SAS that reads the sources, e.g. sv=...&sig=...")
    problems.raise_any()
    assert deadline is not None
    retry = body.get("retry")
    return RetryAsk(
        deadline=deadline,
        retry=asked,
        include_aborted=bool(include_aborted),
        sas=sas.removeprefix("?") if isinstance(sas, str) else None,
        fingerprint=fingerprint({**body, "retry_asked": job_id}),
        attempts_asked=isinstance(retry, dict) and "attempts" in retry,
        backoff_asked=isinstance(retry, dict) and "backoff_seconds" in retry,
    )


def check_items_now(manifest: tuple[ManifestEntry, ...], container: str, settings: Settings) -> None:
    """The settings as they are now on a retry's items, as on any manifest's entries (the
    first job's request met them when parsed; a retry's is built from its records):
    ``COPY_ALLOWED_SOURCE_HOSTS`` and the accounts read for a URL or another account's
    blob, ``COPY_ALLOWED_DESTINATION_CONTAINERS``. 403 naming each (``source.blobs[3]``)."""
    problems = Problems()
    check_destination_container(container, settings, problems)
    for index, entry in enumerate(manifest):
        field, source = f"source.blobs[{index}]", entry.source
        if isinstance(source, str):
            read_source(source, settings, problems, field)
        elif isinstance(source, ForeignBlob):
            account_readable(source.account, settings, problems, field)
    problems.raise_any()
