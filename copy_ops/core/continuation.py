"""Continuation tokens: opaque to callers, tamper-evident, bound to their listing. Pure.

A token is storage's marker, the listing it belongs to (a prefix, or a tag query), and a
MAC under a key of the app's own. One that was not made by a page of that very listing
(forged, edited, or taken from another listing) is a 400 before storage is asked
anything: a forged marker could otherwise start a listing anywhere, or make storage fail
(a 503). The key is the ledger's (:mod:`copy_ops.copies.records`), shared by every instance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from copy_ops.core.errors import FieldError, InvalidRequest

_CONTINUATION_VERSION = "v2"
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, scope: str, marker: str) -> bytes:
    return hmac.new(key, f"{scope}\0{marker}".encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def encode_continuation(key: bytes, scope: str, marker: str) -> str:
    return f"{_CONTINUATION_VERSION}.{_b64(marker.encode())}.{_b64(_mac(key, scope, marker))}"


def decode_continuation(key: bytes, scope: str, token: str) -> str:
    """Storage's marker in ``token``, if a page of the listing ``scope`` made it; else 400."""
    version, _, rest = token.partition(".")
    encoded, _, mac = rest.partition(".")
    try:
        marker = _unb64(encoded).decode()
        valid = (
            version == _CONTINUATION_VERSION
            and marker != ""
            and hmac.compare_digest(_unb64(mac), _mac(key, scope, marker))
        )
    except (ValueError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidRequest.of(FieldError("continuation", "must be a token from a previous page of this listing"))
    return marker
