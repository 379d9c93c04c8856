"""SDK exceptions and Azure's error codes, translated into :mod:`copy_ops.core.errors` once.

Azure's error code strings appear here and nowhere else in copy-ops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

from copy_ops.core.errors import (
    BlocksMissing,
    ConditionNotMet,
    Conflict,
    ContainerMissing,
    CopyIdMismatch,
    CopyOpsError,
    DestinationChanged,
    FieldError,
    Forbidden,
    InvalidRequest,
    NoPendingCopy,
    NotFound,
    PreconditionFailed,
    SourceChanged,
    StorageFault,
    StorageUnavailable,
)
from copy_ops.core.redaction import redact

T = TypeVar("T")

# Above the SDK's own worst case for one call (4 tries of 5 s to connect and 30 s to
# read, plus about 8 s of backoff): a wait this long means something is stuck.
WAIT_SECONDS = 180.0

# Copy Blob's refusal to read its source (no rights, a bad SAS, or no such blob).
CANNOT_VERIFY_SOURCE = "CannotVerifyCopySource"
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# What storage's refusals mean. On a request the caller's input shaped (their source and
# its SAS, their destination, their lease: ``callers=True``), a 400 or 403 or 412 is the
# caller's; on the app's own requests (its records, its queue, its cleanup) a 400 or 403
# is a fault of the app or of its configuration, never reported as the caller's 4xx: it
# falls through to StorageFault below, as every other answer copy-ops does not expect.
_BY_STATUS: dict[int, type[CopyOpsError]] = {
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
}
_CALLERS: dict[int, type[CopyOpsError]] = {
    400: InvalidRequest,
    403: Forbidden,
    412: ConditionNotMet,
}
# The storage outcomes the lifecycle acts on, by Azure's error code.
_BY_CODE: dict[str, type[CopyOpsError]] = {
    "ContainerNotFound": ContainerMissing,
    "QueueNotFound": ContainerMissing,
    "CopyIdMismatch": CopyIdMismatch,
    "NoPendingCopyOperation": NoPendingCopy,
}


# The block engine's refusals: its source's condition (the pinned ETag) unmet, and a block
# list naming a block that is not staged. A source that cannot be read is answered
# CannotVerifyCopySource with the source's own status in this header (and as the answer's
# own status: service versions before 2023 send no header). Azure answers the pinned ETag
# unmet with 412 SourceConditionNotMet (as the stand-in does); versions before 2023 answered
# 412 CannotVerifyCopySource: both are a source changed.
SOURCE_STATUS_HEADER = "x-ms-copy-source-status-code"
SOURCE_CODE_HEADER = "x-ms-copy-source-error-code"
_SOURCE_CHANGED = frozenset({"SourceConditionNotMet"})
_BLOCKS_MISSING = frozenset({"InvalidBlockList"})
# The destination's own conditions (If-None-Match: *, If-Match), unmet. Not a lease
# (LeaseIdMissing, also 412): that refusal is the caller's, as any other.
_DESTINATION_CHANGED = frozenset({"BlobAlreadyExists", "ConditionNotMet"})
# A source that cannot be read, by the source's own status. Azure answers a private blob
# read with no authorization 401 (NoAuthenticationInformation), or 409 where the account
# allows no public access (PublicAccessNotPermitted), a token it refuses 400
# (InvalidAuthenticationInfo), a SAS without the right 403: each is the caller's source,
# which the app may not read (recorded: tests/data/azure-answers; tests/test_azure_answers.py).
_SOURCE_REFUSALS: dict[int, type[CopyOpsError]] = {
    400: Forbidden,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Forbidden,
    412: SourceChanged,
}


# A blob the caller named that is not there. On the caller's requests storage answers
# BlobNotFound of the source only (Copy Blob of a source in the destination's account, the
# source's properties, its lease): the destination's container missing is ContainerNotFound, a
# destination blob missing no refusal (recorded: Copy Blob of a missing source in the same
# account, 404 BlobNotFound). The caller's source: a 404 naming ``source``.
_SOURCE_MISSING = frozenset({"BlobNotFound"})


def block_refusal(exc: HttpResponseError, *, pinned: bool = False) -> CopyOpsError | None:
    """What a refusal of Put Block From URL, Put Blob From URL or Put Block List means to the
    block engine, when it is one of its own (else None: translate as any other). ``pinned``:
    the source was read at its pinned ETag, so a source gone is a source changed."""
    code = error_code(exc)
    message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if code in _SOURCE_CHANGED:
        return SourceChanged(message, code=code)
    if code in _BLOCKS_MISSING:
        return BlocksMissing(message, code=code)
    if code in _DESTINATION_CHANGED:
        return DestinationChanged(message, code=code)
    if code == CANNOT_VERIFY_SOURCE:
        return source_refusal(exc, pinned=pinned)
    return None


def source_refusal(exc: HttpResponseError, *, pinned: bool = False) -> CopyOpsError | None:
    """A copy's refusal to read its source (``CannotVerifyCopySource``; or ``BlobNotFound``,
    the source's own answer, for a source in the destination's account), read by the source's
    own status (its header; the answer's own status where a service version sends none) and
    never by the SDK's exception class, which differs between Azure and the emulators. The
    caller's source: a 4xx naming ``source``. ``pinned``: a source gone is a source changed."""
    headers = getattr(exc.response, "headers", None) or {}
    code = error_code(exc) or CANNOT_VERIFY_SOURCE
    said = str(headers.get(SOURCE_STATUS_HEADER) or exc.status_code or "")
    kind = _SOURCE_REFUSALS.get(int(said)) if said.isdigit() else None
    if kind is NotFound and pinned:
        kind = SourceChanged  # the version pinned is gone
    message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if kind is SourceChanged:
        return SourceChanged(message, code=CANNOT_VERIFY_SOURCE)  # storage's words, once: the engine names it
    if kind is None:
        return None
    source_code = headers.get(SOURCE_CODE_HEADER) or (code if code != CANNOT_VERIFY_SOURCE else None)
    why = " ".join(part for part in (said, source_code) if part)
    advice = "no such blob" if kind is NotFound else "give a SAS in its URL, or the app's identity a role there"
    detail = f"the copy source could not be read ({why}): {advice}"
    return kind(detail, code=code, errors=(FieldError("source", detail),))


def error_code(exc: HttpResponseError) -> str | None:
    """Azure's error code of a storage error (the SDK sets an enum or a string)."""
    raw = getattr(exc, "error_code", None)
    return str(getattr(raw, "value", raw)) if raw else None


def translate(exc: AzureError, callers: bool = False) -> CopyOpsError:
    """The copy-ops error for an SDK exception; ``callers``: the request was shaped by the
    caller's input (see ``_CALLERS``). The message is redacted."""
    message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = error_code(exc)
        if code in _BY_CODE:
            return _BY_CODE[code](message, code=code)
        read_source = code == CANNOT_VERIFY_SOURCE or code in _SOURCE_MISSING
        refused = source_refusal(exc) if callers and read_source else None
        if refused is not None:
            return refused
        if callers and exc.status_code in _CALLERS:
            return _CALLERS[exc.status_code](message, code=code)
        if exc.status_code in _BY_STATUS:
            return _BY_STATUS[exc.status_code](message, code=code)
        if exc.status_code in _TRANSIENT_STATUSES:
            return StorageUnavailable(message, code=code)
        return StorageFault(message, code=code)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnavailable(message, code="StorageUnreachable")
    return StorageUnavailable(message, code=type(exc).__name__)


@contextmanager
def storage_errors(callers: bool = False) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        # "from None": the SDK's exception text can hold URLs with a SAS.
        raise translate(exc, callers) from None


async def ignoring(call: Awaitable[T], *statuses: int) -> T | None:
    """The call's result, or None when storage answers one of ``statuses`` (a blob
    already gone, a lease already released: the outcome the caller wanted)."""
    try:
        return await call
    except HttpResponseError as exc:
        if exc.status_code in statuses:
            return None
        raise


async def bounded_wait(call: Awaitable[T], timeout: float = WAIT_SECONDS, *, callers: bool = False) -> T:
    """``call``, its SDK errors translated, never waited on longer than ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            with storage_errors(callers):
                return await call
    except TimeoutError:
        raise StorageUnavailable(f"storage did not answer within {timeout:.0f} s", code="Timeout") from None
