"""A work message sealed by the app: a MAC under the app's work key over the message's
exact text, in a last field, ``"mac"``. Pure.

Whoever may put a message on the work queue (a queue role, a queue SAS) may not thereby
steer the app: a message is acted on only when its seal is the app's. The MAC covers the
message as it was sent, byte for byte (its kind, its job or operation, every name in
it), so no field can be changed, added or moved to another message without the key.
Decoders that predate the seal read a sealed message as before: they ignore a field they
do not know (docs/trust.md, "The work queue, a trust boundary").

Checked in constant time and before the message is parsed: a seal costs one HMAC over at
most a message's 64 KiB, whatever the text holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from enum import Enum

MAC_BYTES = 16
# The seal as the message's last field. A name or URL inside the message cannot hold this
# text: JSON escapes the quotes a string holds, so it appears only as the field itself.
_FIELD = ',"mac":"'
_MAC_TEXT = len(base64.urlsafe_b64encode(bytes(MAC_BYTES)).rstrip(b"="))
_TAIL = len(_FIELD) + _MAC_TEXT + len('"}')


class Seal(Enum):
    """What a message's seal says."""

    # Sealed under the key: the app sent it.
    OURS = "ours"
    # No seal at all: sent by a version before seals, or by someone else.
    NONE = "none"
    # A seal that is not the key's, or a message edited after it was sealed.
    WRONG = "wrong"


def sealed(key: bytes, text: str) -> str:
    """``text`` (a JSON object, as :func:`copy_ops.work.messages.encode` makes it) with its seal."""
    if not text.endswith("}") or _FIELD in text:
        raise ValueError("only an unsealed JSON object is sealed")
    return f'{text[:-1]}{_FIELD}{_mac(key, text)}"}}'


def seal_of(key: bytes, text: str) -> Seal:
    if _FIELD not in text:
        return Seal.NONE
    tail = text[-_TAIL:]
    if len(text) <= _TAIL or not (tail.startswith(_FIELD) and tail.endswith('"}')):
        return Seal.WRONG
    body = text[:-_TAIL] + "}"
    given = tail[len(_FIELD) : -2].encode("utf-8", errors="surrogatepass")
    return Seal.OURS if hmac.compare_digest(given, _mac(key, body).encode()) else Seal.WRONG


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("utf-8", errors="surrogatepass"), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
