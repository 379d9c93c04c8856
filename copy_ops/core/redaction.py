"""Keeping secrets out of responses, records and logs.

A source URL may carry a SAS token, and a storage error message may echo a URL or a
connection string. Everything that leaves the process passes through here first.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*", re.IGNORECASE)
_SECRET_PAIRS = re.compile(
    r"(AccountKey|SharedAccessSignature|sig|SharedAccessKey|ClientSecret)=[^;&\s\"'<>]*",
    re.IGNORECASE,
)


def strip_query(url: str) -> str:
    """The URL as it may be shown: without its query string and fragment (where a SAS
    lives) and without user info."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redact(text: str) -> str:
    """Text with URL query strings and key/signature values removed."""
    text = _URL_QUERY.sub(r"\1", text)
    return _SECRET_PAIRS.sub(r"\1=<redacted>", text)
