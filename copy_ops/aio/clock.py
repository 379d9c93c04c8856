"""A clock that starts at the time a caller gave and moves on with the monotonic clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class Elapsed:
    """``now`` as the caller gave it, moved on by the time elapsed since: a staging
    invocation decides its commit on the time it is, not the time it began."""

    def __init__(self, start: datetime) -> None:
        self._start, self._began = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._began)
