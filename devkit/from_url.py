"""Put Blob From URL and Put Block From URL, done by the stand-in as Azure does them.

Azurite implements neither (its issue #699) and checks no source authorization. The
pending-copy proxy answers both itself: it reads the source (the whole blob, or the range
``x-ms-source-range`` names) from Azurite **with the authorization the request carries**,
as Azure reads it: a SAS in the source URL, a bearer token in
``x-ms-copy-source-authorization`` (Azurite in OAuth mode checks it: the identity suite's
tokens), or nothing (then only a public blob can be read, as on Azure, and none at all where
the account allows no public access); the source's conditions (``x-ms-source-if-match``,
``-if-none-match``, ``-if-modified-since``, ``-if-unmodified-since``) go with the read.

A refused read is answered as Azure answers it (recorded: tests/test_standin_conformance.py):
an unauthenticated read of a private blob 401, the source's ``NoAuthenticationInformation``
(Azurite says 403 ``AuthorizationFailure``); an account without public access 409
``PublicAccessNotPermitted``; a source authorization that holds no token at all 400, the
source's ``InvalidAuthenticationInfo``; any other the source's status; each with the code
``CannotVerifyCopySource``, and ``x-ms-copy-source-status-code`` and
``x-ms-copy-source-error-code`` naming what the source said, in the body as well. A source
condition unmet is 412 ``SourceConditionNotMet`` (``x-ms-source-if-match``), 412
``CannotVerifyCopySource`` (``-if-unmodified-since``) or 304 ``CannotVerifyCopySource``
(``-if-none-match``, ``-if-modified-since``), with no source headers. A whole blob written
onto a leased blob the request names no lease of is 412 ``LeaseIdMissing`` before any of the
request's own conditions is looked at (Azurite's Put Blob answers ``If-None-Match: *`` first).
Then it writes what it read to Azurite under its own SAS: the block (Put Block) or the whole
blob (Put Blob, with the source's content headers unless ``x-ms-copy-source-blob-properties``
is false, the request's metadata and the destination's conditions).

What it emulates beyond Azurite and was not proven against Azure: the status of refusals no
recording holds (a 404 or a SAS without rights: the source's status), the limits' answer
(413 ``RequestBodyTooLarge`` above 5,000 MiB for a blob and 4,000 MiB for a block), and the
token check (Azurite's OAuth mode checks a token's issuer, audience and times, not roles: any
valid token reads any blob).
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

MIB = 1024 * 1024
# Azure's documented limits (service version 2020-04-08 and later).
BLOB_FROM_URL_LIMIT = 5000 * MIB
BLOCK_FROM_URL_LIMIT = 4000 * MIB
# Source properties that Put Blob From URL carries over by default.
CONTENT_HEADERS = (
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
    "content-md5",
)
# Request headers that describe the source or the client's signature: never forwarded.
SOURCE_HEADERS = ("authorization", "content-length", "x-ms-copy-source", "x-ms-copy-source-authorization")

Answer = tuple[int, list[tuple[str, str]], bytes]


CANNOT_VERIFY = "CannotVerifyCopySource"
# What Azure says to an unauthenticated read of a private blob, and where public access is off.
NO_AUTHENTICATION = (
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."
)
NO_PUBLIC_ACCESS = "Public access is not permitted on this storage account."
# What Azure says of x-ms-copy-source-authorization that holds no token at all ("Bearer auth
# token"), before it asks the source (recorded, service version 2025-05-05: 400, the source's
# InvalidAuthenticationInfo).
NOT_A_TOKEN = "Authentication information is not given in the correct format. Check the value of Authorization header."
_TOKEN = re.compile(r"Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A write to a leased blob that names no lease: Azure answers it before any condition of the
# request (recorded: Put Blob From URL with If-None-Match: * onto a leased blob, 412 LeaseIdMissing,
# where Azurite's Put Blob says 409 BlobAlreadyExists).
LEASE_ID_MISSING = "There is currently a lease on the blob and no lease ID was specified in the request."
# The source's conditions, as the read of the source carries them.
SOURCE_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


@dataclass(frozen=True)
class SourceRead:
    status: int
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    code: str = ""
    message: str = ""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)


def is_from_url(method: str, query: dict[str, list[str]], headers: dict[str, str]) -> bool:
    """Put Block From URL (``comp=block`` with a source), or Put Blob From URL (a Put Blob
    with a source and a blob type, where Copy Blob has none)."""
    if method != "PUT" or "x-ms-copy-source" not in headers:
        return False
    comp = query.get("comp", [""])[0]
    return comp == "block" or (not comp and "x-ms-blob-type" in headers)


def has_sas(url: str) -> bool:
    """Whether a source URL carries a SAS (a signature): what authorizes its read."""
    return any(item.startswith("sig=") for item in urlsplit(url).query.split("&"))


def read_source(
    headers: dict[str, str],
    direct: str,
    connect: Callable[[int], http.client.HTTPConnection],
    *,
    public_access: bool = True,
) -> SourceRead:
    """Read the source named in ``headers`` (at ``direct``, its URL pointed at Azurite) as
    Azure would: with the request's authorization and source conditions. ``public_access``
    off: the account allows no read without authorization."""
    parts = urlsplit(direct)
    ask = {"x-ms-version": headers.get("x-ms-version", "2021-12-02")}
    if headers.get("x-ms-source-range"):
        ask["x-ms-range"] = headers["x-ms-source-range"]
    for condition in SOURCE_CONDITIONS:
        if headers.get(f"x-ms-source-{condition}"):
            ask[condition] = headers[f"x-ms-source-{condition}"]
    authorization = headers.get("x-ms-copy-source-authorization")
    if authorization is not None:
        if not authorization.startswith("Bearer "):
            return SourceRead(400, code="InvalidHeaderValue")
        if _TOKEN.fullmatch(authorization) is None:
            return SourceRead(400, code="InvalidAuthenticationInfo", message=NOT_A_TOKEN)
        ask["authorization"] = authorization
    anonymous = authorization is None and not has_sas(direct)
    if anonymous and not public_access:
        return SourceRead(409, code="PublicAccessNotPermitted", message=NO_PUBLIC_ACCESS)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        # Only Azurite is reachable from here: an outside source cannot be read.
        return SourceRead(404, code="SourceUnreachable")
    connection = connect(parts.port or 80)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path, headers=ask)
        response = connection.getresponse()
        data = response.read()
        found = tuple((name, value) for name, value in response.getheaders())
    except OSError:
        return SourceRead(404, code="SourceUnreachable")
    finally:
        connection.close()
    if response.status >= 300:
        code, message = _error_code(data, found), _error_message(data)
        if anonymous and response.status == 403:
            # Azurite refuses an anonymous read of a private blob 403 AuthorizationFailure;
            # Azure 401 NoAuthenticationInformation (recorded, service version 2024-08-04).
            return SourceRead(401, headers=found, code="NoAuthenticationInformation", message=NO_AUTHENTICATION)
        return SourceRead(response.status, headers=found, code=code, message=message)
    return SourceRead(response.status, data, found)


def refusal(source: SourceRead, request: dict[str, str] | None = None) -> Answer:
    """A source that could not be read (or whose conditions in ``request`` are unmet),
    answered as Azure answers it."""
    request = request or {}
    if source.status == 304:  # -if-none-match, -if-modified-since: no body, no source headers
        return 304, [("x-ms-error-code", CANNOT_VERIFY)], b""
    if source.status == 412 and any(request.get(f"x-ms-source-{c}") for c in SOURCE_CONDITIONS):
        if request.get("x-ms-source-if-match"):
            code, message = (
                "SourceConditionNotMet",
                "The source condition specified using HTTP conditional header(s) is not met.",
            )
        else:
            code, message = CANNOT_VERIFY, "The condition specified using HTTP conditional header(s) is not met."
        return 412, _error_headers(code), _error_body(code, message)
    status = source.status if source.status in (400, 401, 403, 404, 409, 412, 416) else 500
    code = "InvalidHeaderValue" if source.code == "InvalidHeaderValue" else CANNOT_VERIFY
    said = source.code or "Unknown"
    message = source.message or f"the copy source could not be read: {source.status} {said}"
    headers = [
        *_error_headers(code),
        ("x-ms-copy-source-status-code", str(source.status)),
        ("x-ms-copy-source-error-code", said),
    ]
    extra = (
        f"<CopySourceStatusCode>{source.status}</CopySourceStatusCode><CopySourceErrorCode>{escape(said)}"
        f"</CopySourceErrorCode><CopySourceErrorMessage>{escape(message)}</CopySourceErrorMessage>"
    )
    return status, headers, _error_body(code, message, extra)


def lease_refusal(request: dict[str, str], destination: list[tuple[str, str]]) -> Answer | None:
    """Put Blob From URL onto a blob whose properties (``destination``, as a HEAD found them)
    show a lease the request does not name: 412 ``LeaseIdMissing``, as Azure answers it."""
    leased = any(name.lower() == "x-ms-lease-state" and value == "leased" for name, value in destination)
    if not leased or request.get("x-ms-lease-id"):
        return None
    code = "LeaseIdMissing"
    return 412, _error_headers(code), _error_body(code, LEASE_ID_MISSING)


def too_large(limit: int) -> Answer:
    code = "RequestBodyTooLarge"
    return 413, _error_headers(code), _error_body(code, f"the source exceeds {limit // MIB} MiB")


def _error_headers(code: str) -> list[tuple[str, str]]:
    return [("Content-Type", "application/xml"), ("x-ms-error-code", code)]


def blob_headers(request: dict[str, str], source: SourceRead) -> dict[str, str]:
    """Put Blob's headers for the blob read from ``source``: the destination's conditions,
    metadata and tags of the request; the source's content headers unless the request
    asks otherwise (``x-ms-copy-source-blob-properties: false``) or sets its own."""
    out = {name: value for name, value in request.items() if name not in SOURCE_HEADERS}
    out = {name: value for name, value in out.items() if not name.startswith(("x-ms-source-", "x-ms-copy-source"))}
    out["x-ms-blob-type"] = "BlockBlob"
    if request.get("x-ms-copy-source-blob-properties", "true").lower() != "false":
        for name in CONTENT_HEADERS:
            value = source.header(name)
            if value is not None and f"x-ms-blob-{name}" not in out:
                out[f"x-ms-blob-{name}"] = value
    return out


def block_headers(request: dict[str, str]) -> dict[str, str]:
    """Put Block's headers: the request's own, without what named the source."""
    return {
        name: value
        for name, value in request.items()
        if name not in SOURCE_HEADERS and not name.startswith(("x-ms-source-", "x-ms-copy-source"))
    }


def _error_code(data: bytes, headers: tuple[tuple[str, str], ...]) -> str:
    code = next((value for name, value in headers if name.lower() == "x-ms-error-code"), None)
    if code:
        return code
    try:
        return ET.fromstring(data).findtext("Code") or ""
    except ET.ParseError:
        return ""


def _error_message(data: bytes) -> str:
    """The first line of an error body's message (Azurite adds its request id and time)."""
    try:
        return (ET.fromstring(data).findtext("Message") or "").splitlines()[0].strip()
    except (ET.ParseError, IndexError):
        return ""


def _error_body(code: str, message: str, extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message>{extra}</Error>"
    ).encode()
