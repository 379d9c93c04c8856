"""Put Blob From URL and Put Block From URL, done by the stand-in as Azure does them.

Azurite implements neither (its issue #699) and checks no source authorization. The
pending-copy proxy answers both itself: it reads the source (the whole blob, or the range
``x-ms-source-range`` names) from Azurite **with the authorization the request carries**,
as Azure reads it: a SAS in the source URL, a bearer token in
``x-ms-copy-source-authorization`` (Azurite in OAuth mode checks it: the identity suite's
tokens), or nothing (then only a public blob can be read, as on Azure); the source's
conditions (``x-ms-source-if-match``, ``x-ms-source-if-none-match``) go with the read. A
refused read is answered as Azure answers it: the source's status, the code
``CannotVerifyCopySource``, and ``x-ms-copy-source-status-code`` and
``x-ms-copy-source-error-code`` naming what the source said. Then it writes what it read
to Azurite under its own SAS: the block (Put Block) or the whole blob (Put Blob, with the
source's content headers unless ``x-ms-copy-source-blob-properties`` is false, the
request's metadata and the destination's conditions).

What it emulates beyond Azurite and was not proven against Azure: the exact status and
headers of a refusal (Azure documents the code and the two headers, not every status),
the limits' answer (413 ``RequestBodyTooLarge`` above 5,000 MiB for a blob and 4,000 MiB
for a block), and the token check (Azurite's OAuth mode checks a token's issuer, audience
and times, not roles: any valid token reads any blob).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

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


@dataclass(frozen=True)
class SourceRead:
    status: int
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    code: str = ""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)


def is_from_url(method: str, query: dict[str, list[str]], headers: dict[str, str]) -> bool:
    """Put Block From URL (``comp=block`` with a source), or Put Blob From URL (a Put Blob
    with a source and a blob type, where Copy Blob has none)."""
    if method != "PUT" or "x-ms-copy-source" not in headers:
        return False
    comp = query.get("comp", [""])[0]
    return comp == "block" or (not comp and "x-ms-blob-type" in headers)


def read_source(
    headers: dict[str, str], direct: str, connect: Callable[[int], http.client.HTTPConnection]
) -> SourceRead:
    """Read the source named in ``headers`` (at ``direct``, its URL pointed at Azurite) as
    Azure would: with the request's authorization and source conditions."""
    parts = urlsplit(direct)
    ask = {"x-ms-version": headers.get("x-ms-version", "2021-12-02")}
    if headers.get("x-ms-source-range"):
        ask["x-ms-range"] = headers["x-ms-source-range"]
    for condition in ("if-match", "if-none-match"):
        if headers.get(f"x-ms-source-{condition}"):
            ask[condition] = headers[f"x-ms-source-{condition}"]
    authorization = headers.get("x-ms-copy-source-authorization")
    if authorization is not None:
        if not authorization.startswith("Bearer "):
            return SourceRead(400, code="InvalidHeaderValue")
        ask["authorization"] = authorization
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
        return SourceRead(response.status, headers=found, code=_error_code(data, found))
    return SourceRead(response.status, data, found)


def refusal(source: SourceRead) -> Answer:
    """A source that could not be read, answered as Azure answers it."""
    status = source.status if source.status in (400, 401, 403, 404, 409, 412, 416) else 500
    code = "InvalidHeaderValue" if source.code == "InvalidHeaderValue" else "CannotVerifyCopySource"
    headers = [
        *_error_headers(code),
        ("x-ms-copy-source-status-code", str(source.status)),
        ("x-ms-copy-source-error-code", source.code or "Unknown"),
    ]
    return status, headers, _error_body(code, f"the copy source could not be read: {source.status} {source.code}")


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


def _error_body(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()
