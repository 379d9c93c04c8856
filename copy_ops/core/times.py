"""Times as copy-ops writes and reads them: RFC 3339 in UTC. One pair of functions."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime, *, exact: bool = False) -> str:
    """RFC 3339 in UTC with ``Z``. To the second by default, always the same width, so
    that text order is time order (blob index tags and the API rely on it); ``exact``
    keeps the microseconds, for records."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if exact else "%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time with ``Z`` or an offset, as an aware datetime in UTC.

    ValueError when it is not one or has no offset; OverflowError when it lies past the
    last (or before the first) datetime once in UTC (``9999-12-31T23:59:59-23:59``).
    """
    parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return parsed.astimezone(UTC)
